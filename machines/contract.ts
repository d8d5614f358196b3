import { z } from 'zod';
import { InstanceName, Minor, NodeName, ResourceName } from './names.js';

/**
 * The effect contract: every node-side or config-side action the machines can take, named after the
 * Ganeti RPC it mirrors. The machines speak only to this contract; the simulated cluster and the SSH
 * backend implement it. Every answer is parsed with the output schema before the machine sees it.
 *
 * Every input carries `timeoutMs`: the machine decides how long a step may take and the binding
 * (provideEffects) enforces it, so a node that hangs is cut off however the effect is implemented.
 *
 * Effects must be idempotent and check reality before acting: a persisted snapshot restored after a
 * crash re-runs the effect that was in flight, with the same input.
 */

export const DiskRef = z.object({
  index: z.number().int().nonnegative(),
  resource: ResourceName,
  minor: Minor,
  /** The disk's size: a new copy (a secondary replaced) needs it; absent where the config does not say. */
  sizeMiB: z.number().int().positive().optional(),
  /**
   * Where a new copy's DRBD metadata goes: a volume of its own (external, Ganeti's layout; the
   * default) or the end of its data volume (internal), which is then made that much larger.
   */
  metaDisk: z.enum(['external', 'internal']).optional(),
});
export type DiskRef = z.infer<typeof DiskRef>;

export const DiskTemplate = z.enum([
  'drbd',
  'plain',
  'file',
  'sharedfile',
  'blockdev',
  'rbd',
  'ext',
  'diskless',
]);
export const MigrationMode = z.enum(['live', 'non-live']);
export type MigrationMode = z.infer<typeof MigrationMode>;

export const InstanceConfig = z.object({
  name: InstanceName,
  primaryNode: NodeName,
  secondaryNode: NodeName.nullable(),
  diskTemplate: DiskTemplate,
  disks: z.array(DiskRef),
  /** Current (maximum) memory of the instance. */
  memoryMiB: z.number().int().positive(),
  /** The least memory the instance may be ballooned down to so that it fits on the target. */
  minMemoryMiB: z.number().int().positive(),
  /** The instance's default when the caller names no mode (Ganeti's migration_mode hvparam). */
  migrationMode: MigrationMode,
  adminState: z.enum(['up', 'down']),
  /**
   * A secondary replaced before its copies were removed (it was down, or the replace stopped after
   * its commit): its volumes and DRBD devices are to be removed when it answers again. Written at the
   * replace's commit, with the new secondary, so that any host's run finds it.
   */
  formerSecondary: NodeName.nullable().default(null),
  /**
   * DRBD 9 with quorum: the bound within which a node that lost quorum stops this instance itself
   * (its quorum-lost handler). With it, a failover may take the target's quorum as the proof that the
   * silent source cannot write, and starts the instance once the bound has passed; null: quorum alone
   * proves nothing here (the operator's --source-is-down is needed, as without quorum).
   */
  selfFenceMs: z.number().int().positive().nullable().default(null),
  /**
   * DRBD 9 with quorum: the node holding the third vote of the instance's resources (diskless, it
   * holds no copy and never runs the instance), so that errors say which node to bring back.
   */
  tiebreaker: NodeName.nullable().default(null),
  /**
   * The DRBD its nodes run. 8.4 links two peers only, so a new secondary replaces the old one
   * break-before-make (an announced one-copy window); 9 adds it as a further peer before the old one
   * leaves (make-before-break).
   */
  drbdVersion: z.enum(['8.4', '9']).default('8.4'),
  /**
   * DRBD 9: a third node holding a diskful copy of every disk, connected to both of the pair (as
   * LINSTOR places a third replica). A migration may go to it (`targetNode`): its commit makes it the
   * primary, the old primary the secondary and the old secondary the third copy, in one write.
   */
  thirdCopy: NodeName.nullable().default(null),
  /**
   * DRBD 9: a third copy replaced before its copies were removed (its node was down, or the replace
   * stopped after its commit), as formerSecondary is for a secondary. Written with the new third copy.
   */
  formerThirdCopy: NodeName.nullable().default(null),
});
export type InstanceConfig = z.infer<typeof InstanceConfig>;

export const NodeInfo = z.object({
  memoryFreeMiB: z.number().nonnegative(),
  hypervisorVersion: z.string(),
  /**
   * The config marks the node drained (answered beside the node's own figures, from the config
   * store): no instance is moved to it.
   */
  drained: z.boolean().default(false),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

/** A node as the config knows it. */
export const NodeConfig = z.object({
  name: NodeName,
  /** Marked for maintenance: nothing new is placed there, and no instance moves to it. */
  drained: z.boolean(),
});
export type NodeConfig = z.infer<typeof NodeConfig>;

/** A node's storage: its volume group, what is free in it, and the DRBD minors in use there. */
export const NodeStorage = z.object({
  volumeGroup: z.string(),
  sizeMiB: z.number().nonnegative(),
  freeMiB: z.number().nonnegative(),
  volumes: z.array(z.object({ name: z.string(), sizeMiB: z.number().nonnegative() })),
  minors: z.array(Minor),
});
export type NodeStorage = z.infer<typeof NodeStorage>;

/** QEMU run states that matter to migration (query-status). */
export const RunState = z.enum([
  'running',
  'paused',
  'inmigrate',
  'postmigrate',
  'finish-migrate',
  'shutdown',
]);
export type RunState = z.infer<typeof RunState>;

export const InstanceInfo = z.object({
  running: z.boolean(),
  state: RunState.nullable(),
  memoryMiB: z.number().nonnegative().nullable(),
});
export type InstanceInfo = z.infer<typeof InstanceInfo>;

export const RunningInstance = z.object({ name: InstanceName, state: RunState });
export type RunningInstance = z.infer<typeof RunningInstance>;

/** DRBD state vocabulary as drbd-utils prints it for 8.4 (events2) and 9 (status --json). */
export const DrbdRole = z.enum(['Primary', 'Secondary', 'Unknown']);
export const DrbdConnection = z.enum([
  'StandAlone',
  'Disconnecting',
  'Unconnected',
  'Timeout',
  'BrokenPipe',
  'NetworkFailure',
  'ProtocolError',
  'TearDown',
  'Connecting',
  'Connected',
]);
export const DrbdReplication = z.enum([
  'Off',
  'Established',
  'StartingSyncS',
  'StartingSyncT',
  'WFBitMapS',
  'WFBitMapT',
  'WFSyncUUID',
  'SyncSource',
  'SyncTarget',
  'PausedSyncS',
  'PausedSyncT',
  'VerifyS',
  'VerifyT',
  'Ahead',
  'Behind',
]);
export const DrbdDiskState = z.enum([
  'Diskless',
  'Attaching',
  'Detaching',
  'Failed',
  'Negotiating',
  'Inconsistent',
  'Outdated',
  'DUnknown',
  'Consistent',
  'UpToDate',
]);

export const DiskStatus = z.object({
  resource: ResourceName,
  minor: Minor,
  role: DrbdRole,
  peerRole: DrbdRole,
  connection: DrbdConnection,
  replication: DrbdReplication,
  diskState: DrbdDiskState,
  peerDiskState: DrbdDiskState,
  allowTwoPrimaries: z.boolean(),
  /** Resync progress from the handshake to the end of a resync (0 until it starts); null otherwise. */
  syncPercent: z.number().min(0).max(100).nullable(),
  outOfSyncKiB: z.number().nonnegative(),
  /**
   * DRBD 9's quorum on this node, as its kernel says: `off` where the resource has none (always on
   * 8.4), `held` or `lost` where it has (`quorum majority` with a tiebreaker or a third copy). A node
   * that lost it cannot write; one that holds it while cut off from the other proves that one cannot.
   */
  quorum: z.enum(['off', 'held', 'lost']).default('off'),
  /**
   * The kernel's `may_promote` (DRBD 9): no other node can write, so this one could become Primary;
   * null where the driver cannot read it (8.4).
   */
  mayPromote: z.boolean().nullable().default(null),
  /**
   * DRBD 9's auto-promote (its default): the device promotes itself when opened, outside any window
   * the library opens. Always false on 8.4, which has none.
   */
  autoPromote: z.boolean().default(false),
  /**
   * DRBD 9: whether this node would stop the instance on losing quorum here, its DRBD usermode helper
   * running the quorum-lost handler its configuration names for the resource (the self-fence a
   * failover waits out with the instance's selfFenceMs). Null where not read (8.4).
   */
  quorumLostHandler: z.boolean().nullable().default(null),
});
export type DiskStatus = z.infer<typeof DiskStatus>;

export const NodeSync = z.object({
  /** No disk of the instance is in a resync state on this node (Ganeti's alldone). */
  done: z.boolean(),
  /** Least sync percent over the node's disks in resync, null when none reports one. */
  percent: z.number().min(0).max(100).nullable(),
});
export type NodeSync = z.infer<typeof NodeSync>;

export const MigrationStatus = z.object({
  /** QEMU's query-migrate status; 'none' before a migration has started. */
  status: z.enum([
    'none',
    'setup',
    'active',
    'device',
    'wait-unplug',
    'pre-switchover',
    'postcopy-active',
    'postcopy-paused',
    'postcopy-recover',
    'completed',
    'failed',
    'cancelling',
    'cancelled',
  ]),
  transferredMiB: z.number().nonnegative().nullable(),
  totalMiB: z.number().nonnegative().nullable(),
  remainingMiB: z.number().nonnegative().nullable(),
  /**
   * Dirty passes so far (QEMU's ram.dirty-sync-count: 1 during the first full pass); null when the
   * hypervisor does not say. The convergence policy judges a copy by how big each new pass is.
   */
  passes: z.number().int().nonnegative().nullable().default(null),
  /** Auto-converge's CPU throttle of the guest now, percent (QEMU's cpu-throttle-percentage); null when none. */
  throttlePercent: z.number().min(0).max(100).nullable().default(null),
  /** The clock reading of the world that answered, in ms; deadlines are counted in this clock. */
  at: z.number(),
});
export type MigrationStatus = z.infer<typeof MigrationStatus>;

/**
 * A look at one node that may be down: whether it answered within the deadline, and if it did, how
 * the instance is there. Not answering is an answer, not a failure: a failover needs it as evidence.
 */
export const NodeProbe = z.object({
  reachable: z.boolean(),
  /** Why the node did not answer (refused, timed out), when it did not. */
  error: z.string().nullable(),
  /** The instance's run state there when the node answered; null when it does not run there. */
  state: RunState.nullable(),
});
export type NodeProbe = z.infer<typeof NodeProbe>;

/** A guest's dirty rate as QEMU measured it. */
export const DirtyRate = z.object({
  dirtyMiBps: z.number().nonnegative(),
  calcSeconds: z.number().int().positive(),
  /** QEMU's mode: always page-sampling here (the others need KVM; under TCG they crash QEMU 7.2). */
  mode: z.literal('page-sampling'),
});
export type DirtyRate = z.infer<typeof DirtyRate>;

const Nodes = z.tuple([NodeName, NodeName]);
const timeoutMs = z.number().int().nonnegative();
const perNode = <T extends z.ZodType>(schema: T) => z.record(NodeName, schema);
/** Effects that only act answer nothing; whatever an implementation returns is dropped. */
const Ack = z.unknown().transform((): void => undefined);
/** Hypervisor migration data handed from source to target, opaque to the protocol. */
export const MigrationInfo = z.record(z.string(), z.unknown());

const onNode = { instance: InstanceName, node: NodeName, timeoutMs };
const onBoth = { instance: InstanceName, nodes: Nodes, timeoutMs };
const withDisks = { disks: z.array(DiskRef) };

export const effectSchemas = {
  // config store
  getInstance: { input: z.object({ instance: InstanceName, timeoutMs }), output: InstanceConfig },
  /**
   * The commit point of a migration or a failover: the config names `node` as the primary, the old
   * primary as the secondary, and, where `node` was the third copy, the old secondary as the third
   * (one write). With withdrawSelfFence the same write takes the instance's selfFenceMs out (a failover onto a node
   * that would not stop the instance on losing quorum: a later one must not take that as proof).
   */
  setPrimaryNode: {
    input: z.object({ ...onNode, withdrawSelfFence: z.boolean().optional() }),
    output: Ack,
  },
  /**
   * The replace's one commit point: the config names `node` as the secondary and records `former`
   * as the node whose copies are still to be removed (formerSecondary), in one write.
   */
  setSecondaryNode: { input: z.object({ ...onNode, former: NodeName }), output: Ack },
  /** The former secondary's copies are gone: the config stops naming it. */
  forgetFormerSecondary: { input: z.object({ instance: InstanceName, timeoutMs }), output: Ack },
  /**
   * DRBD 9, the replace of a third copy: its one commit point, as setSecondaryNode's for a secondary
   * (the config names `node` as the third copy, `former` as formerThirdCopy, in one write).
   */
  setThirdCopyNode: { input: z.object({ ...onNode, former: NodeName }), output: Ack },
  /** The former third copy's copies are gone: the config stops naming it. */
  forgetFormerThirdCopy: { input: z.object({ instance: InstanceName, timeoutMs }), output: Ack },
  /** Every instance the config knows (a node evacuation plans from it). */
  listInstances: { input: z.object({ timeoutMs }), output: z.array(InstanceConfig) },
  /**
   * N+1 (Ganeti's): the instances whose primary is `primary` and secondary `node`, which `node` would
   * start if `primary` failed, and their memory. A read of the config, as narrow as the check needs
   * (a drain replaces thousands of secondaries: each reading every instance would cost the square).
   */
  takeoverLoad: {
    input: z.object({ node: NodeName, primary: NodeName, timeoutMs }),
    output: z.object({ instances: z.array(InstanceName), memoryMiB: z.number().nonnegative() }),
  },
  /** Every node the config knows, with its drain mark. */
  listNodes: { input: z.object({ timeoutMs }), output: z.array(NodeConfig) },
  /** The node's drain mark set (nothing new is placed there) or taken back. */
  setNodeDrained: { input: z.object({ node: NodeName, drained: z.boolean(), timeoutMs }), output: Ack },
  // node queries
  /** Free memory and the hypervisor of each node named (one or more). */
  nodeInfo: {
    input: z.object({ instance: InstanceName, nodes: z.array(NodeName).min(1), timeoutMs }),
    output: perNode(NodeInfo),
  },
  /** The node's volume group and DRBD minors (read-only). */
  nodeStorage: { input: z.object({ node: NodeName, timeoutMs }), output: NodeStorage },
  instanceInfo: { input: z.object({ ...onNode }), output: InstanceInfo },
  /** Where the instance is, per node: its entry or none (a node may list its other guests too). */
  instanceList: { input: z.object({ ...onBoth }), output: perNode(z.array(RunningInstance)) },
  diskStatus: { input: z.object({ ...onBoth, ...withDisks }), output: perNode(z.array(DiskStatus)) },
  /**
   * One node's view of the instance's disks, for when its peer may be down: towards `peer` (DRBD 9,
   * a node with several peers), else towards the other node of the config's pair.
   */
  nodeDiskStatus: {
    input: z.object({ ...onNode, ...withDisks, peer: NodeName.optional() }),
    output: z.array(DiskStatus),
  },
  probeNode: { input: z.object({ ...onNode }), output: NodeProbe },
  /**
   * Waits out the bound within which NODE, cut off and without DRBD quorum, stops the instance itself
   * (its quorum-lost handler): nothing is sent to it. Answers once withinMs have passed.
   */
  awaitSelfFence: { input: z.object({ ...onNode, withinMs: z.number().int().positive() }), output: Ack },
  migrationInfo: { input: z.object({ ...onNode }), output: MigrationInfo },
  /**
   * How fast the running guest dirties its memory, measured without migrating it (QEMU's
   * calc-dirty-rate, page sampling: it counts each sampled page once per window, so a guest that
   * rewrites a small set of pages shows that set's size per window). Read-only; refused for a guest
   * that is not running. It takes `calcSeconds` whole seconds.
   */
  measureDirtyRate: {
    input: z.object({
      ...onNode,
      calcSeconds: z.number().int().min(1).max(60),
      /** Pages sampled per GiB of guest memory (QEMU's sample-pages, 512 by default). */
      samplePages: z.number().int().min(0).max(10_000),
    }),
    output: DirtyRate,
  },
  // storage
  /**
   * Ganeti's blockdev_create for a new secondary: each disk's data and metadata volumes in the node's
   * volume group, and its DRBD device on them, Secondary and without network. What exists already is
   * kept (a run again after a lost answer creates nothing twice and never wipes a copy).
   */
  createDisks: { input: z.object({ ...onNode, ...withDisks }), output: Ack },
  /** Ganeti's blockdev_remove: each disk's DRBD device taken down and its volumes removed; nothing there is done. */
  removeDisks: { input: z.object({ ...onNode, ...withDisks }), output: Ack },
  closeDisks: { input: z.object({ ...onNode, ...withDisks }), output: Ack },
  openDisks: { input: z.object({ ...onNode, ...withDisks, exclusive: z.boolean() }), output: Ack },
  /**
   * Both sides of the link between `nodes` StandAlone; with `only`, that side alone (Ganeti's
   * drbd_disconnect_net on one node: its peer may be down).
   */
  disconnectNet: { input: z.object({ ...onBoth, ...withDisks, only: NodeName.optional() }), output: Ack },
  /**
   * DRBD 9: `peer` is no longer a peer of `node`'s devices (del-peer), and its bitmap slot in their
   * metadata is freed for the next (forget-peer); nothing to do where it is not one. On DRBD 8.4,
   * which has one peer, the side StandAlone.
   */
  removePeer: { input: z.object({ ...onNode, ...withDisks, peer: NodeName }), output: Ack },
  /**
   * `discardOn` (a rejoin after a split brain): that node connects with --discard-my-data, so it
   * becomes the resync target of its peer whatever it wrote on its own. `nodes` are the two ends of
   * the link: a node that is not yet the other's peer (a new secondary, its device made by
   * createDisks) becomes it, the other side StandAlone first, and receives a full resync. A side
   * already connected, or trying to connect, is left as it is (DRBD 9.2 refuses a connect there:
   * "(125) Device has a net-config"): a repair after a replace's commit finds the new peer so.
   */
  attachNet: {
    input: z.object({ ...onBoth, ...withDisks, multimaster: z.boolean(), discardOn: NodeName.optional() }),
    output: Ack,
  },
  /**
   * A long poll: answers as soon as every disk is in sync or the sync percent moved, or when
   * timeoutMs has passed; timeoutMs 0 asks for the state now. Never a fixed sleep.
   */
  waitSync: {
    input: z.object({ ...onBoth, ...withDisks }),
    output: z.object({ nodes: perNode(NodeSync), at: z.number() }),
  },
  // hypervisor
  /** Ganeti's instance_shutdown: the guest is asked to power off, then stopped; done when it is gone. */
  shutdownInstance: { input: z.object({ ...onNode }), output: Ack },
  /** Ganeti's instance_start: start the instance on the node from its disks (already Primary there). */
  startInstance: { input: z.object({ ...onNode }), output: Ack },
  balloonMemory: { input: z.object({ ...onNode, memoryMiB: z.number().int().positive() }), output: Ack },
  /**
   * `postcopy`: the incoming side must be able to switch to postcopy (QEMU needs postcopy-ram on both
   * sides before the copy starts).
   */
  acceptInstance: {
    input: z.object({
      ...onNode,
      source: NodeName,
      info: MigrationInfo,
      postcopy: z.boolean().default(false),
    }),
    output: Ack,
  },
  /**
   * The copy's parameters on the source; fields not given are left as they are (QEMU's
   * migrate-set-parameters). `prepare` comes before the copy and says what the policy may switch on
   * during it (QEMU refuses capabilities once a copy runs); `throttle` switches on auto-converge.
   */
  setMigrationParameters: {
    input: z.object({
      ...onNode,
      bandwidthMiBps: z.number().positive().optional(),
      downtimeMs: z.number().int().positive().optional(),
      prepare: z.object({ autoConverge: z.boolean(), postcopy: z.boolean() }).optional(),
      throttle: z.literal(true).optional(),
    }),
    output: Ack,
  },
  /** QEMU's migrate-start-postcopy: the target runs the guest from here on; the point of no return. */
  startPostcopy: { input: z.object({ ...onNode }), output: Ack },
  migrateInstance: { input: z.object({ ...onNode, target: NodeName, live: z.boolean() }), output: Ack },
  /** A long poll like waitSync: answers on a status change, on progress, or after timeoutMs. */
  migrationStatus: { input: z.object({ ...onNode }), output: MigrationStatus },
  finalizeMigrationSource: {
    input: z.object({ ...onNode, success: z.boolean(), live: z.boolean() }),
    output: Ack,
  },
  finalizeMigrationTarget: {
    input: z.object({ ...onNode, info: MigrationInfo, success: z.boolean() }),
    output: Ack,
  },
} as const;

export type EffectName = keyof typeof effectSchemas;
export const EFFECT_NAMES = Object.keys(effectSchemas) as EffectName[];

export type EffectInput<K extends EffectName> = z.infer<(typeof effectSchemas)[K]['input']>;
export type EffectOutput<K extends EffectName> = z.output<(typeof effectSchemas)[K]['output']>;

/** What an implementation may return: the output schema's input side (parsed afterwards). */
export type EffectAnswer<K extends EffectName> = z.input<(typeof effectSchemas)[K]['output']>;

/**
 * The interface users implement. The signal aborts when the machine leaves the step (a deadline, an
 * abort, a stopped actor); implementations should stop their work and release connections then.
 *
 * `hurry` fires when an operator abort waits for the step in flight. The long polls (waitSync,
 * migrationStatus) should then answer at once with the state as it is, so that the abort takes
 * effect without waiting out the poll; it is not a failure. Other effects may ignore it.
 */
export type Effects = {
  [K in EffectName]: (
    input: EffectInput<K>,
    signal: AbortSignal,
    hurry?: AbortSignal,
  ) => Promise<EffectAnswer<K>>;
};
