export { type EvacuationOptions, plainRunner, type RunNotice, runEvacuation } from './evacuate.js';
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
