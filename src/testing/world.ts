import type { Clock, DiskStatus, Effects, RunState } from '../../machines/index.js';
import {
  createSimCluster,
  type Perturbation,
  resourceOf,
  type SimCluster,
  statusOf,
  type WorldSpec,
} from '../sim/index.js';
import type { Recipe } from './variants.js';

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
  /** Shared-storage disks: how each node has each disk open (null: closed). Absent for DRBD. */
  shared?: Record<string, SharedOpen[]>;
  /** Nodes of the instance that are down (powered off): they run nothing and hold no disk. */
  down?: string[];
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
        ? config.disks.map((d) => statusOf(resourceOf(world, d.resource), node))
        : [];
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
  const down = nodes.filter((n) => world.nodes[n]?.down === true);
  return {
    ...(down.length > 0 ? { down } : {}),
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
