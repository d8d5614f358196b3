export { type EvacuationOptions, plainRunner, type RunNotice, runEvacuation } from './evacuate.js';
export {
  fallbackInput,
  type RunEvent,
  RunInterrupted,
  type RunOptions,
  rejectedInput,
  runCleanup,
  runFailover,
  runMachine,
  runMigration,
  runRejoin,
  stateKey,
} from './run.js';
