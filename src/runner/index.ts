export { type RunEvent, RunInterrupted, type RunOptions, runCleanup, runMigration, stateKey } from './run.js';
