export { SimClock } from './clock.js';
export { createSimCluster, type SimCluster, type SimClusterOptions, type SimStep } from './cluster.js';
export {
  configLink,
  defaultPeer,
  isConnected,
  joiningPeer,
  linkBetween,
  linkConnected,
  linkFor,
  localOf,
  otherEnd,
  pairLink,
  pairOf,
  resourceOf,
  statusOf,
} from './drbd.js';
export { Fault, FaultKind, faultFor, parseFault } from './faults.js';
export { type ClusterShape, clusterSpec, nodeNames } from './generate.js';
export { checkInvariants, presentOn, restStateProblems, runningOn } from './invariants.js';
export { Perturbation, perturb } from './perturb.js';
export {
  createWorld,
  DEFAULT_SETTINGS,
  DEMO_SPEC,
  type DrbdLink,
  type InstanceSpec,
  type Resource,
  World,
  type WorldSpec,
} from './world.js';
