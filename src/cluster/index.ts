export { ClusterFileError, clusterConfigEffects, instanceConfig, loadCluster, saveCluster } from './file.js';
export {
  ClusterDisk,
  ClusterFile,
  ClusterHypervisor,
  ClusterInstance,
  ClusterNode,
  ClusterSharedDisk,
  drbdNodeId,
} from './schema.js';
