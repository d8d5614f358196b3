/**
 * drbd-migrate/testing: model-based tests generated from the machines, and a contract kit that runs
 * them against any implementation of the effect contract.
 */

export { NEEDS_A_PERSON } from '../../machines/index.js';
export { outcomeProblems, primaryNodeProblems, restProblems, safetyProblems } from './oracle.js';
export {
  type GeneratedPath,
  MACHINES,
  type MachineName,
  migrationPaths,
  type PathSet,
  type PathStep,
  type PlanAction,
  type PlanEntry,
} from './paths.js';
export { type ReplayOptions, type ReplayResult, replayPath } from './replay.js';
export { recordTransitions, type TransitionInfo, transitionKey, transitionsOf } from './transitions.js';
export { type Recipe, type StartPoint, VARIANTS, type Variant } from './variants.js';
export { type MakeWorld, simWorld, type TestWorld, viewOfSim, type WorldView } from './world.js';
