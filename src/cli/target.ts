import { resolve } from 'node:path';
import { type MachineName, REPLACE_COMMAND, type ReplacedCopy } from '../../machines/index.js';
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

/** Which run left what is to repair: a failover has its own repair, every other run the migration's. */
export interface RepairOf {
  machine?: MachineName;
  /** The failover was told its source is down: its repair needs the same word while the node is. */
  sourceIsDown?: boolean;
  /** The instance's primary when the run began: a failover that ends with the config naming it never committed. */
  from?: string | null;
  /** A replace's new secondary: its repair names it until the commit (after it the config does). */
  newSecondary?: string | null;
  /** A replace's copy: the secondary, or the third copy (replace-third-copy). */
  replaceCopy?: ReplacedCopy;
  /** The node the run was sent to (a third copy): a failover run again before its commit goes there too. */
  targetNode?: string | null;
}

/** The command that repairs what a run left, naming the file it acted on. */
export function cleanupCommand(
  instance: string,
  target: Target | null,
  of: RepairOf = {},
  primaryNow: string | null = null,
  copyNow: string | null = null,
): string | null {
  if (target === null) return null;
  if (of.machine === 'changeSecondary') {
    const named = of.newSecondary != null && copyNow !== of.newSecondary;
    const { command, option } = REPLACE_COMMAND[of.replaceCopy ?? 'secondary'];
    return `drbd-migrate ${command} ${instance}${targetFlag(target)} --cleanup${named ? ` ${option} ${of.newSecondary}` : ''}`;
  }
  if (of.machine === 'failover') {
    // Before its commit the failover is picked up by running it again; after it, by its repair.
    const again = of.from != null && primaryNow === of.from;
    const to = again && of.targetNode != null ? ` --target ${of.targetNode}` : '';
    return `drbd-migrate failover ${instance}${targetFlag(target)}${to}${again ? '' : ' --cleanup'}${of.sourceIsDown ? ' --source-is-down' : ''}`;
  }
  return `drbd-migrate migrate ${instance}${targetFlag(target)} --cleanup`;
}
