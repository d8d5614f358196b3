import {
  type Clock,
  type DiskStatus,
  type Effects,
  type RunState,
  volumeNames,
} from '../../machines/index.js';
import {
  configLink,
  createSimCluster,
  type DrbdLink,
  defaultPeer,
  linkBetween,
  linkConnected,
  otherEnd,
  type Perturbation,
  type Resource,
  resourceOf,
  type SimCluster,
  statusOf,
  type WorldSpec,
} from '../sim/index.js';
import type { Recipe } from './variants.js';

/** Powered off, or cut off from every network: nothing reaches what it holds. */
const gone = (world: { nodes: Record<string, { down: boolean; isolatedSince: number | null }> }, n: string) =>
  world.nodes[n]?.down === true || (world.nodes[n]?.isolatedSince ?? null) !== null;

/** Nodes of the resource's link that are reachable and hold all of its data (see WorldView.copies). */
function upToDateCopies(
  world: { nodes: Record<string, { down: boolean; isolatedSince: number | null }> },
  r: Resource,
  primary: string,
  secondary: string | null,
  third: string | null,
): number {
  const behind = (l: DrbdLink, n: string) => {
    const other = otherEnd(l, n);
    return (l.dirtyKiB[other] ?? 0) > 0 || l.newGeneration.includes(other);
  };
  const holds = (n: string) => !gone(world, n) && r.local[n]?.diskState === 'UpToDate';
  const l = configLink(r, primary, secondary);
  const pair = l.ends.filter((n) => holds(n) && !behind(l, n)).length;
  // A third copy counts while it follows the primary (or the secondary): UpToDate, connected, not
  // behind. One apart from both falls behind with the next write, by no doing of a run.
  const t = [primary, secondary]
    .filter((n): n is string => n !== null && third !== null)
    .map((n) => linkBetween(r, n, third!))
    .find((l) => l !== undefined && linkConnected(l));
  return pair + (t !== undefined && holds(third!) && !behind(t, third!) ? 1 : 0);
}

/** What the oracle needs to know about a world, whatever the backend. */
export interface WorldView {
  /** Run state of the instance on each node that has it. */
  instance: Record<string, RunState>;
  configPrimary: string;
  configSecondary: string | null;
  /** What the config wants (Ganeti's admin_state); absent: up. */
  configAdminState?: 'up' | 'down';
  /** DRBD status of the instance's disks, per node. */
  disks: Record<string, DiskStatus[]>;
  /**
   * DRBD 9 with a third copy: each copy's disks towards each other copy, per node then peer (a run's
   * `left` may speak of one towards the third). Absent where there is none, or the backend cannot tell.
   */
  disksTowards?: Record<string, Record<string, DiskStatus[]>>;
  /** Shared-storage disks: how each node has each disk open (null: closed). Absent for DRBD. */
  shared?: Record<string, SharedOpen[]>;
  /**
   * Nodes of the instance that are down (powered off) or cut off from every network: nothing reaches
   * them, and their peer runs degraded until they come back.
   */
  down?: string[];
  /** A replaced secondary whose copies the config keeps as still to be removed. */
  configFormerSecondary?: string | null;
  /** DRBD 9: the third copy the config names (null: none). Absent where the backend cannot tell. */
  configThirdCopy?: string | null;
  /** A replaced third copy whose copies the config keeps as still to be removed. */
  configFormerThirdCopy?: string | null;
  /**
   * Copies of the instance's disks (volumes, DRBD devices) on nodes that are neither its primary nor
   * its secondary: "node-c: web1-disk0_data". Absent where the backend cannot tell.
   */
  leftovers?: string[];
  /**
   * The replication link between the instance's nodes is cut by the world (a network failure), not
   * by a run: what is written meanwhile on one side is the world's doing. Absent where unknown.
   */
  linkCut?: boolean;
  /**
   * Per disk, how many nodes hold all of its data (UpToDate, and not behind a peer that wrote while
   * apart): DEVELOPERS.md's rule 8 counts these. Absent where the backend cannot tell.
   */
  copies?: number[];
  /**
   * Where a disk's named tiebreaker does not have exactly the instance's two nodes as its peers (its
   * vote would go to a node without a copy, or not to one with): what is wrong. Absent when right.
   */
  tiebreakerWiring?: string[];
  /**
   * DRBD connections between a copy the config names and a node it does not (an old secondary still
   * a peer of the third copy, a new copy left joined): what each is. Absent when there are none.
   */
  strayPeers?: string[];
}

export type SharedOpen = 'exclusive' | 'shared' | null;

/** One world for one path, on some backend. */
export interface TestWorld {
  effects: Effects;
  clock: Clock;
  perturb(kind: Perturbation, instance: string): void | Promise<void>;
  inspect(): WorldView | Promise<WorldView>;
  /** Rules the backend saw broken that a view cannot show (e.g. a promotion before sync); may be empty. */
  violations(): string[];
  dispose?(): void | Promise<void>;
}

/** Makes a fresh world shaped by a path's recipe (the demo cluster when the recipe says nothing). */
export type MakeWorld = (recipe: Recipe) => TestWorld | Promise<TestWorld>;

export function viewOfSim(sim: SimCluster, instance = 'web1'): WorldView {
  // Read, not copied: the view is built of new objects, and it is taken after every step.
  const world = sim.current();
  const config = world.config.instances[instance];
  if (config === undefined) throw new Error(`no instance ${instance} in the simulated world`);
  const nodes = [config.primaryNode, config.secondaryNode].filter((n): n is string => n !== null);
  const disks: Record<string, DiskStatus[]> = {};
  for (const node of nodes) {
    disks[node] =
      config.diskTemplate === 'drbd'
        ? config.disks.map((d) =>
            statusOf(
              world,
              resourceOf(world, d.resource),
              node,
              defaultPeer(node, config.primaryNode, config.secondaryNode),
            ),
          )
        : [];
  }
  // A node outside the config's pair with a device of the instance (a replace's new or old copy).
  if (config.diskTemplate === 'drbd')
    for (const node of Object.keys(world.nodes)) {
      if (nodes.includes(node)) continue;
      const held = config.disks.filter((d) => world.resources[d.resource]?.local[node] !== undefined);
      if (held.length > 0)
        disks[node] = held.map((d) =>
          statusOf(
            world,
            resourceOf(world, d.resource),
            node,
            defaultPeer(node, config.primaryNode, config.secondaryNode),
          ),
        );
    }
  const shared: Record<string, SharedOpen[]> = {};
  for (const node of nodes) {
    const open = config.disks.flatMap((d) => {
      const disk = world.sharedDisks[d.resource];
      return disk === undefined ? [] : [disk.open[node] ?? null];
    });
    if (open.length > 0) shared[node] = open;
  }
  const running: Record<string, RunState> = {};
  for (const [node, vms] of Object.entries(world.vms)) {
    const vm = vms[instance];
    if (vm !== undefined) running[node] = vm.state;
  }
  const copyNodes = [...nodes, ...(config.thirdCopy === null ? [] : [config.thirdCopy])];
  const disksTowards: Record<string, Record<string, DiskStatus[]>> = {};
  if (config.thirdCopy !== null && config.diskTemplate === 'drbd')
    for (const node of copyNodes)
      disksTowards[node] = Object.fromEntries(
        copyNodes
          .filter((peer) => peer !== node)
          .map((peer) => [
            peer,
            config.disks.flatMap((d) => {
              const r = world.resources[d.resource];
              return r?.local[node] === undefined ? [] : [statusOf(world, r, node, peer)];
            }),
          ]),
      );
  const down = nodes.filter((n) => gone(world, n));
  const leftovers: string[] = [];
  // A third copy the config names is a copy in use, not a leftover.
  const holders = [...nodes, ...(config.thirdCopy === null ? [] : [config.thirdCopy])];
  for (const [node, vg] of Object.entries(world.storage)) {
    if (holders.includes(node)) continue;
    for (const d of config.disks) {
      const names = volumeNames(d.resource);
      for (const v of [names.data, names.meta])
        if (vg.volumes[v] !== undefined) leftovers.push(`${node}: ${v}`);
      if (world.resources[d.resource]?.local[node] !== undefined)
        leftovers.push(`${node}: DRBD device ${d.resource} (minor ${d.minor})`);
    }
  }
  const copies = config.disks.flatMap((d) => {
    const r = world.resources[d.resource];
    return r === undefined
      ? []
      : [upToDateCopies(world, r, config.primaryNode, config.secondaryNode, config.thirdCopy)];
  });
  const linkCut = config.disks.some((d) =>
    (world.resources[d.resource]?.links ?? []).some((l) => l.linkDownUntil !== null),
  );
  // A named tiebreaker's vote goes to the peers it has: they must be the instance's copies.
  const tiebreakerWiring = config.disks.flatMap((d) => {
    const r = world.resources[d.resource];
    if (r === undefined || r.tiebreaker === null) return [];
    const has = [...r.tiebreakerPeers].sort();
    return JSON.stringify(has) === JSON.stringify([...holders].sort())
      ? []
      : [
          `${r.name}'s tiebreaker ${r.tiebreaker} has ${has.join(', ') || 'no peers'} as its peers, not ${holders.join(' and ')}`,
        ];
  });
  const strayPeers = config.disks.flatMap((d) =>
    (world.resources[d.resource]?.links ?? []).flatMap((l) => {
      const named = l.ends.filter((n) => holders.includes(n));
      return named.length === 1
        ? [
            `${d.resource} on ${named[0]} has ${otherEnd(l, named[0]!)} as a peer, which holds no copy the config names`,
          ]
        : [];
    }),
  );
  return {
    ...(tiebreakerWiring.length > 0 ? { tiebreakerWiring } : {}),
    ...(strayPeers.length > 0 ? { strayPeers } : {}),
    ...(Object.keys(disksTowards).length > 0 ? { disksTowards } : {}),
    ...(down.length > 0 ? { down } : {}),
    ...(linkCut ? { linkCut } : {}),
    configFormerSecondary: config.formerSecondary,
    configThirdCopy: config.thirdCopy,
    configFormerThirdCopy: config.formerThirdCopy,
    leftovers,
    ...(copies.length > 0 ? { copies } : {}),
    instance: running,
    configPrimary: config.primaryNode,
    configSecondary: config.secondaryNode,
    configAdminState: config.adminState,
    disks,
    ...(Object.keys(shared).length > 0 ? { shared } : {}),
  };
}

/** The simulated cluster as a test world; the default backend of the contract suite. */
export function simWorld(recipe: Recipe, spec?: WorldSpec): TestWorld & { sim: SimCluster } {
  const sim = createSimCluster(spec ?? recipe.spec ?? {});
  return {
    sim,
    effects: sim.effects,
    clock: sim.clock,
    perturb: (kind, instance) => sim.perturb(kind, instance),
    inspect: () => viewOfSim(sim),
    violations: () => sim.world.violations,
  };
}
