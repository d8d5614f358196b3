import {
  type CandidateFacts,
  choosePlacement,
  DEFAULT_LIMITS,
  type Effects,
  InstanceConfig,
  type NodeConfig,
  type Placement,
  spaceNeededMiB,
} from '../../machines/index.js';

/**
 * Where an instance's new secondary goes, read from the cluster (read-only): every node the config
 * knows but the instance's two, each judged by the same checks the replace makes before it touches
 * anything (drain mark, room in the volume group, free minors, N+1 memory); a node that does not
 * answer is passed over, saying so.
 */
export async function placeSecondary(
  effects: Effects,
  instance: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Placement & { config: InstanceConfig }> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LIMITS.stepTimeoutMs;
  const signal = options.signal ?? new AbortController().signal;
  const config = InstanceConfig.parse(await effects.getInstance({ instance, timeoutMs }, signal));
  const [nodes, instances] = await Promise.all([
    effects.listNodes({ timeoutMs }, signal),
    effects.listInstances({ timeoutMs }, signal),
  ]);
  const others = nodes.filter(
    (n) => n.name !== config.primaryNode && n.name !== config.secondaryNode && n.name !== config.thirdCopy,
  );
  const facts = await readCandidates(effects, others, instance, timeoutMs, signal);
  return {
    config,
    ...choosePlacement(
      config,
      instances.map((i) => InstanceConfig.parse(i)),
      facts,
    ),
  };
}

/**
 * New secondaries for every instance a drain of `node` leaves with its secondary there: those whose
 * secondary it is, and (when the drain moves them) those whose primary it is, which the move makes
 * its secondaries; and new third copies for those whose third copy (DRBD 9) it holds. Each node is read once; each choice then counts against the nodes' room, memory
 * and secondaries, so that the drain does not place more on a node than it holds.
 */
export async function placeSecondaries(
  effects: Effects,
  node: string,
  options: { primaries?: boolean; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<{ placements: Record<string, string>; unplaced: Record<string, string> }> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LIMITS.stepTimeoutMs;
  const signal = options.signal ?? new AbortController().signal;
  const [nodes, listed] = await Promise.all([
    effects.listNodes({ timeoutMs }, signal),
    effects.listInstances({ timeoutMs }, signal),
  ]);
  // The world as the drain leaves it before its replaces: its primaries moved to their secondaries.
  let instances = listed.map((i) => InstanceConfig.parse(i));
  if (options.primaries !== false)
    instances = instances.map((c) =>
      c.primaryNode === node && c.secondaryNode !== null && c.diskTemplate === 'drbd'
        ? { ...c, primaryNode: c.secondaryNode, secondaryNode: node }
        : c,
    );
  // A third copy on the node moves too (DRBD 9): it is placed as a secondary is, away from the others.
  const wanting = instances
    .filter((c) => (c.secondaryNode === node || c.thirdCopy === node) && c.diskTemplate === 'drbd')
    .sort((a, b) => a.name.localeCompare(b.name));
  const placements: Record<string, string> = {};
  const unplaced: Record<string, string> = {};
  if (wanting.length === 0) return { placements, unplaced };
  // The node being drained takes nothing new, marked or not.
  const candidates = nodes.filter((n) => n.name !== node);
  const facts = new Map(
    (await readCandidates(effects, candidates, wanting[0]!.name, timeoutMs, signal)).map((f) => [f.node, f]),
  );
  for (const c of wanting) {
    const placed = choosePlacement(c, instances, [...facts.values()]);
    if (placed.chosen === null) {
      unplaced[c.name] = `no node can hold it: ${
        placed.passedOver.map((p) => p.why).join('; ') ||
        `the cluster has no node besides ${c.primaryNode} and ${node}`
      }`;
      continue;
    }
    const chosen = placed.chosen;
    placements[c.name] = chosen;
    // The copy takes its room on the chosen node, and the node holds one more secondary.
    const f = facts.get(chosen)!;
    const used = spaceNeededMiB(c.disks) ?? 0;
    if (f.storage !== null)
      facts.set(chosen, {
        ...f,
        storage: {
          ...f.storage,
          freeMiB: f.storage.freeMiB - used,
          minors: [...f.storage.minors, ...c.disks.map((d) => d.minor)],
        },
      });
    const moved = c.thirdCopy === node ? { thirdCopy: chosen } : { secondaryNode: chosen };
    instances = instances.map((i) => (i.name === c.name ? { ...i, ...moved } : i));
  }
  return { placements, unplaced };
}

/**
 * What each candidate node answers: its storage and free memory (`instance` names the hypervisor
 * whose node info is read); a drained node is not asked, and one that does not answer has nulls.
 */
async function readCandidates(
  effects: Effects,
  nodes: readonly NodeConfig[],
  instance: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<CandidateFacts[]> {
  return Promise.all(
    nodes.map(async (n): Promise<CandidateFacts> => {
      if (n.drained) return { node: n.name, config: n, memoryFreeMiB: null, storage: null };
      const [storage, info] = await Promise.all([
        effects.nodeStorage({ node: n.name, timeoutMs }, signal).catch(() => null),
        effects.nodeInfo({ instance, nodes: [n.name], timeoutMs }, signal).catch(() => null),
      ]);
      return { node: n.name, config: n, storage, memoryFreeMiB: info?.[n.name]?.memoryFreeMiB ?? null };
    }),
  );
}
