/**
 * drbd-migrate/restate: the machines as durable executions on Restate. Needs the optional peer
 * @restatedev/restate-sdk (workers); clients speak plain HTTP. See docs/restate.md.
 */

export { type Balancer, startBalancer } from './balancer.js';
export {
  attachRun,
  cancelRun,
  evacuationStatus,
  type FollowOptions,
  followEvacuation,
  followRun,
  instanceKey,
  type RestateEndpoints,
  RestateError,
  registerDeployment,
  runOnRestate,
  runStatus,
  submitEvacuation,
  submitRun,
} from './client.js';
export { type EvacuationObjectOptions, evacuationObject } from './evacuation.js';
export { IDENTITY_KEY, newIdentityKey, restateIdentityKey } from './identity.js';
export {
  EVACUATION_OBJECT,
  HANDLER_OF,
  INSTANCE_OBJECT,
  NODE_OBJECT,
  RUN_HANDLERS,
  type RunHandler,
} from './names.js';
export { nodeObject, withNodeSlots } from './nodes.js';
export { type InstanceObjectOptions, instanceObject } from './object.js';
export { type EvacuationStatus, splitKey } from './protocol.js';
export { restateRuntime } from './runtime.js';
export { RestateMissingError } from './sdk.js';
export {
  type RestateNode,
  type RestateServer,
  type RestateServerOptions,
  restateServerBinary,
  startRestateServer,
} from './server.js';
export { type Durable, type DurableOptions, durableEffects } from './steps.js';
export { serveWorker, type Worker, type WorkerOptions } from './worker.js';
