import { resolve } from 'node:path';
import type { Values } from './options.js';

/** What a run acts on, as the journal records it and as the hints repeat it: "--world /x.json". */
export interface Target {
  kind: 'world' | 'cluster';
  file: string;
  /** Runs go to this Restate cluster's ingress (hints repeat it). */
  restate?: string;
}

/** The target the command line names (--cluster or --world, and --restate), built here only. */
export function targetOf(values: Values): Target {
  const base: Target =
    values.cluster !== undefined
      ? { kind: 'cluster', file: values.cluster }
      : { kind: 'world', file: values.world! };
  return values.restate === undefined ? base : { ...base, restate: values.restate };
}

export const targetFlag = (t: Target | null) =>
  t === null ? '' : ` --${t.kind} ${t.file}${t.restate === undefined ? '' : ` --restate ${t.restate}`}`;

/** How the journal names what a run acts on: "cluster /abs/path" or "world /abs/path". */
export const whereOf = (t: Target) => `${t.kind} ${resolve(t.file)}`;

/** The command that repairs what a run left, naming the file it acted on. */
export function cleanupCommand(instance: string, target: Target | null): string | null {
  return target === null ? null : `drbd-migrate migrate ${instance}${targetFlag(target)} --cleanup`;
}
