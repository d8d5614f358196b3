import { z } from 'zod';
import {
  DrbdConnection,
  DrbdDiskState,
  InstanceConfig,
  InstanceName,
  META_MIB,
  Minor,
  NodeName,
  ResourceName,
  RunState,
  SHARED_STORAGE,
  volumeNames,
} from '../../machines/index.js';

/**
 * The simulated cluster's whole state, plain JSON so it can be saved between CLI runs. Everything that
 * changes with time (resync, memory transfer, guest writes) is advanced lazily by `advance`.
 */

export const DrbdLocal = z.object({
  role: z.enum(['Primary', 'Secondary']),
  diskState: DrbdDiskState,
});
export type DrbdLocal = z.infer<typeof DrbdLocal>;

/** One side's network configuration of a connection (drbdsetup connect). */
export const NetConfig = z.object({
  allowTwoPrimaries: z.boolean(),
  /** Connected with --discard-my-data: this side loses a split brain. */
  discardMyData: z.boolean().default(false),
});
export type NetConfig = z.infer<typeof NetConfig>;

/**
 * One DRBD connection between two nodes holding a copy: each side's configuration and view of it,
 * and what the two have to send each other. DRBD 8.4 has one per resource; DRBD 9 one per pair of
 * peers (a new copy joining has its own beside the pair's, make-before-break).
 */
export const DrbdLink = z.object({
  /** The two nodes; a new copy's link names the node it copies from first. */
  ends: z.tuple([NodeName, NodeName]),
  /** Each side's network configuration; null (or absent) while that side has none (StandAlone). */
  net: z.record(NodeName, NetConfig.nullable()),
  /** Each side's connection state. */
  connection: z.record(NodeName, DrbdConnection),
  /** The side sending during a resync, null when none runs. */
  syncSource: NodeName.nullable(),
  outOfSyncKiB: z.number().nonnegative(),
  syncTotalKiB: z.number().nonnegative(),
  /** KiB each side wrote while the two were not connected (the bitmap the resync will send). */
  dirtyKiB: z.record(NodeName, z.number().nonnegative()),
  /**
   * Sides promoted while not connected: each began a new data generation (DRBD's new current UUID),
   * so the other's data is no longer its ancestor even before anything is written.
   */
  newGeneration: z.array(NodeName).default([]),
  /** The replication link is down until then (a network failure); DRBD reconnects by itself after. */
  linkDownUntil: z.number().nullable(),
  /**
   * A new copy's link beside the pair's (DRBD 9's make-before-break), until the old secondary
   * leaves and it becomes the pair's; a third copy's links are not joining.
   */
  joining: z.boolean().default(false),
});
export type DrbdLink = z.infer<typeof DrbdLink>;

export const Resource = z.preprocess(
  fromPairForm,
  z.object({
    name: ResourceName,
    minor: Minor,
    sizeKiB: z.number().positive(),
    /** Every node with a device of it: its role and disk. */
    local: z.record(NodeName, DrbdLocal),
    /**
     * Its connections. The first is the pair's (the instance's primary and secondary); a second is a
     * copy joining beside them (DRBD 9), until the old secondary leaves and it becomes the pair's.
     */
    links: z.array(DrbdLink).min(1),
    /**
     * DRBD 9's `quorum majority` with a diskless tiebreaker connected to both nodes (and
     * `on-no-quorum io-error`): a node cut off from both cannot write (see quorumOf).
     */
    quorum: z.boolean().default(false),
    /**
     * The node holding the tiebreaker's vote, where the config names one: it reaches the pair only
     * while it is up and not cut off itself. Null: a tiebreaker outside the simulated nodes, always up.
     */
    tiebreaker: NodeName.nullable().default(null),
    /**
     * The nodes a named tiebreaker has a connection with (its votes go to them alone): the pair at
     * first; a new secondary once it joined it too, the old one no longer once it was removed there.
     */
    tiebreakerPeers: z.array(NodeName).default([]),
    /** The named tiebreaker's replication links are down (it answers its management network). */
    tiebreakerCut: z.boolean().default(false),
    /** DRBD 9's auto-promote left on (its default): a misconfigured resource, refused by a migration. */
    autoPromote: z.boolean().default(false),
    /** A resync rate of its own (a congested link) until slowUntil, or null for the cluster's. */
    resyncKiBps: z.number().positive().nullable(),
    slowUntil: z.number().nullable(),
    /** The DRBD its nodes run: 9 lets a further peer join beside the pair (a link of its own). */
    drbd: z.enum(['8.4', '9']).default('8.4'),
    /**
     * Since when each node running a guest on it has lost quorum here (DRBD 9): its quorum-lost
     * handler stops the guest the instance's selfFenceMs later. Gone once it holds quorum again.
     */
    quorumLostSince: z.record(NodeName, z.number()).default({}),
  }),
);
export type Resource = z.infer<typeof Resource>;

/**
 * A world saved before resources had links kept one pair (`nodes`, each node's `net` and
 * `connection` beside its role) and a joining peer apart: read as links, the same state.
 */
function fromPairForm(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || !('nodes' in value) || 'links' in value) return value;
  const old = value as Record<string, unknown> & {
    nodes: [string, string];
    local: Record<string, { net?: unknown; connection?: string } & Record<string, unknown>>;
    joining?: {
      node: string;
      to: string;
      configured: string[];
      connected: boolean;
      outOfSyncKiB: number;
      totalKiB: number;
    } | null;
  };
  const {
    nodes,
    joining,
    syncSource,
    outOfSyncKiB,
    syncTotalKiB,
    dirtyKiB,
    newGeneration,
    linkDownUntil,
    ...rest
  } = old;
  const side = (n: string) => old.local[n] ?? {};
  const links: unknown[] = [
    {
      ends: nodes,
      net: Object.fromEntries(nodes.map((n) => [n, side(n).net ?? null])),
      connection: Object.fromEntries(nodes.map((n) => [n, side(n).connection ?? 'StandAlone'])),
      syncSource,
      outOfSyncKiB,
      syncTotalKiB,
      dirtyKiB,
      newGeneration,
      linkDownUntil,
    },
  ];
  if (joining != null) {
    const ends = [joining.to, joining.node];
    links.push({
      ends,
      net: Object.fromEntries(
        ends.map((n) => [n, joining.configured.includes(n) ? { allowTwoPrimaries: false } : null]),
      ),
      connection: Object.fromEntries(
        ends.map((n) => [
          n,
          joining.connected ? 'Connected' : joining.configured.includes(n) ? 'Connecting' : 'StandAlone',
        ]),
      ),
      syncSource: joining.outOfSyncKiB > 0 ? joining.to : null,
      outOfSyncKiB: joining.outOfSyncKiB,
      syncTotalKiB: joining.totalKiB,
      dirtyKiB: {},
      newGeneration: [],
      linkDownUntil: null,
      joining: true,
    });
  }
  const local = Object.fromEntries(
    Object.entries(old.local).map(([n, { net: _net, connection: _connection, ...l }]) => [n, l]),
  );
  return { ...rest, local, links };
}

/** A disk on shared storage: no replica, only which node has it open, and how. */
export const SharedDisk = z.object({
  name: ResourceName,
  nodes: z.tuple([NodeName, NodeName]),
  open: z.record(NodeName, z.enum(['exclusive', 'shared'])),
});
export type SharedDisk = z.infer<typeof SharedDisk>;

export const Migration = z.object({
  target: NodeName,
  live: z.boolean(),
  status: z.enum(['active', 'postcopy-active', 'postcopy-paused', 'completed', 'failed', 'cancelled']),
  transferredMiB: z.number().nonnegative(),
  totalMiB: z.number().nonnegative(),
  postcopy: z.boolean(),
  /** The migration link will fail once postcopy runs (a timed perturbation). */
  breaksInPostcopy: z.boolean(),
  /** Dirty passes so far (QEMU's dirty-sync-count): 1 during the first, full pass. */
  passes: z.number().int().nonnegative().default(1),
  /** A busy guest's copy: MiB of the current pass not yet sent, and MiB dirtied since it began. */
  passLeftMiB: z.number().nonnegative().default(0),
  dirtiedMiB: z.number().nonnegative().default(0),
});
export type Migration = z.infer<typeof Migration>;

/** A QEMU's migration parameters and capabilities: kept by the process, fresh in a new one. */
export const Tuning = z.object({
  bandwidthMiBps: z.number().positive().nullable(),
  downtimeMs: z.number().positive(),
  /** Capabilities, set before a copy: auto-converge may throttle, postcopy may be switched to. */
  autoConverge: z.boolean(),
  postcopy: z.boolean(),
  /** Auto-converge's CPU throttle, 0 when off; it grows each pass as QEMU's does. */
  throttlePercent: z.number().min(0).max(99),
});
export type Tuning = z.infer<typeof Tuning>;

export const FRESH_TUNING: Tuning = {
  bandwidthMiBps: null,
  downtimeMs: 300,
  autoConverge: false,
  postcopy: false,
  throttlePercent: 0,
};

export const Vm = z.object({
  state: RunState,
  memoryMiB: z.number().positive(),
  /** Guest ticks while running; a migrated guest must keep the count it had. */
  uptimeMs: z.number().nonnegative(),
  migration: Migration.nullable(),
  tuning: Tuning.default(FRESH_TUNING),
});

/**
 * How a guest uses its memory, wherever it runs: how fast it dirties pages and over how much of its
 * memory. A guest that dirties faster than the link copies a working set larger than the downtime
 * allows never converges without help.
 */
export const Guest = z.object({
  dirtyMiBps: z.number().nonnegative(),
  workingSetMiB: z.number().nonnegative(),
});
export type Guest = z.infer<typeof Guest>;
export type Vm = z.infer<typeof Vm>;

/** A node's LVM volume group: its size and the volumes in it (name → MiB). */
export const VolumeGroup = z.object({
  name: z.string(),
  sizeMiB: z.number().nonnegative(),
  volumes: z.record(z.string(), z.number().nonnegative()),
});
export type VolumeGroup = z.infer<typeof VolumeGroup>;

/** The volume group every simulated node has unless its spec says otherwise (Ganeti's default name). */
export const DEFAULT_VOLUME_GROUP = 'xenvg';
const DEFAULT_VG_MIB = 1024 * 1024;

export const Settings = z.object({
  /** Simulated ms a node-side command takes. */
  stepMs: z.number().nonnegative(),
  /** Simulated ms the DRBD handshake takes after both sides are configured. */
  connectMs: z.number().nonnegative(),
  resyncKiBps: z.number().positive(),
  migrationMiBps: z.number().positive(),
  /** A live copy sends more than the memory size: pages dirtied during the copy are sent again. */
  liveOverhead: z.number().min(1),
  guestWriteKiBps: z.number().nonnegative(),
  /** Switch to postcopy as soon as the copy starts (migrate-start-postcopy right after migrate). */
  postcopy: z.boolean(),
});
export type Settings = z.infer<typeof Settings>;

export const World = z
  .object({
    version: z.literal(1),
    time: z.number().nonnegative(),
    settings: Settings,
    nodes: z.record(
      NodeName,
      z.object({
        memoryMiB: z.number().positive(),
        hypervisorVersion: z.string(),
        /** Powered off or crashed: it answers nothing, runs nothing, and its DRBD devices are gone. */
        down: z.boolean().default(false),
        /** Its management network is cut: it answers nothing, but runs on, DRBD connected. */
        unreachable: z.boolean().default(false),
        /**
         * Since when it is cut off from every network, management, replication and the tiebreaker,
         * while it runs on (null: it is not). With quorum it cannot write, and a quorum-lost handler
         * stops its guests after the instance's selfFenceMs.
         */
        isolatedSince: z.number().nullable().default(null),
        /** Marked for maintenance in the config: nothing new is placed there. */
        drained: z.boolean().default(false),
        /**
         * DRBD 9: it would stop an instance on losing quorum (its usermode helper is drbdadm, and its
         * resource files name a quorum-lost handler). False: Ganeti's /bin/true helper, or no file.
         */
        selfFences: z.boolean().default(true),
      }),
    ),
    /** Each node's volume group (worlds saved before it existed get one, holding their disks). */
    storage: z.record(NodeName, VolumeGroup).default({}),
    // Keys are checked below, in the naming rule's own words (a record key's error says only "invalid").
    config: z.object({ instances: z.record(z.string(), InstanceConfig) }),
    resources: z.record(ResourceName, Resource),
    /** Disks of shared-storage instances (saved worlds from before they existed have none). */
    sharedDisks: z.record(ResourceName, SharedDisk).default({}),
    vms: z.record(NodeName, z.record(InstanceName, Vm)),
    /** Guests that dirty memory (the others are idle for the copy's purposes). */
    guests: z.record(InstanceName, Guest).default({}),
    /** Times the config changed an instance's primary node, for safety rule 3. */
    commits: z.record(InstanceName, z.number().int().nonnegative()),
    /** Safety rules broken so far, in the order they were broken. */
    violations: z.array(z.string()),
  })
  .transform(withStorage)
  .superRefine((world, ctx) => {
    // What the cluster file refuses, a world refuses too: a run would lock the one node twice.
    for (const [key, instance] of Object.entries(world.config.instances)) {
      const at = ['config', 'instances', key];
      const named = InstanceName.safeParse(key);
      if (!named.success) ctx.addIssue({ code: 'custom', path: at, message: named.error.issues[0]!.message });
      if (instance.name !== key)
        ctx.addIssue({ code: 'custom', path: at, message: `is keyed ${key} but named ${instance.name}` });
      if (instance.secondaryNode === instance.primaryNode)
        ctx.addIssue({
          code: 'custom',
          path: at,
          message: `names ${instance.primaryNode} as both its primary and its secondary node`,
        });
      for (const node of [instance.primaryNode, instance.secondaryNode, instance.thirdCopy])
        if (node !== null && world.nodes[node] === undefined)
          ctx.addIssue({
            code: 'custom',
            path: at,
            message: `names node ${node}, which the world does not have`,
          });
    }
  });
export type World = z.infer<typeof World>;

export const DEFAULT_SETTINGS: Settings = {
  stepMs: 150,
  connectMs: 400,
  resyncKiBps: 40 * 1024,
  migrationMiBps: 200,
  liveOverhead: 1.25,
  guestWriteKiBps: 8 * 1024,
  postcopy: false,
};

export interface InstanceSpec {
  name: string;
  primary: string;
  secondary: string | null;
  memoryMiB?: number;
  minMemoryMiB?: number;
  diskTemplate?: InstanceConfig['diskTemplate'];
  migrationMode?: InstanceConfig['migrationMode'];
  /** Sizes of the instance's DRBD disks, one resource each. */
  disksMiB?: number[];
  running?: boolean;
  /** What the config wants (Ganeti's admin_state); default up, even when it is not running. */
  adminState?: 'up' | 'down';
  /** Start with this much unsynchronised data on the secondary, to watch a resync. */
  outOfSyncMiB?: number;
  /** DRBD 9 quorum with a diskless tiebreaker on its resources (see Resource.quorum). */
  quorum?: boolean;
  /** The node of the world that holds the tiebreaker's vote (with quorum); none: one always up. */
  tiebreaker?: string;
  /** The DRBD its nodes run (default 8.4; 9 with quorum or a third copy). */
  drbd?: '8.4' | '9';
  /** DRBD 9: a third node holding a copy of every disk, connected to both of the pair. */
  thirdCopy?: string;
  /** What the instance's config says its self-fence bound is (InstanceConfig.selfFenceMs). */
  selfFenceMs?: number | null;
  /** A busy guest: MiB/s it dirties, over a working set of workingSetMiB (default a quarter of its memory). */
  dirtyMiBps?: number;
  workingSetMiB?: number;
}

export interface WorldSpec {
  nodes?: Record<
    string,
    {
      memoryMiB?: number;
      hypervisorVersion?: string;
      diskMiB?: number;
      drained?: boolean;
      selfFences?: boolean;
    }
  >;
  instances?: InstanceSpec[];
  settings?: Partial<Settings>;
}

/** The demo's cluster: two nodes and one running instance with two DRBD disks. */
export const DEMO_SPEC: WorldSpec = {
  nodes: { 'node-a': {}, 'node-b': {} },
  instances: [
    {
      name: 'web1',
      primary: 'node-a',
      secondary: 'node-b',
      memoryMiB: 2048,
      minMemoryMiB: 1024,
      disksMiB: [10240, 4096],
    },
  ],
};

export function createWorld(spec: WorldSpec = DEMO_SPEC): World {
  const world: World = {
    version: 1,
    time: 0,
    settings: { ...DEFAULT_SETTINGS, ...spec.settings },
    nodes: {},
    config: { instances: {} },
    resources: {},
    sharedDisks: {},
    storage: {},
    vms: {},
    guests: {},
    commits: {},
    violations: [],
  };
  for (const [name, n] of Object.entries(spec.nodes ?? DEMO_SPEC.nodes ?? {})) {
    world.nodes[name] = {
      memoryMiB: n.memoryMiB ?? 16384,
      hypervisorVersion: n.hypervisorVersion ?? '9.2.0',
      down: false,
      unreachable: false,
      isolatedSince: null,
      drained: n.drained ?? false,
      selfFences: n.selfFences ?? true,
    };
    world.storage[name] = { name: DEFAULT_VOLUME_GROUP, sizeMiB: n.diskMiB ?? DEFAULT_VG_MIB, volumes: {} };
    world.vms[name] = {};
  }
  let minor = 0;
  for (const i of spec.instances ?? DEMO_SPEC.instances ?? []) {
    const diskTemplate = i.diskTemplate ?? 'drbd';
    const disks = (i.disksMiB ?? [10240]).map((sizeMiB, index) => {
      const name = `${i.name}-disk${index}`;
      const m = minor++;
      if (diskTemplate === 'drbd' && i.secondary !== null) {
        const oos = (i.outOfSyncMiB ?? 0) * 1024;
        const third = i.thirdCopy;
        // A third copy is a peer of each of the pair, connected and in sync.
        const thirdLink = (to: string) => ({
          ends: [to, third!] as [string, string],
          net: {
            [to]: { allowTwoPrimaries: false, discardMyData: false },
            [third!]: { allowTwoPrimaries: false, discardMyData: false },
          },
          connection: { [to]: 'Connected' as const, [third!]: 'Connected' as const },
          syncSource: null,
          outOfSyncKiB: 0,
          syncTotalKiB: 0,
          dirtyKiB: {},
          newGeneration: [],
          linkDownUntil: null,
          joining: false,
        });
        world.resources[name] = {
          name,
          minor: m,
          sizeKiB: sizeMiB * 1024,
          local: {
            [i.primary]: { role: 'Primary', diskState: 'UpToDate' },
            [i.secondary]: { role: 'Secondary', diskState: oos > 0 ? 'Inconsistent' : 'UpToDate' },
            ...(third === undefined
              ? {}
              : { [third]: { role: 'Secondary' as const, diskState: 'UpToDate' as const } }),
          },
          links: [
            {
              ends: [i.primary, i.secondary],
              net: {
                [i.primary]: { allowTwoPrimaries: false, discardMyData: false },
                [i.secondary]: { allowTwoPrimaries: false, discardMyData: false },
              },
              connection: { [i.primary]: 'Connected', [i.secondary]: 'Connected' },
              syncSource: oos > 0 ? i.primary : null,
              outOfSyncKiB: oos,
              syncTotalKiB: oos,
              dirtyKiB: {},
              newGeneration: [],
              linkDownUntil: null,
              joining: false,
            },
            ...(third === undefined ? [] : [thirdLink(i.primary), thirdLink(i.secondary)]),
          ],
          quorum: i.quorum ?? false,
          tiebreaker: i.tiebreaker ?? null,
          tiebreakerPeers:
            i.tiebreaker === undefined
              ? []
              : [i.primary, i.secondary, ...(third === undefined ? [] : [third])],
          tiebreakerCut: false,
          autoPromote: false,
          resyncKiBps: null,
          slowUntil: null,
          drbd: i.drbd ?? (i.quorum === true || third !== undefined ? '9' : '8.4'),
          quorumLostSince: {},
        };
        for (const node of [i.primary, i.secondary, ...(third === undefined ? [] : [third])]) {
          const vg = world.storage[node];
          if (vg === undefined) continue;
          vg.volumes[volumeNames(name).data] = sizeMiB;
          vg.volumes[volumeNames(name).meta] = META_MIB;
        }
      }
      if (SHARED_STORAGE.has(diskTemplate) && i.secondary !== null) {
        world.sharedDisks[name] = {
          name,
          nodes: [i.primary, i.secondary],
          open: { [i.primary]: 'exclusive' },
        };
      }
      return { index, resource: name, minor: m, sizeMiB };
    });
    const memoryMiB = i.memoryMiB ?? 1024;
    world.config.instances[i.name] = {
      name: i.name,
      primaryNode: i.primary,
      secondaryNode: i.secondary,
      diskTemplate,
      disks,
      memoryMiB,
      minMemoryMiB: i.minMemoryMiB ?? memoryMiB,
      migrationMode: i.migrationMode ?? 'live',
      adminState: i.adminState ?? 'up',
      formerSecondary: null,
      selfFenceMs: i.selfFenceMs ?? null,
      tiebreaker: i.tiebreaker ?? null,
      drbdVersion: i.drbd ?? (i.quorum === true || i.thirdCopy !== undefined ? '9' : '8.4'),
      thirdCopy: i.thirdCopy ?? null,
      formerThirdCopy: null,
    };
    world.commits[i.name] = 0;
    if (i.dirtyMiBps !== undefined && i.dirtyMiBps > 0) {
      world.guests[i.name] = {
        dirtyMiBps: i.dirtyMiBps,
        workingSetMiB: Math.min(memoryMiB, i.workingSetMiB ?? memoryMiB / 4),
      };
    }
    if (i.running !== false) {
      const vms = world.vms[i.primary];
      if (vms !== undefined)
        vms[i.name] = {
          state: 'running',
          memoryMiB,
          uptimeMs: 0,
          migration: null,
          tuning: { ...FRESH_TUNING },
        };
    }
  }
  return World.parse(world);
}

/**
 * Every node has a volume group holding the volumes of the DRBD devices it has, and every disk of
 * the config its size: a world saved before storage was modelled gets both from its resources.
 */
function withStorage<W extends { nodes: Record<string, unknown>; storage: Record<string, VolumeGroup> }>(
  world: W & {
    resources: Record<string, { name: string; sizeKiB: number; local: Record<string, unknown> }>;
    config: { instances: Record<string, { disks: { resource: string; sizeMiB?: number | undefined }[] }> };
  },
): W {
  for (const node of Object.keys(world.nodes)) {
    if (world.storage[node] !== undefined) continue;
    const vg: VolumeGroup = { name: DEFAULT_VOLUME_GROUP, sizeMiB: DEFAULT_VG_MIB, volumes: {} };
    for (const r of Object.values(world.resources)) {
      if (r.local[node] === undefined) continue;
      const names = volumeNames(r.name);
      vg.volumes[names.data] = Math.ceil(r.sizeKiB / 1024);
      vg.volumes[names.meta] = META_MIB;
    }
    world.storage[node] = vg;
  }
  for (const config of Object.values(world.config.instances))
    for (const d of config.disks) {
      const r = world.resources[d.resource];
      if (d.sizeMiB === undefined && r !== undefined) d.sizeMiB = Math.ceil(r.sizeKiB / 1024);
    }
  return world;
}
