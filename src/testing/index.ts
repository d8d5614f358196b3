/**
 * drbd-migrate/testing: model-based tests generated from the machines, and a contract kit that runs
 * them against any implementation of the effect contract. The machines themselves, their registry
 * (MACHINES) and what describes them (transitionsOf, NEEDS_A_PERSON) come from drbd-migrate/machines.
 */

export {
  leftProblems,
  outcomeProblems,
  primaryNodeProblems,
  rejoinedProblems,
  restProblems,
  safetyProblems,
  stoppedProblems,
} from './oracle.js';
export {
  type GeneratedPath,
  machinePaths,
  migrationPaths,
  type PathSet,
  type PathStep,
  type PlanAction,
  type PlanEntry,
} from './paths.js';
export { type ReplayOptions, type ReplayResult, replayPath } from './replay.js';
export { recordTransitions } from './transitions.js';
export { type Recipe, type StartPoint, VARIANTS, type Variant } from './variants.js';
export { type MakeWorld, simWorld, type TestWorld, viewOfSim, type WorldView } from './world.js';
