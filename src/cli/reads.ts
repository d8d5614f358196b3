import { DEFAULT_CONVERGENCE, type Effects } from '../../machines/index.js';
import { sshEffects } from '../backend/index.js';
import { remoteEffects } from '../remote/client.js';
import { createSimCluster } from '../sim/index.js';
import { copyPolicyOf, readClusterFile } from './cluster.js';
import { isServedWorld } from './distributed.js';
import { UsageError } from './errors.js';
import { loadWorld } from './worldFile.js';

/**
 * The effects a command reads through before (or instead of) a run: the nodes of --cluster, a served
 * world, or a copy of a world file (nothing read is saved). For read-only calls only (`plan`, the
 * placement of a new secondary); runs go through a session.
 */
export async function readEffects(
  values: Record<string, unknown>,
  /** The instance the reads are about, refused when the file does not know it; null: every one. */
  instance: string | null,
): Promise<{ effects: Effects; policy: typeof DEFAULT_CONVERGENCE; close: () => void }> {
  if (typeof values.cluster === 'string') {
    const file = await readClusterFile(values.cluster);
    if (instance !== null && !file.instances.some((i) => i.name === instance))
      throw new UsageError(`instance ${instance} is not in ${values.cluster}`);
    const backend = await sshEffects(values.cluster);
    return {
      effects: backend.effects,
      policy: { ...DEFAULT_CONVERGENCE, ...copyPolicyOf(file) },
      close: () => backend.close(),
    };
  }
  const world = values.world as string;
  if (isServedWorld(world))
    return { effects: remoteEffects(world), policy: DEFAULT_CONVERGENCE, close: () => {} };
  const loaded = await loadWorld(world);
  if (instance !== null && loaded.config.instances[instance] === undefined)
    throw new UsageError(`instance ${instance} is not in world file ${world}`);
  // A copy of the world: whatever simulated time the reads take is not saved.
  return { effects: createSimCluster(loaded).effects, policy: DEFAULT_CONVERGENCE, close: () => {} };
}
