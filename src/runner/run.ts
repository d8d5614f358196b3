import { type AnyMachineSnapshot, createActor, type Snapshot, toPromise } from 'xstate';
import {
  type BindOptions,
  type Clock,
  cleanupMachine,
  type Effects,
  migrationMachine,
  type ProtocolEmitted,
  type ProtocolInput,
  type ProtocolMachine,
  type ProtocolOutput,
  provideEffects,
  systemClock,
} from '../../machines/index.js';

/** What a run reports while it goes: state changes, Ganeti-style feedback lines, progress. */
export type RunEvent = { type: 'state'; value: string; at: number } | ProtocolEmitted;

export interface RunOptions {
  /** The world's clock; deadlines and timestamps count in it. Default: wall time. */
  clock?: Clock;
  onEvent?: (event: RunEvent) => void;
  /** Called after every transition with the persisted snapshot (for journals, see issue 6). */
  onSnapshot?: (snapshot: Snapshot<unknown>) => void;
  /** Resume from a persisted snapshot instead of starting afresh. */
  snapshot?: Snapshot<unknown>;
  onCall?: BindOptions['onCall'];
}

/** A state value as one dotted path per active leaf: "dualMaster.syncing.polling". */
export function stateKey(value: AnyMachineSnapshot['value']): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([k, v]) => (v === undefined ? k : `${k}.${stateKey(v as AnyMachineSnapshot['value'])}`))
    .join(',');
}

function run(machine: ProtocolMachine, input: ProtocolInput, effects: Effects, options: RunOptions) {
  const clock = options.clock ?? systemClock;
  const bind: BindOptions = { clock, ...(options.onCall === undefined ? {} : { onCall: options.onCall }) };
  const actor = createActor(provideEffects(machine, effects, bind), {
    input,
    ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
  });
  actor.on('*', (emitted) => options.onEvent?.(emitted as ProtocolEmitted));
  let last = '';
  actor.subscribe((snapshot) => {
    const value = stateKey(snapshot.value);
    if (value !== last) {
      last = value;
      options.onEvent?.({ type: 'state', value, at: clock.now() });
    }
    options.onSnapshot?.(actor.getPersistedSnapshot());
  });
  const done = toPromise(actor);
  actor.start();
  return done as Promise<ProtocolOutput>;
}

/** Migrates an instance to its secondary node; resolves with the machine's output. */
export function runMigration(input: ProtocolInput, effects: Effects, options: RunOptions = {}) {
  return run(migrationMachine, input, effects, options);
}

/** Repairs a failed migration (safe on a healthy instance); resolves with the machine's output. */
export function runCleanup(input: ProtocolInput, effects: Effects, options: RunOptions = {}) {
  return run(cleanupMachine as unknown as ProtocolMachine, input, effects, options);
}
