import type {
  EffectCall,
  EvacuationEmitted,
  EvacuationInput,
  EvacuationOutput,
  InstanceRunner,
  MachineName,
  ProtocolInput,
  ProtocolOutput,
} from '../../machines/index.js';
import type { RunEvent, RunNotice } from '../runner/index.js';
import type { RunStatus } from './status.js';

/**
 * What a run needs beyond its machine and its effects, and where it lives. A runtime records each
 * step before the next acts, keeps one run at a time per instance, and takes a run up again after
 * its orchestrator died. Two ship: the file journal and locks of this host (the embedded default,
 * src/journal) and Restate (src/restate), whose journal is replicated and whose runs outlive any
 * one host. The machines and the effects are the same under both.
 */
export interface Runtime {
  readonly name: 'journal' | 'restate';
  /** Runs one machine on one instance to its end and resolves with its output. */
  run(kind: MachineName, input: ProtocolInput, follow?: Follow): Promise<ProtocolOutput>;
  /**
   * Takes up the instance's unfinished run (the journal: continued, or handed to a cleanup; Restate:
   * followed to its end wherever it runs); null when there is none.
   */
  resume(instance: string, follow?: Follow): Promise<ProtocolOutput | null>;
  /** The instance's current or last run as the runtime recorded it; null when it has none. */
  status(instance: string): Promise<RunStatus | null>;
  /**
   * Drains a node: the evacuation machine plans and schedules, and each instance's run is one of
   * this runtime's (journaled and locked here, or a durable call any worker takes).
   */
  evacuate(input: EvacuationInput, follow?: EvacuationFollow): Promise<EvacuationOutput>;
  /** Takes up the node's unfinished drain (runs under way first); null when there is none. */
  resumeEvacuation(node: string, follow?: EvacuationFollow): Promise<EvacuationOutput | null>;
  /** The node's drain under way (output null) or, where the runtime keeps it, its last one; null: none. */
  evacuationStatus(node: string): Promise<{ output: EvacuationOutput | null } | null>;
}

/** What the caller of a run sees of it and can do to it. */
export interface Follow {
  onEvent?: (event: RunEvent) => void;
  /** The operator's abort: the run reverts at its next safe point, or finishes forward past its point of no return. */
  abort?: AbortSignal;
  /**
   * Stops this caller where it is, as an orchestrator that dies: under the journal the run stops
   * (resume takes it up); under Restate only the following stops, the run goes on where it runs.
   */
  signal?: AbortSignal;
  /** Each effect call where the run acts in this process (what a Ctrl-C says is in flight). */
  onCall?: (call: EffectCall) => void;
}

/** What the caller of a drain sees of it and can do to it. */
export interface EvacuationFollow extends Pick<Follow, 'abort' | 'signal'> {
  /** Each instance's run as it starts and ends. */
  onRun?: (notice: RunNotice) => void;
  /** What each instance's run reports, where the runtime tells it (the journal's runs do). */
  onInstanceEvent?: (instance: string, event: RunEvent) => void;
  /** What the drain itself says (its measurements, its forecast), where the runtime tells it. */
  onEvent?: (event: EvacuationEmitted) => void;
}

/** An evacuation's runs on a runtime: each instance's run as the runtime makes it. */
export function runtimeRunner(
  runtime: Runtime,
  onInstanceEvent?: (instance: string, event: RunEvent) => void,
): InstanceRunner {
  return (request, control) =>
    runtime.run(request.operation, request.input, {
      abort: control.abort,
      signal: control.stop,
      ...(onInstanceEvent === undefined ? {} : { onEvent: (e) => onInstanceEvent(request.instance, e) }),
    });
}

export { newEvents, type RunStatus, STATUS_EVENTS, startStatus, withEvent } from './status.js';
export { currentStep, type StepId, withStep } from './step.js';
