/**
 * drbd-migrate: the machines (re-exported from drbd-migrate/machines), the runner that drives them,
 * and the simulated cluster, the embedded default backend.
 */
export * from '../machines/index.js';
export * from './cluster/index.js';
export * from './journal/index.js';
export { aboutRemote, RemoteError, remoteEffects, remoteLeases } from './remote/client.js';
export {
  type ServedCall,
  type ServedEffects,
  type ServeEffectsOptions,
  serveEffects,
} from './remote/serve.js';
export * from './runner/index.js';
export {
  currentStep,
  type Follow,
  newEvents,
  type RunStatus,
  type Runtime,
  runtimeRunner,
  type StepId,
  withStep,
} from './runtime/index.js';
export * from './sim/index.js';
