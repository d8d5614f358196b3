import { z } from 'zod';
import {
  configLink,
  isolate,
  joiningEnd,
  joiningPeer,
  linkConnected,
  linkDown,
  localOf,
  nodeDies,
  otherEnd,
  resourceOf,
} from './drbd.js';
import { clearNode, placeVm, removeVm, setRunState } from './guests.js';
import { FRESH_TUNING, type Resource, type World } from './world.js';

/**
 * Things that happen to a cluster by themselves, timed by tests: the replication link drops (and
 * comes back), a resync crawls, the target's QEMU dies, a postcopy copy loses its link.
 */
export const Perturbation = z.enum([
  'linkDown',
  'resyncStall',
  'resyncPending',
  'targetDies',
  'postcopyBreaks',
  'copyCompletes',
  'commitLands',
  'sourcePauses',
  /** The instance's primary loses power (failover). */
  'sourceDies',
  /**
   * The instance's primary is cut off from its peer, writes on alone, then loses power: its return
   * after a failover is a split brain, which only --discard-my-data on it resolves.
   */
  'sourceWritesAloneAndDies',
  /** The instance's primary stops answering its management network, but runs on (failover refuses). */
  'sourceUnreachable',
  /**
   * The instance's primary is cut off from every network (management, its peer, the tiebreaker) and
   * runs on: with quorum it cannot write, and its quorum-lost handler stops the guest after the
   * instance's selfFenceMs; without quorum it writes on alone.
   */
  'sourceIsolated',
  /**
   * DRBD 9 with quorum: the instance's primary loses its management network and its link to the
   * secondary, and only those: the tiebreaker still reaches it, so it keeps quorum and writes on,
   * and the secondary may not promote (may_promote: no).
   */
  'sourceCutFromTarget',
  /** The instance's secondary is cut off from every network as well (after sourceIsolated): it lost quorum too. */
  'targetIsolated',
  /**
   * DRBD 9: the resources' named tiebreaker loses its replication links (it still answers its
   * management network): it votes for no one, and no new peer can join it.
   */
  'tiebreakerCut',
  /** The instance's secondary loses power (a rejoin of a node that is not up). */
  'secondaryDies',
  /** A paused copy of the instance stands on its secondary (a returning node that started it). */
  'staleCopy',
  /** The instance's secondary (a node that died and was failed over from) boots again. */
  'sourceReturns',
  /**
   * The guest starts dirtying memory at memory speed over half of it: no downtime limit, and no CPU
   * throttle, lets its copy converge; only postcopy finishes it.
   */
  'busyGuest',
  /** The primary's disks fall behind (Inconsistent, a resync towards it): no copy may be made from them. */
  'primaryDegrades',
  /**
   * A replace's commit write whose answer was lost had taken effect: the config names as secondary
   * the node the replace made a copy on, and the old one as still to be removed.
   */
  'replaceCommitLands',
  /**
   * A third copy's replace whose commit answer was lost had taken effect: the config names as third
   * copy the node the replace made a copy on, and the old one as still to be removed.
   */
  'thirdCopyCommitLands',
  /** Three copies: writes the third copy has to catch up on, over each of its connected links. */
  'thirdCopyBehind',
  /** Three copies: writes the secondary has to catch up on, over each of its connected links. */
  'secondaryBehind',
  /** Three copies: the third copy's node loses power and boots again (its connections forgotten). */
  'thirdCopyRestarts',
]);
export type Perturbation = z.infer<typeof Perturbation>;

/** How long a dropped link stays down, in simulated ms. */
const LINK_DOWN_MS = 2_000;
/** A burst of writes that the peer has to catch up on. */
const BURST_KIB = 64 * 1024;
/** A stalled resync: a gigabyte pending at a rate that moves no visible percent, for a minute and a half. */
const STALL_KIB = 1024 * 1024;
const STALL_KIBPS = 0.01;
const STALL_MS = 90_000;

/** Memory speed: even at QEMU's 99% throttle the guest dirties faster than any migration link. */
const BUSY_DIRTY_MIBPS = 64 * 1024;
/** Larger than the default downtime cap lets through at the default bandwidth (2 s at 128 MiB/s). */
const BUSY_WORKING_SET_MIB = 384;

export function perturb(world: World, kind: Perturbation, instance: string): void {
  const config = world.config.instances[instance];
  if (config === undefined) throw new Error(`instance ${instance} is not defined`);
  // Shared-storage disks have no replication to disturb.
  const resources = config.disks
    .filter((d) => world.resources[d.resource] !== undefined)
    .map((d) => resourceOf(world, d.resource));
  // The link between the two nodes the config names (a third copy's links are left alone).
  const pair = (r: Resource) => configLink(r, config.primaryNode, config.secondaryNode);
  // A new copy joining on DRBD 9 (make-before-break): its link is the one a resync runs on.
  const joining = resources.filter((r) => joiningPeer(r) !== null);
  if (joining.length > 0 && (kind === 'linkDown' || kind === 'resyncStall' || kind === 'resyncPending')) {
    for (const r of joining) disturbJoining(world, r, kind);
    return;
  }
  switch (kind) {
    case 'linkDown':
      for (const r of resources) linkDown(pair(r), world.time + LINK_DOWN_MS);
      return;
    case 'resyncStall':
      for (const r of resources) {
        const l = pair(r);
        if (!linkConnected(l)) continue;
        const source = l.ends.find((n) => localOf(r, n).role === 'Primary') ?? l.ends[0];
        l.syncSource = source;
        l.outOfSyncKiB += STALL_KIB;
        l.syncTotalKiB = l.outOfSyncKiB;
        r.resyncKiBps = STALL_KIBPS;
        r.slowUntil = world.time + STALL_MS;
        localOf(r, otherEnd(l, source)).diskState = 'Inconsistent';
      }
      return;
    case 'targetDies':
      for (const vms of Object.values(world.vms)) {
        const vm = vms[instance];
        if (vm?.migration) removeVm(world, vm.migration.target, instance);
      }
      return;
    case 'resyncPending':
      for (const r of resources) {
        const l = pair(r);
        if (!linkConnected(l)) continue;
        const source = l.syncSource ?? l.ends.find((n) => localOf(r, n).role === 'Primary') ?? l.ends[0];
        const target = otherEnd(l, source);
        if (localOf(r, target).role === 'Primary') continue;
        l.syncSource = source;
        l.outOfSyncKiB += BURST_KIB;
        l.syncTotalKiB = l.outOfSyncKiB;
        localOf(r, target).diskState = 'Inconsistent';
      }
      return;
    case 'thirdCopyBehind':
    case 'secondaryBehind': {
      const behind = kind === 'thirdCopyBehind' ? config.thirdCopy : config.secondaryNode;
      for (const r of resources)
        for (const l of r.links) {
          if (behind === null || !l.ends.includes(behind) || !linkConnected(l)) continue;
          if (localOf(r, behind).role === 'Primary') continue;
          l.syncSource ??= otherEnd(l, behind);
          l.outOfSyncKiB += BURST_KIB;
          l.syncTotalKiB = l.outOfSyncKiB;
          localOf(r, behind).diskState = 'Inconsistent';
        }
      return;
    }
    // The copy reaches its end right now (the last pages go while nobody watches).
    case 'copyCompletes':
      for (const vms of Object.values(world.vms)) {
        const m = vms[instance]?.migration;
        if (m !== undefined && m !== null && m.status === 'active') m.transferredMiB = m.totalMiB - 1e-9;
      }
      return;
    // A config write whose answer was lost had taken effect: the config names the other node.
    case 'commitLands':
      if (config.secondaryNode !== null) {
        [config.primaryNode, config.secondaryNode] = [config.secondaryNode, config.primaryNode];
        world.commits[instance] = (world.commits[instance] ?? 0) + 1;
      }
      return;
    case 'primaryDegrades':
      for (const r of resources) {
        const local = r.local[config.primaryNode];
        if (local !== undefined) local.diskState = 'Inconsistent';
      }
      return;
    case 'replaceCommitLands':
    case 'thirdCopyCommitLands': {
      const made = Object.keys(resources[0]?.local ?? {}).find(
        (n) => n !== config.primaryNode && n !== config.secondaryNode && n !== config.thirdCopy,
      );
      if (made === undefined) return;
      if (kind === 'thirdCopyCommitLands' && config.thirdCopy !== null) {
        config.formerThirdCopy = config.thirdCopy;
        config.thirdCopy = made;
      } else if (kind === 'replaceCommitLands' && config.secondaryNode !== null) {
        config.formerSecondary = config.secondaryNode;
        config.secondaryNode = made;
      }
      return;
    }
    // The guest on the config's primary stands paused (a non-live copy aborted without 'cont').
    case 'sourcePauses': {
      const vm = world.vms[config.primaryNode]?.[instance];
      if (vm?.state === 'running') setRunState(world, vm, 'paused');
      return;
    }
    case 'sourceDies':
      killNode(world, config.primaryNode, false);
      return;
    case 'sourceWritesAloneAndDies':
      killNode(world, config.primaryNode, true);
      return;
    case 'sourceUnreachable': {
      const n = world.nodes[config.primaryNode];
      if (n !== undefined) n.unreachable = true;
      return;
    }
    case 'sourceIsolated': {
      const n = world.nodes[config.primaryNode];
      if (n === undefined || n.down || n.isolatedSince !== null) return;
      n.unreachable = true;
      n.isolatedSince = world.time;
      for (const r of Object.values(world.resources)) isolate(r, config.primaryNode);
      return;
    }
    case 'sourceCutFromTarget': {
      const n = world.nodes[config.primaryNode];
      if (n !== undefined) n.unreachable = true;
      // The link between the two stays down (an hour: longer than any run), nothing else is cut.
      for (const r of resources) linkDown(pair(r), world.time + 3_600_000);
      return;
    }
    case 'targetIsolated': {
      const n = config.secondaryNode === null ? undefined : world.nodes[config.secondaryNode];
      if (n === undefined || n.down || n.isolatedSince !== null) return;
      n.unreachable = true;
      n.isolatedSince = world.time;
      return;
    }
    case 'tiebreakerCut':
      for (const r of resources) if (r.tiebreaker !== null) r.tiebreakerCut = true;
      return;
    case 'secondaryDies':
      if (config.secondaryNode !== null) killNode(world, config.secondaryNode, false);
      return;
    case 'sourceReturns':
      if (config.secondaryNode !== null) reviveNode(world, config.secondaryNode);
      return;
    case 'thirdCopyRestarts':
      if (config.thirdCopy !== null) {
        killNode(world, config.thirdCopy, false);
        reviveNode(world, config.thirdCopy);
      }
      return;
    case 'staleCopy':
      if (config.secondaryNode !== null && world.vms[config.secondaryNode]?.[instance] === undefined) {
        // Its QEMU holds the instance's shared devices open, as a real one would.
        for (const d of config.disks) {
          const shared = world.sharedDisks[d.resource];
          if (shared !== undefined) shared.open[config.secondaryNode] = 'shared';
        }
        placeVm(world, config.secondaryNode, instance, {
          state: 'paused',
          memoryMiB: config.memoryMiB,
          uptimeMs: 0,
          migration: null,
          tuning: { ...FRESH_TUNING },
        });
      }
      return;
    case 'busyGuest':
      if (world.guests[instance]?.dirtyMiBps === BUSY_DIRTY_MIBPS) return;
      world.guests[instance] = { dirtyMiBps: BUSY_DIRTY_MIBPS, workingSetMiB: BUSY_WORKING_SET_MIB };
      // A copy under way is near the end of its first, full pass: what is left is the working set.
      for (const vms of Object.values(world.vms)) {
        const vm = vms[instance];
        const m = vm?.migration;
        if (vm === undefined || m === null || m === undefined || m.status !== 'active' || !m.live) continue;
        m.totalMiB = vm.memoryMiB;
        m.transferredMiB = vm.memoryMiB;
        m.passLeftMiB = BUSY_WORKING_SET_MIB;
        m.dirtiedMiB = 0;
      }
      return;
    // Takes effect when (or as soon as) the copy runs in postcopy.
    case 'postcopyBreaks':
      for (const vms of Object.values(world.vms)) {
        const m = vms[instance]?.migration;
        if (m !== undefined && m !== null) m.breaksInPostcopy = true;
      }
      return;
  }
}

/**
 * The node loses power: its guests are gone, its DRBD devices with them, its peers wait. With
 * `wroteAlone` it had been cut off and written on its own first (its return is a split brain).
 */
export function killNode(world: World, node: string, wroteAlone: boolean): void {
  const n = world.nodes[node];
  if (n === undefined) throw new Error(`unknown node ${node}`);
  n.down = true;
  clearNode(world, node);
  for (const r of Object.values(world.resources))
    if (r.local[node] !== undefined) nodeDies(r, node, wroteAlone);
  // A shared device is held by nothing on a node that is off.
  for (const d of Object.values(world.sharedDisks)) delete d.open[node];
}

/** The node boots again: nothing runs, its DRBD devices are Secondary and unconnected. */
export function reviveNode(world: World, node: string): void {
  const n = world.nodes[node];
  if (n === undefined) throw new Error(`unknown node ${node}`);
  n.down = false;
  n.unreachable = false;
  n.isolatedSince = null;
}

/**
 * The same disturbances on a joining peer's links (to the primary, and to a third copy): its
 * handshake refused (the link StandAlone, as a new node's refusing resync handler leaves it on real
 * DRBD), a stall, or a burst to catch up on.
 */
function disturbJoining(world: World, r: Resource, kind: 'linkDown' | 'resyncStall' | 'resyncPending'): void {
  for (const link of r.links.filter((l) => l.joining)) {
    const node = joiningEnd(link);
    if (kind === 'linkDown') {
      for (const n of link.ends) {
        link.net[n] = null;
        link.connection[n] = 'StandAlone';
      }
      continue;
    }
    link.outOfSyncKiB += kind === 'resyncStall' ? STALL_KIB : BURST_KIB;
    link.syncTotalKiB = Math.max(link.syncTotalKiB, link.outOfSyncKiB);
    link.syncSource ??= otherEnd(link, node);
    localOf(r, node).diskState = 'Inconsistent';
  }
  if (kind === 'resyncStall') {
    r.resyncKiBps = STALL_KIBPS;
    r.slowUntil = world.time + STALL_MS;
  }
}
