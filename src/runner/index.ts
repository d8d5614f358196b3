export {
  type RunEvent,
  RunInterrupted,
  type RunOptions,
  rejectedInput,
  runCleanup,
  runMachine,
  runMigration,
  stateKey,
} from './run.js';
