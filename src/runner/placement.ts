import {
  type CandidateFacts,
  choosePlacement,
  DEFAULT_LIMITS,
  type Effects,
  InstanceConfig,
  type Placement,
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
  const others = nodes.filter((n) => n.name !== config.primaryNode && n.name !== config.secondaryNode);
  const facts = await Promise.all(
    others.map(async (n): Promise<CandidateFacts> => {
      if (n.drained) return { node: n.name, config: n, memoryFreeMiB: null, storage: null };
      const [storage, info] = await Promise.all([
        effects.nodeStorage({ node: n.name, timeoutMs }, signal).catch(() => null),
        effects.nodeInfo({ instance, nodes: [n.name], timeoutMs }, signal).catch(() => null),
      ]);
      return {
        node: n.name,
        config: n,
        storage,
        memoryFreeMiB: info?.[n.name]?.memoryFreeMiB ?? null,
      };
    }),
  );
  return {
    config,
    ...choosePlacement(
      config,
      instances.map((i) => InstanceConfig.parse(i)),
      facts,
    ),
  };
}
