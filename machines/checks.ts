import type {
  DiskStatus,
  InstanceConfig,
  MigrationStatus,
  NodeInfo,
  NodeSync,
  RunningInstance,
} from './contract.js';

/**
 * The protocol's judgements, as pure functions of what the nodes answered. The machines record an
 * answer, then ask one of these; a non-null string is the error the operator reads.
 */

/** The repair, as the CLI spells it (with the --world or --cluster the run acted on). */
export const cleanupHint = (instance: string) =>
  `run the cleanup ('drbd-migrate migrate ${instance} --cleanup' with the same --cluster or --world)`;

export interface MigrationRequest {
  targetNode: string | null;
  /** Where the requester saw the instance's primary (null: wherever the config says). */
  expectedSource?: string | null;
  /** A failover's repair: it works towards the config's primary (see ProtocolInput.cleanup). */
  cleanup?: boolean;
}

/** A request made when the instance was elsewhere: it moved since (another run went first). */
function movedSince(config: InstanceConfig, request: MigrationRequest): string | null {
  const expected = request.expectedSource ?? null;
  if (expected === null || expected === config.primaryNode) return null;
  return `${config.name} is no longer on ${expected}, where it was when this request was made: the config names ${config.primaryNode} (another run moved it meanwhile); nothing was done; ask again if it is still to move`;
}

export function checkInstanceConfig(config: InstanceConfig, request: MigrationRequest): string | null {
  if (config.diskTemplate !== 'drbd' && !isSharedStorage(config)) {
    return `Instance's disk layout '${config.diskTemplate}' does not allow migrations (drbd-migrate moves DRBD and shared-storage instances)`;
  }
  if (config.secondaryNode === null) {
    return isSharedStorage(config)
      ? `Instance ${config.name} uses shared storage (${config.diskTemplate}) but names no second node to migrate to`
      : `Instance ${config.name} has no secondary node but uses DRBD disks`;
  }
  if (config.secondaryNode === config.primaryNode) {
    return `Instance ${config.name} names ${config.primaryNode} as both primary and secondary node`;
  }
  if (config.disks.length === 0) return `Instance ${config.name} has no disks to migrate`;
  const moved = movedSince(config, request);
  if (moved !== null) return moved;
  return thirdCopyProblem(config) ?? notACopy(config, request.targetNode, 'migrated');
}

/** A run sent to a node that holds no copy it may go to (the secondary, or a third copy). */
function notACopy(config: InstanceConfig, target: string | null, moved: 'migrated' | 'failed over') {
  const third = config.thirdCopy ?? null;
  if (target === null || target === config.secondaryNode || target === third) return null;
  return (
    `Instances with disk types ${config.diskTemplate} cannot be ${moved} to arbitrary nodes: ` +
    `${target} is not the secondary node of ${config.name} (${config.secondaryNode})` +
    (third === null ? '' : ` nor its third copy (${third})`)
  );
}

/** A third copy is DRBD 9's, on a node of its own (not the pair's, not the diskless tiebreaker). */
function thirdCopyProblem(config: InstanceConfig): string | null {
  // An answer from before the field existed has none.
  const third = config.thirdCopy ?? null;
  if (third === null) return null;
  if (config.diskTemplate !== 'drbd' || config.drbdVersion !== '9')
    return `Instance ${config.name} names a third copy on ${third}, but only DRBD 9 disks connect a third diskful peer`;
  if ([config.primaryNode, config.secondaryNode, config.tiebreaker].includes(third))
    return `Instance ${config.name} names ${third} as its third copy and as its primary, secondary or tiebreaker`;
  return null;
}

/**
 * Storage both nodes reach at once (Ganeti's ext-mirror templates): nothing to replicate, so there is
 * no dual-master window, only opening the disks on the target beside the source (ganeti-migration.md
 * §4.3). 'diskless' and the local templates ('plain', 'file') cannot migrate.
 */
export const SHARED_STORAGE = new Set<InstanceConfig['diskTemplate']>([
  'sharedfile',
  'blockdev',
  'rbd',
  'ext',
]);
export const isSharedStorage = (config: InstanceConfig | null) =>
  config !== null && SHARED_STORAGE.has(config.diskTemplate);

/** Where an instance runs, per node, from instanceList answers. */
export function locate(lists: Record<string, RunningInstance[]>, instance: string, node: string) {
  return lists[node]?.find((i) => i.name === instance)?.state ?? null;
}

export function checkRunsOnSourceOnly(
  lists: Record<string, RunningInstance[]>,
  instance: string,
  source: string,
  target: string,
): string | null {
  const onSource = locate(lists, instance, source);
  const onTarget = locate(lists, instance, target);
  if (onTarget !== null) {
    return `Instance ${instance} is also present on ${target} (${onTarget}): a previous migration did not finish; ${cleanupHint(instance)}`;
  }
  if (onSource === null)
    return `Can't migrate: instance ${instance} is not running on ${source}; an instance that is down moves by failover (drbd-migrate failover, or migrate --allow-failover)`;
  if (onSource !== 'running') {
    return `Instance ${instance} is ${onSource} on ${source}, not running; ${cleanupHint(instance)} or resume it first`;
  }
  return null;
}

export interface MemoryPlan {
  problem: string | null;
  /** Balloon the instance down to this many MiB before migrating, or null when it fits. */
  balloonToMiB: number | null;
}

/** Ganeti: prereq free >= minmem; exec: balloon down to the target's free memory when allowed. */
export function planMemory(
  config: InstanceConfig | null,
  target: string,
  targetInfo: NodeInfo | undefined,
  currentMiB: number,
  allowRuntimeChanges: boolean,
): MemoryPlan {
  if (targetInfo === undefined || config === null) {
    return { problem: `Can't get data from node ${target}`, balloonToMiB: null };
  }
  const free = Math.floor(targetInfo.memoryFreeMiB);
  if (free < config.minMemoryMiB) {
    return {
      problem: `Not enough memory on node ${target} for migrating instance ${config.name}: needed ${config.minMemoryMiB} MiB, available ${free} MiB`,
      balloonToMiB: null,
    };
  }
  if (currentMiB <= free) return { problem: null, balloonToMiB: null };
  if (!allowRuntimeChanges) {
    return {
      problem: `Memory ballooning not allowed and not enough free memory to fit instance ${config.name} on target node ${target} (have ${free} MiB, need ${currentMiB} MiB)`,
      balloonToMiB: null,
    };
  }
  return { problem: null, balloonToMiB: free };
}

/** Ganeti warns (and goes on) when the two nodes' hypervisors differ. */
export function hypervisorMismatch(
  source: string,
  target: string,
  nodes: Record<string, NodeInfo>,
): string | null {
  const a = nodes[source]?.hypervisorVersion;
  const b = nodes[target]?.hypervisorVersion;
  if (a === undefined || b === undefined || a === b) return null;
  return `* warning: hypervisor version mismatch between source (${a}) and target (${b}) node`;
}

/** A disk Connected to the peer it was read towards, UpToDate on both sides. */
export const inSyncWithPeer = (d: DiskStatus) =>
  d.connection === 'Connected' && d.diskState === 'UpToDate' && d.peerDiskState === 'UpToDate';

const healthy = (d: DiskStatus) => inSyncWithPeer(d) && d.replication === 'Established';

/** Ganeti's CheckDiskConsistency on the target, plus: the disks are single-master as a rest state. */
export function checkDiskConsistency(
  status: Record<string, DiskStatus[]>,
  instance: string,
  source: string,
  target: string,
): string | null {
  for (const [node, disks] of [
    [target, status[target]],
    [source, status[source]],
  ] as const) {
    if (disks === undefined) return `No disk status from node ${node}`;
    for (const d of disks) {
      if (!healthy(d)) {
        return `Disk ${d.minor} (${d.resource}) is degraded or not fully synchronized on ${node === target ? 'target' : 'source'} node ${node} (${d.connection}/${d.replication}, ${d.diskState}/${d.peerDiskState}), aborting migration`;
      }
      if (d.allowTwoPrimaries) {
        return `Disk ${d.minor} (${d.resource}) on ${node} is still in dual-master mode: a previous migration did not finish; ${cleanupHint(instance)}`;
      }
      if (d.autoPromote) {
        return `Disk ${d.minor} (${d.resource}) on ${node} promotes itself when opened (DRBD 9's auto-promote): a QEMU opening it would make it Primary outside the dual-master window; set 'options { auto-promote no; }' in its resource file, run 'drbdadm adjust ${d.resource}' on both nodes, and migrate again`;
      }
      const expected = node === source ? 'Primary' : 'Secondary';
      if (d.role !== expected) {
        return `Disk ${d.minor} (${d.resource}) is ${d.role} on ${node}, expected ${expected}; ${cleanupHint(instance)}`;
      }
    }
  }
  return null;
}

/**
 * Why `node` may not hold a copy of an instance with selfFenceMs: it would not stop the instance on
 * losing quorum on `resource`, yet a failover away from it would take that lost quorum as proof that
 * it had (rule 1). Said by the migration that would make it primary and by the effect that would
 * make it a copy.
 */
export const noSelfFence = (node: string, instance: string, resource: string) =>
  `${node} would not stop ${instance} on losing DRBD quorum: no quorum-lost handler runs there for ${resource} (DRBD's usermode helper is not drbdadm, or its DRBD configuration names no handler for it), yet ${instance}'s selfFenceMs lets a failover away from ${node} take its lost quorum as proof that it stopped ${instance}; give ${node} the resource file with the quorum-lost handler, as on the other nodes (cluster.md), or take selfFenceMs out of the cluster file, then run again (nothing was touched)`;

/** Rule 1 under a failover's quorum proof: the target of a migration would stop the instance itself. */
export function checkSelfFence(
  config: InstanceConfig | null,
  status: Record<string, DiskStatus[]>,
  target: string,
): string | null {
  if (config === null || config.selfFenceMs === null) return null;
  const missing = status[target]?.find((d) => d.quorumLostHandler === false);
  return missing === undefined ? null : noSelfFence(target, config.name, missing.resource);
}

/** Safety rule 4: promotion only once every disk is Connected and UpToDate/UpToDate on both nodes. */
export function checkReadyForDualPrimary(status: Record<string, DiskStatus[]>, nodes: readonly string[]) {
  for (const node of nodes) {
    const disks = status[node];
    if (disks === undefined) return `No disk status from node ${node}`;
    for (const d of disks) {
      if (!healthy(d) || !d.allowTwoPrimaries) {
        return `Refusing to open disks in shared mode: disk ${d.minor} (${d.resource}) on ${node} is ${d.connection}/${d.replication}, ${d.diskState}/${d.peerDiskState}, two primaries ${d.allowTwoPrimaries ? 'allowed' : 'not allowed'}`;
      }
    }
  }
  return null;
}

export interface SyncSummary {
  done: boolean;
  /** Least percent over both nodes (100 when all done), Ganeti's min_percent. */
  percent: number;
}

export function summarizeSync(nodes: Record<string, NodeSync>): SyncSummary {
  const answers = Object.values(nodes);
  const done = answers.length > 0 && answers.every((n) => n.done);
  const percents = answers.map((n) => n.percent).filter((p): p is number => p !== null);
  return { done, percent: done ? 100 : Math.min(100, ...percents) };
}

export type MigrationPhase = 'running' | 'postcopy' | 'completed' | 'failed' | 'brokenPostcopy';

export function classifyMigration(status: MigrationStatus['status']): MigrationPhase {
  switch (status) {
    case 'completed':
      return 'completed';
    case 'postcopy-active':
    case 'postcopy-recover':
      return 'postcopy';
    case 'postcopy-paused':
      return 'brokenPostcopy';
    case 'failed':
    case 'cancelled':
    case 'cancelling':
    // Ganeti ends its loop on any unknown status as if it had succeeded; a migration that the
    // hypervisor no longer knows about has not succeeded.
    case 'none':
      return 'failed';
    default:
      return 'running';
  }
}

/** What the nodes really look like, in lines an operator can act on; used for needsCleanup and failed. */
export function describeWorld(
  instance: string,
  disks: Record<string, DiskStatus[]> | null,
  lists: Record<string, RunningInstance[]> | null,
  nodes: readonly string[],
  /** A node read towards a peer other than the config pair's (a third copy): its lines name it. */
  towards: Record<string, string> = {},
): string[] {
  const lines: string[] = [];
  // A node absent from a record did not answer: what the others say is still told, as theirs.
  const answered = lists === null ? [] : nodes.filter((n) => lists[n] !== undefined);
  const silent = nodes.filter((n) => !answered.includes(n));
  if (lists === null || answered.length === 0)
    lines.push(`could not list the instances on ${nodes.join(', ')}`);
  else {
    const tail = silent.length === 0 ? '' : `; ${silent.join(', ')} did not answer`;
    const where = answered.flatMap((n) => {
      const s = locate(lists, instance, n);
      return s === null ? [] : [`${n} (${s})`];
    });
    lines.push(
      where.length > 0
        ? `instance ${instance} on ${where.join(', ')}${tail}`
        : silent.length === 0
          ? `instance ${instance} runs nowhere`
          : `instance ${instance} runs on none of ${answered.join(', ')}${tail}`,
    );
  }
  const unread = disks === null ? nodes : nodes.filter((n) => disks[n] === undefined);
  if (unread.length > 0) lines.push(`could not read the disk status on ${unread.join(', ')}`);
  if (disks !== null) {
    for (const node of nodes) {
      for (const d of disks[node] ?? []) {
        // Worded as `show` words a disk; the replication state only when it says more than connected.
        const replicating =
          d.replication === 'Established' || d.replication === 'Off' ? '' : ` ${d.replication}`;
        const peer = towards[node];
        lines.push(
          `${node}${peer === undefined ? '' : ` towards ${peer}`}: ${d.resource} ${d.role} ${d.connection}${replicating} ${d.diskState}/${d.peerDiskState}` +
            (d.allowTwoPrimaries ? ' allow-two-primaries' : ''),
        );
      }
    }
  }
  return lines;
}

/** Failover: what can be failed over, and to where (Ganeti's CheckPrereq for failover). */
export function checkFailoverConfig(config: InstanceConfig, request: MigrationRequest): string | null {
  if (config.diskTemplate !== 'drbd' && !isSharedStorage(config)) {
    return `Instance's disk layout '${config.diskTemplate}' does not allow failovers`;
  }
  if (config.secondaryNode === null || config.secondaryNode === config.primaryNode) {
    return `Instance ${config.name} has no secondary node to fail over to`;
  }
  if (config.disks.length === 0) return `Instance ${config.name} has no disks`;
  const moved = movedSince(config, request);
  if (moved !== null) return moved;
  if (request.cleanup === true) {
    return request.targetNode === null || request.targetNode === config.primaryNode
      ? null
      : `The repair of a failover brings ${config.name} up on the node the config names (${config.primaryNode}), not on ${request.targetNode}; fail it over to ${request.targetNode} instead, without --cleanup`;
  }
  return thirdCopyProblem(config) ?? notACopy(config, request.targetNode, 'failed over');
}

/**
 * Failover with the source down: the target's own view must agree that its peer is gone (no disk
 * Connected), and every disk must be UpToDate there, since it becomes the only copy.
 */
export function checkPeerLost(
  disks: DiskStatus[],
  instance: string,
  source: string,
  target: string,
  tiebreaker: string | null = null,
): string | null {
  const connected = disks.filter((d) => d.connection === 'Connected');
  if (connected.length > 0) {
    return `${target} is still Connected to ${source} on ${connected.map((d) => d.resource).join(', ')}: ${source} is not down; migrate ${instance}, or fail it over without --source-is-down`;
  }
  // DRBD 9 refuses to promote a node without quorum, and would after the commit: refused here.
  const lost = disks.filter((d) => d.quorum === 'lost');
  if (lost.length > 0) {
    return `${target} has no DRBD quorum on ${lost.map((d) => d.resource).join(', ')}, so DRBD will not promote it; bring ${source} or ${thirdVote(tiebreaker)} back, or, if ${source} is down for good, turn quorum off there first (drbdsetup resource-options RESOURCE --quorum=off on ${target}) and fail over again`;
  }
  // The kernel knows better than the word: a Primary it still reaches through the tiebreaker means
  // the source runs, cut from the target only (found by the generated suite: the word alone let the
  // failover start the instance beside it).
  const barred = disks.filter(
    (d) => d.quorum === 'held' && d.mayPromote === false && d.diskState === 'UpToDate',
  );
  if (barred.length > 0) {
    return `${target}'s kernel says ${barred.map((d) => d.resource).join(', ')} may not be promoted (may_promote: no): a Primary of ${instance}'s disks is still in reach of ${thirdVote(tiebreaker)}, so ${source} is not down but cut from ${target} only; bring the link back and migrate ${instance}, or power ${source} off and fail over again`;
  }
  return checkTargetUpToDate(disks, target);
}

/** The node holding a resource's third vote, as the config names it. */
const thirdVote = (tiebreaker: string | null) =>
  tiebreaker === null ? 'the tiebreaker' : `${tiebreaker} (the tiebreaker)`;

/**
 * A silent source proven unable to write by the target's own kernel, on every disk (DRBD 9): the
 * target holds quorum without it (a majority: itself and a tiebreaker or third copy), and the kernel
 * says it may promote (may_promote: no other node can write). A source cut from the target alone is
 * still the tiebreaker's, and the target may not promote: that is refused too.
 */
export function checkQuorumProof(
  disks: DiskStatus[],
  instance: string,
  source: string,
  target: string,
  tiebreaker: string | null = null,
): string | null {
  const names = (ds: DiskStatus[]) => ds.map((d) => d.resource).join(', ');
  const connected = disks.filter((d) => d.connection === 'Connected');
  if (connected.length > 0) {
    return `${source} does not answer, but ${target} is still Connected to it on ${names(connected)}: it runs, cut off from this network only; migrate ${instance} once it answers`;
  }
  const off = disks.filter((d) => d.quorum === 'off');
  if (off.length > 0) {
    return `${source} does not answer, and ${names(off)} on ${target} has no DRBD quorum: nothing proves ${source} cannot write; if it is powered off, say so with --source-is-down`;
  }
  const lost = disks.filter((d) => d.quorum === 'lost');
  if (lost.length > 0) {
    return `${source} does not answer, and ${target} has lost DRBD quorum too on ${names(lost)} (no majority on either side): DRBD will not promote ${target}; bring ${source} or ${thirdVote(tiebreaker)} back`;
  }
  const barred = disks.filter((d) => d.mayPromote !== true);
  if (barred.length > 0) {
    return `${source} does not answer, but ${target}'s kernel says ${names(barred)} may not be promoted (may_promote: no): another node may still write, or its data is not current; wait, or fail over with --source-is-down once ${source} is powered off`;
  }
  return checkTargetUpToDate(disks, target);
}

/** The disks that will be promoted must hold UpToDate data (DRBD refuses anything less, rightly). */
export function checkTargetUpToDate(disks: DiskStatus[], target: string): string | null {
  const stale = disks.filter((d) => d.diskState !== 'UpToDate');
  if (stale.length === 0) return null;
  return `Disk ${stale.map((d) => `${d.resource} is ${d.diskState}`).join(', ')} on ${target}: its data is not known to be current, so it is not promoted; bring the other node back and let the resync finish, or (at your own risk of losing writes) promote it by hand with drbdadm primary --force`;
}

/** Rejoin: the survivor Primary and the returning node Secondary, connected, in sync, single-master. */
export function checkRejoined(
  status: Record<string, DiskStatus[]>,
  survivor: string,
  returning: string,
): string | null {
  for (const [node, role] of [
    [survivor, 'Primary'],
    [returning, 'Secondary'],
  ] as const) {
    for (const d of status[node] ?? []) {
      if (!inSyncWithPeer(d)) {
        return `Disk ${d.resource} on ${node} is ${d.connection}, ${d.diskState}/${d.peerDiskState} after the rejoin`;
      }
      if (d.allowTwoPrimaries) return `Disk ${d.resource} on ${node} still allows two primaries`;
      if (node === returning && d.role !== role)
        return `Disk ${d.resource} is ${d.role} on ${node}, expected ${role}`;
    }
  }
  return null;
}

/** Which way a rejoin's resync goes, as the disks said before the reconnect (see resyncForecast). */
export interface ResyncForecast {
  /** The feedback line of the reconnect. */
  says: string;
  /** Said as a warning before the reconnect: what the returning node loses, when it loses anything. */
  discards: string | null;
}

const size = (kib: number) =>
  kib >= 1024 * 1024
    ? `${(kib / 1024 / 1024).toFixed(1)} GiB`
    : kib >= 1024
      ? `${(kib / 1024).toFixed(1)} MiB`
      : `${kib} KiB`;

/**
 * A node that comes back never overwrites what the survivor wrote (rule 7); where the survivor wrote
 * nothing since they parted (a failover that committed but never started the instance), the returning
 * node's data is the newer and DRBD rightly resyncs from it: nothing is lost, and the rejoin says so
 * rather than claim a discard. What each side wrote while apart is DRBD's out-of-sync count on each;
 * a survivor that was promoted meanwhile started a new data generation even if it wrote nothing yet.
 */
export function resyncForecast(
  status: Record<string, DiskStatus[]> | null,
  survivor: string,
  returning: string,
): ResyncForecast {
  const mine = status?.[returning];
  const theirs = status?.[survivor];
  if (mine === undefined || theirs === undefined || mine.length === 0) {
    return {
      says: `* reconnecting; ${returning} connects with --discard-my-data: if both nodes wrote while apart, what it wrote alone gives way to ${survivor}`,
      discards: null,
    };
  }
  const wrote = mine.reduce((sum, d) => sum + d.outOfSyncKiB, 0);
  if (wrote === 0) {
    return {
      says: `* reconnecting; ${returning} wrote nothing while apart and resyncs from ${survivor}`,
      discards: null,
    };
  }
  const survivorWrote = theirs.some((d) => d.outOfSyncKiB > 0 || d.role === 'Primary');
  if (!survivorWrote) {
    return {
      says: `* reconnecting; ${returning} wrote ${size(wrote)} while apart that ${survivor} never had, and ${survivor} has not written since: ${survivor} resyncs from ${returning} (the newer data); nothing is lost`,
      discards: null,
    };
  }
  return {
    says: `* reconnecting; ${returning} discards what it wrote alone and resyncs from ${survivor}`,
    discards: `${returning} wrote ${size(wrote)} while apart that ${survivor} never had, and ${survivor} has written since (a split brain): ${returning}'s writes are discarded, the survivor's data is kept (rule 7)`,
  };
}

/** What `check` finds of an instance at rest: would a migration go ahead, and what would a failover rest on. */
export interface Readiness {
  /** Why a migration to the secondary would be refused now, or null. */
  migration: string | null;
  /**
   * Where the instance has selfFenceMs: why a failover away from the primary, were it to go silent,
   * could not rest on DRBD quorum as the config means it to (the operator's --source-is-down would
   * then be needed), or null where it could, or where nothing but that word is meant to.
   */
  failover: string | null;
  /** What holds, said as read (one line each). */
  holds: string[];
}

/**
 * An instance's readiness, from where it runs, its disks on both nodes and on its tiebreaker: the
 * migration's own checks (where it runs, the disks' consistency, the target's self-fence), and what a
 * failover away from the primary would need (selfFenceMs; the primary's own quorum-lost handler,
 * which a migration never reads since it makes that node the secondary; quorum held on both; the
 * tiebreaker connected to the secondary, the link a silent primary leaves). Read-only; the runs
 * check again when they run.
 */
export function judgeReadiness(
  config: InstanceConfig,
  lists: Record<string, RunningInstance[]>,
  status: Record<string, DiskStatus[]>,
  /** The tiebreaker's disks as it sees them towards the secondary, or why they could not be read. */
  tiebreakerDisks: DiskStatus[] | { unread: string } | null,
): Readiness {
  const primary = config.primaryNode;
  const secondary = config.secondaryNode ?? '';
  const migration =
    checkInstanceConfig(config, { targetNode: null }) ??
    checkRunsOnSourceOnly(lists, config.name, primary, secondary) ??
    (isSharedStorage(config)
      ? null
      : (checkDiskConsistency(status, config.name, primary, secondary) ??
        checkSelfFence(config, status, secondary)));
  const holds: string[] = [];
  if (migration === null)
    holds.push(`a migration of ${config.name} from ${primary} to ${secondary} passes its checks now`);
  // Without selfFenceMs nothing but the operator's word is meant to prove a silent node down.
  if (config.selfFenceMs === null) {
    holds.push(
      `were ${primary} to go silent, a failover would need the operator's --source-is-down (${config.name} has no selfFenceMs: DRBD quorum is not taken as proof)`,
    );
    return { migration, failover: null, holds };
  }
  const failover = failoverGround(config, status, tiebreakerDisks);
  if (failover === null)
    holds.push(
      `were ${primary} to go silent, ${secondary}'s quorum would prove it cannot write, and its quorum-lost handler stops ${config.name} within ${config.selfFenceMs} ms: a failover needs no --source-is-down`,
    );
  return { migration, failover, holds };
}

function failoverGround(
  config: InstanceConfig,
  status: Record<string, DiskStatus[]>,
  tiebreakerDisks: DiskStatus[] | { unread: string } | null,
): string | null {
  const primary = config.primaryNode;
  const secondary = config.secondaryNode ?? '';
  for (const node of [primary, secondary]) {
    const disks = status[node];
    if (disks === undefined) return `No disk status from node ${node}`;
    const without = disks.find((d) => d.quorumLostHandler !== true);
    if (without !== undefined) return noSelfFence(node, config.name, without.resource);
    const unquorate = disks.filter((d) => d.quorum !== 'held');
    if (unquorate.length > 0)
      return `${unquorate.map((d) => `${d.resource} has quorum ${d.quorum}`).join(', ')} on ${node}: quorum proves nothing there; configure 'quorum majority' with a tiebreaker (cluster.md)`;
  }
  const tiebreaker = config.tiebreaker;
  if (tiebreaker !== null) {
    if (tiebreakerDisks === null || 'unread' in tiebreakerDisks)
      return `No disk status from ${tiebreaker}, the tiebreaker${tiebreakerDisks === null ? '' : ` (${tiebreakerDisks.unread})`}: with ${primary} silent, nothing shows ${secondary} would hold quorum; bring ${tiebreaker} back`;
    const apart = tiebreakerDisks.filter((d) => d.connection !== 'Connected');
    if (apart.length > 0)
      return `${tiebreaker}, the tiebreaker, is not connected to ${secondary} on ${apart.map((d) => `${d.resource} (${d.connection})`).join(', ')}: with ${primary} silent, ${secondary} would hold one vote of three; connect ${tiebreaker} to ${secondary}`;
  }
  return null;
}
