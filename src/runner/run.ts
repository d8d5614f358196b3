import {
  type AnyActorRef,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  createActor,
  type InspectionEvent,
  type Snapshot,
  toPromise,
} from 'xstate';
import {
  type BindOptions,
  bindRun,
  type Clock,
  type Effects,
  inputProblem,
  MACHINES,
  type MachineName,
  type ProtocolEmitted,
  type ProtocolInput,
  type ProtocolOutput,
  runBoundActors,
  systemClock,
} from '../../machines/index.js';
import { type LeaseOptions, withLease } from './lease.js';

/** What a run reports while it goes: state changes, Ganeti-style feedback lines, progress. */
export type RunEvent = { type: 'state'; value: string; at: number } | ProtocolEmitted;

export interface RunOptions {
  /** The world's clock; deadlines and timestamps count in it. Default: wall time. */
  clock?: Clock;
  onEvent?: (event: RunEvent) => void;
  /** Called after every transition with the persisted snapshot (what a journal records). */
  onSnapshot?: (snapshot: Snapshot<unknown>) => void;
  /** Resume from a persisted snapshot instead of starting afresh. */
  snapshot?: Snapshot<unknown>;
  onCall?: BindOptions['onCall'];
  /** Grace added to every step's deadline (transport latency); see BindOptions. */
  graceMs?: number;
  /** xstate inspection of the running actor (transitions taken, microsteps). */
  inspect?: (event: InspectionEvent) => void;
  /** The actor, once created: its snapshot tells which state makes each effect call. */
  onStart?: (actor: AnyActorRef) => void;
  /**
   * An operator abort. It reaches the machine at the next safe point, once the step in flight has
   * finished; the machine then reverts, or says why it finishes forward instead.
   */
  abort?: AbortSignal;
  /** Awaited before every effect call (a journal flush). */
  beforeCall?: () => Promise<void>;
  /**
   * Stops the machine where it is, like an orchestrator that dies: in-flight effects are aborted,
   * nothing more happens, and the run rejects with RunInterrupted.
   */
  signal?: AbortSignal;
  /**
   * The instance's lease (safety rule 9 across runtimes): taken before anything is touched, or the
   * run is refused; renewed while it runs; a run that can no longer count on it calls no effect.
   */
  lease?: LeaseOptions;
}

export class RunInterrupted extends Error {
  override name = 'RunInterrupted';
  constructor(readonly state: string) {
    super(`interrupted in state ${state}`);
  }
}

/** A state value as one dotted path per active leaf: "dualMaster.syncing.polling". */
export function stateKey(value: AnyMachineSnapshot['value']): string {
  if (typeof value === 'string') return value;
  // Built without intermediate arrays: it runs at every transition of every run.
  let key = '';
  for (const k in value) {
    const v = value[k];
    const part = v === undefined ? k : `${k}.${stateKey(v as AnyMachineSnapshot['value'])}`;
    key = key === '' ? part : `${key},${part}`;
  }
  return key;
}

/**
 * Each machine is provided with run-bound effect actors once: providing it per run rebuilt its
 * whole state tree every time (most of a run's CPU and heap). Each run binds its own effects.
 */
const provided = new WeakMap<AnyStateMachine, AnyStateMachine>();
function providedOnce(machine: AnyStateMachine): AnyStateMachine {
  let m = provided.get(machine);
  if (m === undefined) {
    m = machine.provide({ actors: runBoundActors() });
    provided.set(machine, m);
  }
  return m;
}

/** Runs any machine built on the protocol setup (a shipped one, a user's extension, a test's mutant). */
export function runMachine(
  machine: AnyStateMachine,
  input: ProtocolInput,
  effects: Effects,
  options: RunOptions = {},
): Promise<ProtocolOutput> {
  const bad = inputProblem(input);
  if (bad !== null) return Promise.resolve(rejectedInput(input, bad));
  const { lease, ...rest } = options;
  if (lease === undefined) return runUnleased(machine, input, effects, rest);
  return withLease(
    lease,
    input.instance,
    (held, ttlMs) =>
      rejectedInput(
        input,
        `another run holds ${input.instance} (${held.holder}, its lease until ${new Date(held.untilMs).toISOString()}): one run at a time per instance, whichever runtime started it; wait for it to end (a run whose process died lets its lease lapse within ${Math.round(ttlMs / 1000)} s), or follow it where it runs`,
      ),
    (check) =>
      runUnleased(machine, input, effects, {
        ...rest,
        beforeCall: async () => {
          check();
          await rest.beforeCall?.();
          check();
        },
      }),
  );
}

function runUnleased(
  machine: AnyStateMachine,
  input: ProtocolInput,
  effects: Effects,
  options: Omit<RunOptions, 'lease'>,
): Promise<ProtocolOutput> {
  const clock = options.clock ?? systemClock;
  // Effects in flight, so that an operator abort waits for the step to finish; a long poll in flight
  // is hurried (answers now) so that the wait is short. Calls started later get a fresh signal.
  let inFlight = 0;
  let abortPending = false;
  let hurry = new AbortController();
  const deliverAbort = () => {
    abortPending = false;
    // A run that already ended has nothing left to abort.
    if (actor.getSnapshot().status === 'active') actor.send({ type: 'ABORT' });
  };
  const bind: BindOptions = {
    clock,
    onCall: (call) => {
      options.onCall?.(call);
      if (call.phase === 'start') inFlight++;
      else {
        inFlight--;
        if (abortPending && inFlight === 0) deliverAbort();
      }
    },
    ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
    ...(options.beforeCall === undefined ? {} : { beforeCall: options.beforeCall }),
    hurry: () => hurry.signal,
  };
  const actor = createActor(providedOnce(machine), {
    input,
    ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
    ...(options.inspect === undefined ? {} : { inspect: options.inspect }),
  });
  bindRun(actor, effects, bind);
  options.onStart?.(actor);
  const onAbort = () => {
    if (inFlight === 0) deliverAbort();
    else {
      abortPending = true;
      hurry.abort();
      hurry = new AbortController();
    }
  };
  if (options.onEvent !== undefined) {
    const tell = options.onEvent;
    actor.on('*', (emitted) => tell(emitted as ProtocolEmitted));
  }
  let last = '';
  const { onEvent, onSnapshot } = options;
  if (onEvent !== undefined || onSnapshot !== undefined) {
    actor.subscribe((snapshot) => {
      if (onEvent !== undefined) {
        const value = stateKey(snapshot.value);
        if (value !== last) {
          last = value;
          onEvent({ type: 'state', value, at: clock.now() });
        }
      }
      onSnapshot?.(actor.getPersistedSnapshot());
    });
  }
  // Where it stood when stopped (the state events, when nobody listens to them, are not made).
  const done = startUntilStopped<ProtocolOutput>(actor, options.signal, () =>
    onEvent === undefined ? stateKey(actor.getSnapshot().value) : last,
  );
  // An abort that came before the run is taken as arriving now: at the first safe point, before
  // anything is changed (a listener added to a signal that already fired is never called).
  whenAborted(options.abort, onAbort);
  return done;
}

/** Calls `then` when `signal` aborts, or now if it already has. */
export function whenAborted(signal: AbortSignal | undefined, then: () => void): void {
  if (signal?.aborted) then();
  else signal?.addEventListener('abort', then, { once: true });
}

/**
 * Starts the actor and resolves with its output; the signal stops it where it is, like an
 * orchestrator that dies, and the promise then rejects with RunInterrupted (a stopped actor's own
 * promise resolves without output, and an interrupted run must not look finished).
 */
export function startUntilStopped<T>(
  actor: AnyActorRef,
  signal: AbortSignal | undefined,
  state: () => string,
): Promise<T> {
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    actor.stop();
  };
  if (signal?.aborted) queueMicrotask(stop);
  else signal?.addEventListener('abort', stop, { once: true });
  const done = (toPromise(actor) as Promise<T>).then((output) => {
    signal?.removeEventListener('abort', stop);
    if (interrupted) throw new RunInterrupted(state());
    return output;
  });
  actor.start();
  return done;
}

/** The outcome of a run refused for its input: nothing was started, nothing touched. */
export function rejectedInput(input: ProtocolInput, problem: string): ProtocolOutput {
  return {
    outcome: 'rejected',
    verdict: 'refused',
    instance: typeof input?.instance === 'string' ? input.instance : '',
    primaryNode: null,
    live: null,
    error: problem,
    warnings: [],
  };
}

/**
 * Runs the machine a request names, and decides the one fallback there is: a migration whose
 * prerequisites find the instance not running, with a failover allowed, touched nothing and is done
 * as a failover instead (Ganeti's allow_failover). Every runtime starts its runs through this, with
 * its own way of running one machine (plain, journaled, durable).
 */
export async function runKind(
  kind: MachineName,
  input: ProtocolInput,
  runOne: (kind: MachineName, input: ProtocolInput) => Promise<ProtocolOutput>,
): Promise<ProtocolOutput> {
  const out = await runOne(kind, input);
  return kind === 'migration' && out.fallback === 'failover' ? runOne('failover', fallbackInput(input)) : out;
}

/** A request run in memory: `kind`'s machine (or its fallback) on these effects. */
export function runRequest(
  kind: MachineName,
  input: ProtocolInput,
  effects: Effects,
  options: RunOptions = {},
): Promise<ProtocolOutput> {
  return runKind(kind, input, (k, i) => runMachine(MACHINES[k], i, effects, options));
}

/**
 * Migrates an instance to its secondary node; resolves with the machine's output. With
 * `allowFailover`, an instance its prerequisites find not running is failed over instead.
 */
export function runMigration(input: ProtocolInput, effects: Effects, options: RunOptions = {}) {
  return runRequest('migration', input, effects, options);
}

/** What a migration that falls back to a failover hands it: the instance, where to, the limits. */
export function fallbackInput(input: ProtocolInput): ProtocolInput {
  return {
    instance: input.instance,
    ...(input.targetNode === undefined ? {} : { targetNode: input.targetNode }),
    ...(input.limits === undefined ? {} : { limits: input.limits }),
  };
}

/** Repairs a failed migration (safe on a healthy instance); resolves with the machine's output. */
export function runCleanup(input: ProtocolInput, effects: Effects, options: RunOptions = {}) {
  return runRequest('cleanup', input, effects, options);
}

/** Brings an instance up on its secondary (its primary stopped, or proven down). */
export function runFailover(input: ProtocolInput, effects: Effects, options: RunOptions = {}) {
  return runRequest('failover', input, effects, options);
}

/** Takes a returning node back as the instance's secondary, resynced from the survivor. */
export function runRejoin(input: ProtocolInput, effects: Effects, options: RunOptions = {}) {
  return runRequest('rejoin', input, effects, options);
}
