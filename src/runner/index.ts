export {
  type RunEvent,
  RunInterrupted,
  type RunOptions,
  runCleanup,
  runMachine,
  runMigration,
  stateKey,
} from './run.js';
