export { type EvacuationOptions, plainRunner, type RunNotice, runEvacuation } from './evacuate.js';
export {
  DEFAULT_LEASE_MS,
  judgeLease,
  LeaseAnswer,
  LeaseLost,
  type LeaseOptions,
  type LeaseStore,
  memoryLeases,
  withLease,
} from './lease.js';
export { placeSecondaries, placeSecondary } from './placement.js';
export {
  fallbackInput,
  type RunEvent,
  RunInterrupted,
  type RunOptions,
  rejectedInput,
  runCleanup,
  runFailover,
  runKind,
  runMachine,
  runMigration,
  runRejoin,
  runRequest,
  stateKey,
  whenAborted,
} from './run.js';
