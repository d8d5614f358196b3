/**
 * drbd-migrate/machines: the protocol alone. Pure xstate machines and the effect contract they speak;
 * no I/O. Provide effects with provideEffects (or machine.provide) and run them with any xstate actor.
 */

export { changeSecondaryMachine, REPLACE_COMMAND, replaceProblem } from './changeSecondary.js';
export { isSharedStorage, judgeReadiness, noSelfFence, type Readiness, SHARED_STORAGE } from './checks.js';
export { cleanupMachine } from './cleanup.js';
export { armTimer, type Clock, sleepOnTimer, systemClock } from './clock.js';
export * from './contract.js';
export {
  Convergence,
  type ConvergenceState,
  DEFAULT_CONVERGENCE,
  MAX_BANDWIDTH_MIBPS,
  MAX_DOWNTIME_MS,
} from './convergence.js';
export {
  meta,
  pathHasTag,
  type StateMeta,
  statesOnPath,
  type TransitionInfo,
  transitionKey,
  transitionsOf,
} from './describe.js';
export {
  type DrainForecast,
  describeDrain,
  durationText,
  forecastRun,
  pickStartable,
  type RunBasis,
  type RunFacts,
  type RunForecast,
  type ScheduledRun,
  type Slotted,
  scheduleLength,
} from './drainForecast.js';
export {
  type BindOptions,
  bindRun,
  type EffectActors,
  type EffectCall,
  EffectError,
  effectActors,
  errorText,
  runBoundActors,
} from './effects.js';
export {
  DEFAULT_CONCURRENCY,
  EVACUATION_OUTCOMES,
  type EvacuationContext,
  type EvacuationEmitted,
  type EvacuationEvent,
  type EvacuationInput,
  EvacuationInputSchema,
  type EvacuationOutcome,
  type EvacuationOutput,
  evacuationMachine,
  evacuationOutput,
  forecastDrain,
  type InstanceRequest,
  type InstanceResult,
  InstanceResultSchema,
  type InstanceRunner,
  instanceResult,
  instanceRunActor,
  leftForCleanup,
  type Operation,
  planEvacuation,
  startable,
} from './evacuation.js';
export { failoverMachine } from './failover.js';
export * from './flows.js';
export { inputProblem, issuesText, ProtocolInputSchema } from './input.js';
export { DEFAULT_LIMITS, Limits, MAX_TIMER_MS } from './limits.js';
export { migrationMachine } from './migration.js';
export * from './names.js';
export {
  type CandidateFacts,
  candidateProblem,
  choosePlacement,
  META_MIB,
  memoryNeededMiB,
  memoryProblem,
  nodeConfigProblem,
  type Placement,
  spaceNeededMiB,
  storageProblem,
  takeoverNeedMiB,
  volumeNames,
} from './placement.js';
export {
  type CopyFacts,
  type CopyPrediction,
  type CopyStage,
  forecastCopy,
  type MigrationForecast,
  predictCopy,
  SAMPLE_PAGES,
} from './prediction.js';
export {
  type Commit,
  copyNode,
  type Found,
  type Handover,
  initialContext,
  NEEDS_A_PERSON,
  type Outcome,
  type ProtocolContext,
  type ProtocolEmitted,
  type ProtocolEvent,
  type ProtocolInput,
  type ProtocolOutput,
  protocol,
  type Repair,
  type Replace,
  type ReplacedCopy,
  type Result,
  VERDICTS,
  type Verdict,
} from './protocol.js';
export { type ProtocolMachine, provideEffects } from './provide.js';
export { MACHINE_NAMES, MACHINES, MACHINES_TO_DRAW, type MachineName } from './registry.js';
export { rejoinMachine } from './rejoin.js';
export * from './steps.js';
