import type { Clock, Effects, EvacuationInput } from '../../machines/index.js';
import type { LeaseOptions } from '../runner/index.js';
import type { EvacuationFollow, Runtime } from '../runtime/index.js';
import { startStatus } from '../runtime/status.js';
import { type EvacuationJournal, runEvacuationJournaled } from './evacuation.js';
import type { LockStore } from './lock.js';
import { resumeRun, runJournaled } from './run.js';
import type { JournalStore } from './store.js';

export interface JournalRuntimeOptions {
  effects: Effects;
  store: JournalStore;
  locks: LockStore;
  /** The nodes a run on the instance locks beside it (its primary and secondary). */
  nodesOf: (instance: string) => string[];
  /** What the runs act on, recorded in each journal (a resume must act on the same). */
  where?: string;
  clock?: Clock;
  graceMs?: number;
  /** Where drains are recorded (needed for evacuate and resumeEvacuation). */
  evacuations?: EvacuationJournal;
  /** Passed to every journaled run (crash tests kill the process here). */
  afterWrite?: (n: number, state: string) => void;
  /**
   * Each run holds its instance's lease where every runtime acting on the same config store meets
   * (see LeaseStore): a Restate run, or another host's, on the same instance is refused meanwhile.
   */
  lease?: LeaseOptions;
}

/**
 * The embedded runtime: each transition in a file on this host before the next step acts, the
 * instance and its nodes locked by lock files, and a run whose process died taken up by `resume`
 * (continued, or handed to a cleanup where continuing blind is unsafe).
 */
export function journalRuntime(options: JournalRuntimeOptions): Runtime {
  const common = (instance: string) => ({
    store: options.store,
    locks: options.locks,
    nodes: options.nodesOf(instance),
    ...(options.where === undefined ? {} : { where: options.where }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
    ...(options.afterWrite === undefined ? {} : { afterWrite: options.afterWrite }),
    ...(options.lease === undefined ? {} : { lease: options.lease }),
  });
  // A replace locks the node it makes the new copy on too (Ganeti's replace-disks locks it): two
  // runs placing copies there at once would each have found the room for their own.
  const nodesFor = (input: { instance: string; newSecondary?: string | undefined }) => [
    ...new Set([...options.nodesOf(input.instance), ...(input.newSecondary ? [input.newSecondary] : [])]),
  ];
  const drain = (input: EvacuationInput, follow: EvacuationFollow, resume: boolean) => {
    if (options.evacuations === undefined) throw new Error('journalRuntime: no evacuation journal given');
    return runEvacuationJournaled(
      input,
      options.effects,
      {
        store: options.store,
        locks: options.locks,
        evacuations: options.evacuations,
        ...(options.where === undefined ? {} : { where: options.where }),
        ...(options.clock === undefined ? {} : { clock: options.clock }),
        ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
        ...(options.lease === undefined ? {} : { lease: options.lease }),
        ...follow,
      },
      resume,
    );
  };
  return {
    name: 'journal',
    run: (kind, input, follow = {}) =>
      runJournaled(kind, input, options.effects, {
        ...common(input.instance),
        nodes: nodesFor(input),
        ...follow,
      }),
    resume: async (instance, follow = {}) => {
      const entry = await options.store.read(instance);
      if (entry === null) return null;
      const nodes = nodesFor({ instance, ...(entry.input as { newSecondary?: string }) });
      return (await resumeRun(instance, options.effects, { ...common(instance), nodes, ...follow })).output;
    },
    status: async (instance) => {
      const entry = await options.store.read(instance);
      if (entry === null) return null;
      return { ...startStatus(entry.machine, entry.input as never), state: entry.state };
    },
    evacuate: (input, follow = {}) => drain(input, follow, false),
    // The journal keeps a drain until it ends; an ended one is in the caller's output only.
    evacuationStatus: async (node) =>
      options.evacuations !== undefined && (await options.evacuations.read(node)) !== null
        ? { output: null }
        : null,
    resumeEvacuation: async (node, follow = {}) => {
      if (options.evacuations === undefined || (await options.evacuations.read(node)) === null) return null;
      return drain({ node }, follow, true);
    },
  };
}
