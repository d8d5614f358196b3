import { type AnyActorRef, createActor } from 'xstate';
import {
  armTimer,
  bindRun,
  type Clock,
  type Effects,
  type EvacuationEmitted,
  type EvacuationInput,
  type EvacuationOutput,
  errorText,
  evacuationMachine,
  type InstanceRequest,
  type InstanceRunner,
  instanceRunActor,
  type ProtocolOutput,
  runBoundActors,
  systemClock,
} from '../../machines/index.js';
import { placeSecondaries } from './placement.js';
import { type RunEvent, runRequest, startUntilStopped, stateKey, whenAborted } from './run.js';

/** One instance's run starting or ending inside an evacuation (views, limit checks). */
export type RunNotice =
  | { phase: 'start'; request: InstanceRequest }
  /** output null: the run was stopped with the evacuation (its orchestrator died). */
  | { phase: 'end'; request: InstanceRequest; output: ProtocolOutput | null };

export interface EvacuationOptions {
  clock?: Clock;
  /** What each instance's run reports, by instance: a view shows every run in flight. */
  onInstanceEvent?: (instance: string, event: RunEvent) => void;
  /** Each instance's run as it starts and ends. */
  onRun?: (notice: RunNotice) => void;
  /** What the drain itself says: its measurements' warnings and its forecast, before any run starts. */
  onEvent?: (event: EvacuationEmitted) => void;
  graceMs?: number;
  /** The operator's abort: nothing more starts, and every run under way reverts at its safe point. */
  abort?: AbortSignal;
  /** Stops the evacuation where it is, like an orchestrator that dies (see RunOptions.signal). */
  signal?: AbortSignal;
  /** How one instance's run is made; by default runMigration or runFailover on the same effects. */
  runner?: InstanceRunner;
  onStart?: (actor: AnyActorRef) => void;
}

/** The plain runner: each instance's machine on the evacuation's effects, without a journal. */
export function plainRunner(effects: Effects, options: EvacuationOptions): InstanceRunner {
  return (request, control) =>
    runRequest(request.operation, request.input, effects, {
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      abort: control.abort,
      signal: control.stop,
      onEvent: (event) => options.onInstanceEvent?.(request.instance, event),
    });
}

/** Tells `onRun` when each instance's run starts and ends. */
function noticed(runner: InstanceRunner, onRun: EvacuationOptions['onRun']): InstanceRunner {
  if (onRun === undefined) return runner;
  return async (request, control) => {
    onRun({ phase: 'start', request });
    let output: ProtocolOutput | null = null;
    try {
      output = await runner(request, control);
      return output;
    } finally {
      onRun({ phase: 'end', request, output });
    }
  };
}

/**
 * Drains a node: every instance whose primary it is moves to its secondary, each by its own run, as
 * many at once as the limits allow. Resolves with every instance's outcome.
 */
export async function runEvacuation(
  given: EvacuationInput,
  effects: Effects,
  options: EvacuationOptions = {},
): Promise<EvacuationOutput> {
  // A drain of the secondaries places them first, unless the caller did (a runtime that journals
  // its input places them once, before it submits).
  let input = given;
  if (given.secondaries === true && given.placements === undefined) {
    try {
      input = {
        ...given,
        ...(await placeSecondaries(effects, given.node, {
          primaries: given.primaries !== false,
          ...(given.limits?.stepTimeoutMs === undefined ? {} : { timeoutMs: given.limits.stepTimeoutMs }),
        })),
      };
    } catch (error) {
      return {
        outcome: 'rejected',
        node: given.node,
        results: [],
        counts: { moved: 0, failed: 0, skipped: 0, notStarted: 0 },
        error: `Cannot place the new secondaries: ${errorText(error)}; nothing was touched`,
      };
    }
  }
  const runner = noticed(options.runner ?? plainRunner(effects, options), options.onRun);
  const bound = runBoundActors();
  const machine = evacuationMachine.provide({
    actors: {
      listInstances: bound.listInstances,
      setNodeDrained: bound.setNodeDrained,
      measureDirtyRate: bound.measureDirtyRate,
      nodeStorage: bound.nodeStorage,
      instanceRun: instanceRunActor(runner),
    },
  });
  const actor = createActor(machine, { input });
  bindRun(actor, effects, { clock: options.clock ?? systemClock });
  const onEvent = options.onEvent;
  if (onEvent !== undefined) actor.on('*', (emitted) => onEvent(emitted as EvacuationEmitted));
  options.onStart?.(actor);
  const done = startUntilStopped<EvacuationOutput>(actor, options.signal, () =>
    stateKey(actor.getSnapshot().value),
  );
  whenAborted(options.abort, () => actor.send({ type: 'ABORT' }));
  // The deadline, on the run's clock: nothing new starts after it.
  const disarm =
    input.deadlineMs === undefined
      ? () => {}
      : armTimer(options.clock ?? systemClock, input.deadlineMs, () => actor.send({ type: 'DEADLINE' }));
  return done.finally(disarm);
}
