import { randomBytes } from 'node:crypto';
import { copyFile, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { type EffectInput, type Effects, type InstanceConfig, issuesText } from '../../machines/index.js';
import { ClusterFile, type ClusterInstance, drbdNodeId } from './schema.js';

type DrbdVersion = InstanceConfig['drbdVersion'];

export class ClusterFileError extends Error {
  override name = 'ClusterFileError';
}

const isYaml = (path: string) => /\.ya?ml$/i.test(path);

/** Reads and validates a cluster file (JSON, or YAML by its .yaml/.yml name). */
export async function loadCluster(path: string): Promise<ClusterFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ClusterFileError(
      `cannot read cluster file ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
    );
  }
  let data: unknown;
  try {
    data = isYaml(path) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new ClusterFileError(
      `cluster file ${path} is not ${isYaml(path) ? 'YAML' : 'JSON'}: ${(error as Error).message}`,
    );
  }
  const parsed = ClusterFile.safeParse(data);
  if (!parsed.success) {
    throw new ClusterFileError(
      `cluster file ${path} is wrong: ${issuesText(parsed.error.issues.slice(0, 1))}`,
    );
  }
  return parsed.data;
}

/**
 * Replaces the file atomically (temporary file, fsync, rename, fsync of the directory) and keeps the
 * version it replaces as FILE.prev, so the file always names where each instance runs.
 */
export async function saveCluster(path: string, cluster: ClusterFile): Promise<void> {
  const checked = ClusterFile.parse(cluster);
  const text = isYaml(path) ? stringifyYaml(checked) : `${JSON.stringify(checked, null, 2)}\n`;
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(tmp, 'w', 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await copyFile(path, `${path}.prev`).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export function instanceConfig(spec: ClusterInstance, drbdVersion: DrbdVersion = '8.4'): InstanceConfig {
  return {
    name: spec.name,
    primaryNode: spec.primary,
    secondaryNode: spec.secondary,
    diskTemplate: spec.storage,
    // A shared disk has no DRBD minor; the contract's minor is then its index, read by no driver.
    disks: spec.disks.map((d, index) =>
      'resource' in d
        ? {
            index,
            resource: d.resource,
            minor: d.minor,
            ...(d.sizeMiB === undefined ? {} : { sizeMiB: d.sizeMiB }),
            ...(d.metaDisk === undefined ? {} : { metaDisk: d.metaDisk }),
          }
        : { index, resource: d.name, minor: index },
    ),
    memoryMiB: spec.memoryMiB,
    minMemoryMiB: spec.minMemoryMiB ?? spec.memoryMiB,
    migrationMode: spec.migrationMode,
    adminState: 'up',
    formerSecondary: spec.formerSecondary ?? null,
    selfFenceMs: spec.selfFenceMs ?? null,
    tiebreaker: spec.tiebreaker ?? null,
    drbdVersion,
    thirdCopy: spec.thirdCopy ?? null,
    formerThirdCopy: spec.formerThirdCopy ?? null,
  };
}

/** The DRBD an instance's nodes run (a mixed pair is refused by the file's schema): its primary's. */
const drbdOf = (cluster: ClusterFile, spec: ClusterInstance): DrbdVersion =>
  cluster.nodes.find((n) => n.name === spec.primary)?.drbd ?? '8.4';

/** Where the file names each copy a replace moves, and the one it replaced. */
const COPY_FIELDS = {
  secondary: { field: 'secondary', former: 'formerSecondary', name: 'secondary' },
  thirdCopy: { field: 'thirdCopy', former: 'formerThirdCopy', name: 'third copy' },
} as const;
type CopyFields = (typeof COPY_FIELDS)[keyof typeof COPY_FIELDS];

/** The config-store effects, backed by the cluster file: read it; at the commit point, rewrite it. */
export function clusterConfigEffects(
  path: string,
): Pick<
  Effects,
  | 'getInstance'
  | 'setPrimaryNode'
  | 'listInstances'
  | 'listNodes'
  | 'takeoverLoad'
  | 'setNodeDrained'
  | 'setSecondaryNode'
  | 'forgetFormerSecondary'
  | 'setThirdCopyNode'
  | 'forgetFormerThirdCopy'
> {
  const find = (cluster: ClusterFile, name: string) => {
    const spec = cluster.instances.find((i) => i.name === name);
    if (spec === undefined) throw new Error(`Instance '${name}' not known in ${path}`);
    return spec;
  };
  /** A replace's commit: the file names `node` for the copy, `former` as still to be removed. */
  async function nameCopy(instance: string, copy: CopyFields, node: string, former: string) {
    const cluster = await loadCluster(path);
    const spec = find(cluster, instance);
    // Run again after a lost answer: already committed, nothing to do.
    if (spec[copy.field] === node) return;
    if (spec[copy.field] !== former)
      throw new Error(
        `${former} is not the ${copy.name} of instance ${instance} in ${path} (${spec[copy.field] ?? 'none'} is)`,
      );
    // DRBD 9: the new node's node-id, as its device was made with, is the file's from now on.
    for (const d of spec.disks) {
      if (!('resource' in d) || d.nodeIds === undefined) continue;
      d.nodeIds[node] = drbdNodeId(d, node)!;
    }
    spec[copy.field] = node;
    spec[copy.former] = former;
    await saveCluster(path, cluster);
  }
  /** The former copy's copies are gone: the file stops naming it (and its node-id). */
  async function forgetFormer(instance: string, copy: CopyFields) {
    const cluster = await loadCluster(path);
    const spec = find(cluster, instance);
    const former = spec[copy.former];
    if (former === undefined) return;
    for (const d of spec.disks) if ('resource' in d && d.nodeIds !== undefined) delete d.nodeIds[former];
    delete spec[copy.former];
    await saveCluster(path, cluster);
  }
  return {
    getInstance: async ({ instance }: EffectInput<'getInstance'>) => {
      const cluster = await loadCluster(path);
      const spec = find(cluster, instance);
      return instanceConfig(spec, drbdOf(cluster, spec));
    },
    listInstances: async () => {
      const cluster = await loadCluster(path);
      return cluster.instances.map((spec) => instanceConfig(spec, drbdOf(cluster, spec)));
    },
    listNodes: async () => (await loadCluster(path)).nodes.map((n) => ({ name: n.name, drained: n.drained })),
    takeoverLoad: async ({ node, primary }: EffectInput<'takeoverLoad'>) => {
      const kin = (await loadCluster(path)).instances.filter(
        (i) => i.primary === primary && i.secondary === node,
      );
      return { instances: kin.map((i) => i.name), memoryMiB: kin.reduce((a, i) => a + i.memoryMiB, 0) };
    },
    setNodeDrained: async ({ node, drained }: EffectInput<'setNodeDrained'>) => {
      const cluster = await loadCluster(path);
      const spec = cluster.nodes.find((n) => n.name === node);
      if (spec === undefined) throw new Error(`${node} is not a node of ${path}`);
      if (spec.drained === drained) return;
      spec.drained = drained;
      await saveCluster(path, cluster);
    },
    setSecondaryNode: ({ instance, node, former }: EffectInput<'setSecondaryNode'>) =>
      nameCopy(instance, COPY_FIELDS.secondary, node, former),
    forgetFormerSecondary: ({ instance }: EffectInput<'forgetFormerSecondary'>) =>
      forgetFormer(instance, COPY_FIELDS.secondary),
    setThirdCopyNode: ({ instance, node, former }: EffectInput<'setThirdCopyNode'>) =>
      nameCopy(instance, COPY_FIELDS.thirdCopy, node, former),
    forgetFormerThirdCopy: ({ instance }: EffectInput<'forgetFormerThirdCopy'>) =>
      forgetFormer(instance, COPY_FIELDS.thirdCopy),
    setPrimaryNode: async ({ instance, node, withdrawSelfFence }: EffectInput<'setPrimaryNode'>) => {
      const cluster = await loadCluster(path);
      const spec = find(cluster, instance);
      // Run again after a lost answer: already committed, nothing to do.
      if (spec.primary === node) return;
      if (spec.secondary !== node && spec.thirdCopy !== node)
        throw new Error(`${node} is not a node of instance ${instance} in ${path}`);
      // To the third copy: the old secondary becomes the third, in the same write.
      if (spec.thirdCopy === node) spec.thirdCopy = spec.secondary;
      spec.secondary = spec.primary;
      spec.primary = node;
      if (withdrawSelfFence === true) delete spec.selfFenceMs;
      await saveCluster(path, cluster);
    },
  };
}
