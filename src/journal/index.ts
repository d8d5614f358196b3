export {
  EvacuationJournal,
  type EvacuationRecord,
  type JournaledEvacuationOptions,
  runEvacuationJournaled,
} from './evacuation.js';
export { fileLeases } from './leases.js';
export {
  FileLocks,
  type Lease,
  LockedError,
  type LockOwner,
  type LockStore,
  takeLockFile,
} from './lock.js';
export {
  type JournalOptions,
  type MachineKind,
  type Resumed,
  ResumeError,
  resumeRun,
  runJournaled,
} from './run.js';
export { type JournalRuntimeOptions, journalRuntime } from './runtime.js';
export { FileJournal, JournalEntry, JournalError, type JournalStore } from './store.js';
export { machineVersion } from './version.js';
