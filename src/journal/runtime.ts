import type { Clock, Effects } from '../../machines/index.js';
import type { Runtime } from '../runtime/index.js';
import { startStatus } from '../runtime/status.js';
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
  });
  return {
    name: 'journal',
    run: (kind, input, follow = {}) =>
      runJournaled(kind, input, options.effects, { ...common(input.instance), ...follow }),
    resume: async (instance, follow = {}) => {
      if ((await options.store.read(instance)) === null) return null;
      return (await resumeRun(instance, options.effects, { ...common(instance), ...follow })).output;
    },
    status: async (instance) => {
      const entry = await options.store.read(instance);
      if (entry === null) return null;
      return { ...startStatus(entry.machine, entry.input as never), state: entry.state };
    },
  };
}
