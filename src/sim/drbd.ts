import type { DiskStatus } from '../../machines/index.js';
import type { DrbdLocal, Resource, World } from './world.js';

/**
 * DRBD's own rules, as far as migration depends on them (8.4 semantics). Messages are the kernel's
 * state-change errors, so the simulator fails the way a real node does.
 */

export function resourceOf(world: World, name: string): Resource {
  const r = world.resources[name];
  if (r === undefined && world.sharedDisks[name] !== undefined) {
    throw new Error(`${name} is on shared storage, not a DRBD resource`);
  }
  if (r === undefined) throw new Error(`${name}: No such resource`);
  return r;
}

export function localOf(r: Resource, node: string): DrbdLocal {
  const l = r.local[node];
  if (l === undefined) throw new Error(`${r.name}: not configured on ${node}`);
  return l;
}

export function peerOf(r: Resource, node: string): string {
  const [a, b] = r.nodes;
  return node === a ? b : a;
}

export const isConnected = (r: Resource) => r.nodes.every((n) => r.local[n]?.connection === 'Connected');

/**
 * The link is made between `node` and a node that is not yet its peer (a new secondary): the old
 * peer is dropped from the resource's connection, and the new one, whose device has no data yet,
 * receives everything from `node` (a full resync). `node` must be StandAlone (DRBD 8.4 has one peer).
 */
export function switchPeer(r: Resource, node: string, peer: string): void {
  if (r.nodes.includes(peer)) return;
  localOf(r, peer);
  if (!r.nodes.includes(node)) throw new Error(`${r.name}: not configured on ${node}`);
  if (localOf(r, node).net !== null)
    throw new Error(`${r.name}: Failure: (102) Local address(port) already in use`);
  r.nodes = [node, peer];
  r.syncSource = node;
  r.outOfSyncKiB = r.sizeKiB;
  r.syncTotalKiB = r.sizeKiB;
  r.dirtyKiB = {};
  r.newGeneration = [];
  localOf(r, peer).diskState = 'Inconsistent';
}
export const isSyncing = (r: Resource) => isConnected(r) && r.syncSource !== null;

/**
 * Promote (drbdsetup primary): needs UpToDate data and, with a Primary peer, two primaries allowed.
 * State change errors read as the 8.4 kernel's do (recorded on the DRBD VMs): prefixed by the minor.
 */
export function promote(world: World, r: Resource, node: string): void {
  const local = localOf(r, node);
  if (local.role === 'Primary') return;
  if (quorumOf(world, r, node).quorum === 'lost') {
    throw new Error(`${r.name}: State change failed: (-25) No quorum`);
  }
  const peer = localOf(r, peerOf(r, node));
  if (local.diskState !== 'UpToDate') {
    throw new Error(`${r.minor}: State change failed: (-2) Need access to UpToDate data`);
  }
  // DRBD 9 promotes only where its kernel says it may: a Primary peer still in the tiebreaker's
  // reach, though not connected here, bars it (the simulator's wording; the kernel's may differ).
  const q = quorumOf(world, r, node);
  if (q.quorum === 'held' && q.mayPromote === false && !isConnected(r)) {
    throw new Error(`${r.name}: State change failed: a Primary is still in reach (may_promote: no)`);
  }
  if (isConnected(r) && peer.role === 'Primary' && local.net?.allowTwoPrimaries !== true) {
    throw new Error(`${r.minor}: State change failed: (-1) Multiple primaries not allowed by config`);
  }
  if (!isConnected(r) && !r.newGeneration.includes(node)) r.newGeneration.push(node);
  // Safety rule 4 is the orchestrator's, not DRBD's: DRBD lets a StandAlone node become Primary.
  // Rule 7's exception: the peer is down (the failover's proof), so there is no peer to agree with,
  // or it fenced itself: without quorum it cannot write, and nothing of this disk runs there.
  const peerDown = world.nodes[peerOf(r, node)]?.down === true;
  if (
    !peerDown &&
    !fencedItself(world, r, peerOf(r, node)) &&
    !(isConnected(r) && !isSyncing(r) && local.diskState === 'UpToDate' && peer.diskState === 'UpToDate')
  ) {
    world.violations.push(
      `rule 4: ${r.name} promoted on ${node} while ${local.connection}, ${local.diskState}/${peer.diskState}`,
    );
  }
  local.role = 'Primary';
}

/** Demote (drbdsetup secondary): refused while a guest holds the device open. */
export function demote(world: World, r: Resource, node: string, instance: string): void {
  const local = localOf(r, node);
  if (local.role === 'Secondary') return;
  if (world.vms[node]?.[instance] !== undefined) {
    throw new Error(`${r.minor}: State change failed: (-12) Device is held open by someone`);
  }
  local.role = 'Secondary';
}

/** drbdsetup disconnect: this side StandAlone, the peer waits for a connection. */
export function disconnect(r: Resource, node: string): void {
  const local = localOf(r, node);
  local.net = null;
  local.connection = 'StandAlone';
  if (!r.nodes.includes(node)) return;
  const peer = localOf(r, peerOf(r, node));
  if (peer.net !== null) peer.connection = 'Connecting';
}

/** drbdsetup connect: configure the network; the handshake happens once both sides are configured. */
export function configureNet(
  r: Resource,
  node: string,
  allowTwoPrimaries: boolean,
  discardMyData = false,
): void {
  const local = localOf(r, node);
  if (local.net !== null && local.connection !== 'StandAlone') {
    if (local.net.allowTwoPrimaries === allowTwoPrimaries) return;
    throw new Error(`${r.name}: Failure: (102) Local address(port) already in use`);
  }
  local.net = { allowTwoPrimaries, discardMyData };
  local.connection = 'Connecting';
}

function dropToStandAlone(r: Resource) {
  for (const n of r.nodes) {
    const l = localOf(r, n);
    l.net = null;
    l.connection = 'StandAlone';
  }
}

/**
 * The handshake of two configured sides. Mismatched allow-two-primaries and two Primaries without it
 * both end StandAlone, as does a resync that would make a Primary the SyncTarget.
 */
export function handshake(world: World, r: Resource): void {
  const [a, b] = r.nodes;
  const la = localOf(r, a);
  const lb = localOf(r, b);
  if (la.net === null || lb.net === null || isConnected(r) || r.linkDownUntil !== null) return;
  if (r.nodes.some((n) => isolated(world, n))) return;
  if (la.net.allowTwoPrimaries !== lb.net.allowTwoPrimaries) {
    dropToStandAlone(r);
    return;
  }
  if (la.role === 'Primary' && lb.role === 'Primary' && !la.net.allowTwoPrimaries) {
    dropToStandAlone(r);
    return;
  }
  const da = r.dirtyKiB[a] ?? 0;
  const db = r.dirtyKiB[b] ?? 0;
  // A side moved on if it wrote, or was promoted (a new generation), while apart.
  const movedA = da > 0 || r.newGeneration.includes(a);
  const movedB = db > 0 || r.newGeneration.includes(b);
  // Both sides moved on while apart: a split brain, which only --discard-my-data on one side resolves
  // (that side becomes the resync target and loses what it wrote alone).
  const victim = la.net.discardMyData ? a : lb.net.discardMyData ? b : null;
  if (movedA && movedB && victim === null) {
    world.violations.push(`split brain: ${r.name} was written on both ${a} and ${b} while disconnected`);
    dropToStandAlone(r);
    return;
  }
  const source = movedA && movedB ? peerOf(r, victim!) : movedA ? a : movedB ? b : r.syncSource;
  if (source !== null) {
    const target = peerOf(r, source);
    if (localOf(r, target).role === 'Primary' && (movedA || movedB)) {
      // "I shall become SyncTarget, but I am primary!"
      dropToStandAlone(r);
      return;
    }
    r.syncSource = source;
    r.outOfSyncKiB += da + db;
    r.syncTotalKiB = r.outOfSyncKiB;
    r.dirtyKiB = {};
    r.newGeneration = [];
    if (r.outOfSyncKiB > 0) localOf(r, target).diskState = 'Inconsistent';
    else r.syncSource = null;
  }
  la.connection = 'Connected';
  lb.connection = 'Connected';
}

/** Resync progress and guest writes over dt simulated ms. */
export function advanceResource(world: World, r: Resource, dtMs: number, writers: Set<string>): void {
  if (r.linkDownUntil !== null && world.time + dtMs >= r.linkDownUntil) {
    // What was written until the link came back is counted before the handshake judges it.
    const apartMs = Math.max(0, r.linkDownUntil - world.time);
    writeWhileApart(world, r, apartMs, writers);
    dtMs -= apartMs;
    r.linkDownUntil = null;
    handshake(world, r);
  }
  if (r.slowUntil !== null && world.time + dtMs >= r.slowUntil) {
    r.slowUntil = null;
    r.resyncKiBps = null;
  }
  if (isSyncing(r)) {
    const rate = r.resyncKiBps ?? world.settings.resyncKiBps;
    r.outOfSyncKiB = Math.max(0, r.outOfSyncKiB - (rate * dtMs) / 1000);
    if (r.outOfSyncKiB === 0) {
      localOf(r, peerOf(r, r.syncSource!)).diskState = 'UpToDate';
      r.syncSource = null;
      r.syncTotalKiB = 0;
    }
  }
  writeWhileApart(world, r, dtMs, writers);
}

/** A Primary's guest writes on while not connected: what the resync (or a split brain) will count. */
function writeWhileApart(world: World, r: Resource, dtMs: number, writers: Set<string>): void {
  if (isConnected(r) || dtMs <= 0) return;
  for (const n of writers) {
    // Without quorum (on-no-quorum io-error) its writes fail: nothing for the peer to discard later.
    if (localOf(r, n).role === 'Primary' && quorumOf(world, r, n).quorum !== 'lost') {
      r.dirtyKiB[n] = (r.dirtyKiB[n] ?? 0) + (world.settings.guestWriteKiBps * dtMs) / 1000;
    }
  }
}

/** `node`'s view of the resource, towards `towards` where it has more than one peer (DRBD 9). */
/** DRBD 9: whether NODE would stop the instance on losing quorum (see the node's selfFences). */
const selfFenceOf = (world: World, r: Resource, node: string) =>
  r.drbd === '9' ? (world.nodes[node]?.selfFences ?? true) : null;

export function statusOf(world: World, r: Resource, node: string, towards?: string): DiskStatus {
  if (node === r.tiebreaker)
    return tiebreakerStatus(
      world,
      r,
      towards ?? r.nodes.find((n) => localOf(r, n).role === 'Primary') ?? r.nodes[0],
    );
  if (onJoiningLink(r, node, towards)) return joiningStatus(world, r, node);
  if (!r.nodes.includes(node)) return unlinkedStatus(world, r, node);
  const local = localOf(r, node);
  const peer = localOf(r, peerOf(r, node));
  const connected = isConnected(r);
  const syncing = isSyncing(r);
  return {
    resource: r.name,
    minor: r.minor,
    quorumLostHandler: selfFenceOf(world, r, node),
    role: local.role,
    peerRole: connected ? peer.role : 'Unknown',
    connection: local.connection,
    replication: !connected
      ? 'Off'
      : !syncing
        ? 'Established'
        : r.syncSource === node
          ? 'SyncSource'
          : 'SyncTarget',
    diskState: local.diskState,
    peerDiskState: connected ? peer.diskState : 'DUnknown',
    allowTwoPrimaries: local.net?.allowTwoPrimaries ?? false,
    syncPercent:
      syncing && r.syncTotalKiB > 0 ? Math.floor(1000 * (1 - r.outOfSyncKiB / r.syncTotalKiB)) / 10 : null,
    outOfSyncKiB: Math.round(r.outOfSyncKiB + (r.dirtyKiB[node] ?? 0)),
    ...quorumOf(world, r, node),
    autoPromote: r.autoPromote,
  };
}

/**
 * DRBD 9's quorum with a diskless tiebreaker (a resource with `quorum`): three votes, the two copies
 * and the tiebreaker, which, while up and not cut off itself, reaches every node that is up and not
 * isolated. A node holds quorum with its peer connected or the tiebreaker in reach. may_promote
 * besides needs UpToDate data and no Primary anyone can still reach: a Primary cut off from its peer
 * only (the link between the two down) is still the tiebreaker's, so its peer may not promote.
 */
export function quorumOf(world: World, r: Resource, node: string): Pick<DiskStatus, 'quorum' | 'mayPromote'> {
  if (!r.quorum) return { quorum: 'off', mayPromote: null };
  const linked = r.nodes.includes(node);
  const connected = linked && isConnected(r);
  const tiebreakerReaches = (n: string) => tiebreakerUp(world, r) && !isolated(world, n) && votesFor(r, n);
  const held = world.nodes[node]?.down !== true && (connected || tiebreakerReaches(node));
  if (!held) return { quorum: 'lost', mayPromote: false };
  const local = localOf(r, node);
  const peer = linked ? peerOf(r, node) : null;
  const primaryInReach =
    peer !== null &&
    localOf(r, peer).role === 'Primary' &&
    world.nodes[peer]?.down !== true &&
    (connected || tiebreakerReaches(peer));
  return { quorum: 'held', mayPromote: local.diskState === 'UpToDate' && !primaryInReach };
}

/** The tiebreaker is up and its links are (one the config does not name always is). */
const tiebreakerUp = (world: World, r: Resource) =>
  r.tiebreaker === null ||
  (world.nodes[r.tiebreaker]?.down !== true && !isolated(world, r.tiebreaker) && !r.tiebreakerCut);

/** Whether the tiebreaker has a connection with NODE: a named one only with the peers it was given. */
const votesFor = (r: Resource, node: string) => r.tiebreaker === null || r.tiebreakerPeers.includes(node);

/**
 * The tiebreaker's own look at R towards NODE (diskless: no copy, never promoted): connected while
 * both ends are up, neither cut off, and NODE one of its peers with a device.
 */
export function tiebreakerStatus(world: World, r: Resource, towards: string): DiskStatus {
  const peer = r.local[towards];
  const connected =
    peer !== undefined &&
    votesFor(r, towards) &&
    tiebreakerUp(world, r) &&
    world.nodes[towards]?.down !== true &&
    !isolated(world, towards);
  return {
    resource: r.name,
    minor: r.minor,
    // Diskless: it never runs the instance, so it has nothing to stop.
    quorumLostHandler: null,
    role: 'Secondary',
    peerRole: connected ? peer.role : 'Unknown',
    connection: connected ? 'Connected' : votesFor(r, towards) ? 'Connecting' : 'StandAlone',
    replication: connected ? 'Established' : 'Off',
    diskState: 'Diskless',
    peerDiskState: connected ? peer.diskState : 'DUnknown',
    allowTwoPrimaries: false,
    syncPercent: null,
    outOfSyncKiB: 0,
    quorum: 'held',
    mayPromote: false,
    autoPromote: r.autoPromote,
  };
}

/**
 * A new secondary joins the tiebreaker (both ends add each other): it connects once both are up and
 * neither is cut off; false until then.
 */
export function joinTiebreaker(world: World, r: Resource, node: string): boolean {
  if (r.local[node] === undefined) throw new Error(`${r.name}: not configured on ${node}`);
  if (!tiebreakerUp(world, r) || world.nodes[node]?.down === true || isolated(world, node)) return false;
  if (!r.tiebreakerPeers.includes(node)) r.tiebreakerPeers.push(node);
  return true;
}

/** NODE lost quorum on R (it cannot write) and runs no guest that uses R: it fenced itself. */
function fencedItself(world: World, r: Resource, node: string): boolean {
  if (quorumOf(world, r, node).quorum !== 'lost') return false;
  return !Object.keys(world.vms[node] ?? {}).some((i) =>
    world.config.instances[i]?.disks.some((d) => d.resource === r.name),
  );
}

/** Cut off from every network (management, replication, the tiebreaker) while it runs on. */
export const isolated = (world: World, node: string) => (world.nodes[node]?.isolatedSince ?? null) !== null;

/** One of its nodes is cut off: both sides wait for the other until it is back (no handshake before). */
export function isolate(r: Resource): void {
  for (const n of r.nodes) {
    const l = localOf(r, n);
    if (l.net !== null) l.connection = 'Connecting';
  }
}

/** The replication link fails for a while: both sides keep their configuration and wait. */
export function linkDown(r: Resource, untilMs: number): void {
  r.linkDownUntil = untilMs;
  for (const n of r.nodes) {
    const l = localOf(r, n);
    if (l.net !== null) l.connection = 'Connecting';
  }
}

/**
 * The node died: its DRBD devices are gone (Secondary, unconfigured, its data as it was), and its
 * peer waits for it. With `wroteAlone`, it had been cut off and written on its own before it died,
 * so its return is a split brain.
 */
export function nodeDies(r: Resource, node: string, wroteAlone: boolean): void {
  const local = localOf(r, node);
  const peer = localOf(r, peerOf(r, node));
  if (wroteAlone && local.role === 'Primary') r.dirtyKiB[node] = (r.dirtyKiB[node] ?? 0) + 4096;
  local.role = 'Secondary';
  local.net = null;
  local.connection = 'StandAlone';
  if (peer.net !== null) peer.connection = 'Connecting';
  // A resync under way is not forgotten: DRBD keeps its bitmap and resumes when the two meet again.
}

/** A device outside the resource's connection (a new copy not yet attached, an old one left): alone. */
function unlinkedStatus(world: World, r: Resource, node: string): DiskStatus {
  const local = localOf(r, node);
  return {
    resource: r.name,
    minor: r.minor,
    quorumLostHandler: selfFenceOf(world, r, node),
    role: local.role,
    peerRole: 'Unknown',
    connection: local.connection,
    replication: 'Off',
    diskState: local.diskState,
    peerDiskState: 'DUnknown',
    allowTwoPrimaries: local.net?.allowTwoPrimaries ?? false,
    syncPercent: null,
    outOfSyncKiB: 0,
    ...quorumOf(world, r, node),
    autoPromote: r.autoPromote,
  };
}

/**
 * DRBD 9's make-before-break: `peer` (a new secondary, its device made by createDisks) becomes a
 * further peer of `node` beside the pair. DRBD 8.4 has one peer: there the pair itself changes
 * (switchPeer). One joining peer at a time: a second is a slot the simulator does not model.
 */
export function addPeer(r: Resource, node: string, peer: string): void {
  localOf(r, peer);
  if (r.joining?.node === peer && r.joining.to === node) return;
  if (r.joining !== null)
    throw new Error(`${r.name}: ${r.joining.node} is joining already; remove that peer first`);
  r.joining = {
    node: peer,
    to: node,
    configured: [],
    connected: false,
    outOfSyncKiB: r.sizeKiB,
    totalKiB: r.sizeKiB,
  };
  localOf(r, peer).diskState = 'Inconsistent';
}

/** Both ends of the joining link asked for it, both reachable: it connects (its resync starts). */
export function joinHandshake(world: World, r: Resource): void {
  const j = r.joining;
  if (j === null || j.connected) return;
  const ends = [j.node, j.to];
  if (!ends.every((n) => j.configured.includes(n))) return;
  if (ends.some((n) => world.nodes[n]?.down === true || isolated(world, n))) return;
  j.connected = true;
  localOf(r, j.node).connection = 'Connected';
}

/** The joining link's resync over dt; a node of it that died or is cut off drops it (it waits). */
export function advanceJoining(world: World, r: Resource, dtMs: number): void {
  const j = r.joining;
  if (j === null) return;
  if ([j.node, j.to].some((n) => world.nodes[n]?.down === true || isolated(world, n))) {
    j.connected = false;
    if (localOf(r, j.node).connection === 'Connected') localOf(r, j.node).connection = 'Connecting';
    return;
  }
  if (!j.connected) joinHandshake(world, r);
  if (!j.connected || j.outOfSyncKiB === 0) return;
  const rate = r.resyncKiBps ?? world.settings.resyncKiBps;
  j.outOfSyncKiB = Math.max(0, j.outOfSyncKiB - (rate * dtMs) / 1000);
  if (j.outOfSyncKiB === 0) localOf(r, j.node).diskState = 'UpToDate';
}

export const joiningSettled = (r: Resource) =>
  r.joining === null || (r.joining.connected && r.joining.outOfSyncKiB === 0);

/** Whether `node`'s look towards `towards` is the joining link (either end of it). */
export const onJoiningLink = (r: Resource, node: string, towards: string | undefined) =>
  r.joining !== null &&
  ((node === r.joining.node && (towards === undefined || towards === r.joining.to)) ||
    (node === r.joining.to && towards === r.joining.node));

/** A node's view of the joining link: the new copy's, or the node it joins's towards it. */
export function joiningStatus(world: World, r: Resource, node: string): DiskStatus {
  const j = r.joining!;
  const local = localOf(r, node);
  const other = localOf(r, node === j.node ? j.to : j.node);
  const syncing = j.connected && j.outOfSyncKiB > 0;
  return {
    resource: r.name,
    minor: r.minor,
    quorumLostHandler: selfFenceOf(world, r, node),
    role: local.role,
    peerRole: j.connected ? other.role : 'Unknown',
    connection: j.connected ? 'Connected' : j.configured.includes(node) ? 'Connecting' : 'StandAlone',
    replication: !j.connected
      ? 'Off'
      : !syncing
        ? 'Established'
        : node === j.to
          ? 'SyncSource'
          : 'SyncTarget',
    diskState: local.diskState,
    peerDiskState: j.connected ? other.diskState : 'DUnknown',
    allowTwoPrimaries: false,
    syncPercent: syncing && j.totalKiB > 0 ? Math.floor(1000 * (1 - j.outOfSyncKiB / j.totalKiB)) / 10 : null,
    outOfSyncKiB: Math.round(j.outOfSyncKiB),
    ...quorumOf(world, r, node),
    autoPromote: r.autoPromote,
  };
}

/**
 * DRBD 9's del-peer and forget-peer on `node`: `peer` stops being its peer. The joining peer removed
 * is the undo of a replace; the pair's other end removed makes the joining peer the pair (the old
 * secondary leaves). Removing the last other UpToDate copy while the new one is not is what rule 8
 * forbids: the simulator does it, as DRBD would, and says so. On 8.4 the side StandAlone.
 */
export function removePeer(world: World, r: Resource, node: string, peer: string): void {
  if (node === r.tiebreaker) {
    r.tiebreakerPeers = r.tiebreakerPeers.filter((n) => n !== peer);
    return;
  }
  if (r.drbd !== '9') {
    if (r.nodes.includes(node) && r.nodes.includes(peer)) disconnect(r, node);
    return;
  }
  const j = r.joining;
  if (j !== null && ((j.node === peer && j.to === node) || (j.node === node && j.to === peer))) {
    r.joining = null;
    const joiner = localOf(r, j.node);
    joiner.net = null;
    joiner.connection = 'StandAlone';
    return;
  }
  if (!(r.nodes.includes(node) && r.nodes.includes(peer))) return;
  const leaving = localOf(r, peer);
  if (j === null || j.to !== node) {
    disconnect(r, node);
    return;
  }
  const inSync = j.connected && j.outOfSyncKiB === 0;
  if (!inSync && leaving.diskState === 'UpToDate' && world.nodes[peer]?.down !== true)
    world.violations.push(
      `rule 8: ${r.name}: ${peer}, UpToDate, removed as a peer of ${node} while ${j.node} was ${j.connected ? `${Math.round(j.outOfSyncKiB)} KiB behind` : 'not connected'}`,
    );
  const stays = localOf(r, node);
  const joiner = localOf(r, j.node);
  r.nodes = [node, j.node];
  r.joining = null;
  stays.net = { allowTwoPrimaries: false, discardMyData: false };
  joiner.net = { allowTwoPrimaries: false, discardMyData: false };
  stays.connection = j.connected ? 'Connected' : 'Connecting';
  joiner.connection = j.connected ? 'Connected' : 'Connecting';
  r.syncSource = j.outOfSyncKiB > 0 ? node : null;
  r.outOfSyncKiB = j.outOfSyncKiB;
  r.syncTotalKiB = j.outOfSyncKiB > 0 ? j.totalKiB : 0;
  r.dirtyKiB = {};
  r.newGeneration = [];
  r.linkDownUntil = null;
  // The old secondary's own side: its peer is gone, it waits for nobody.
  leaving.net = null;
  leaving.connection = 'StandAlone';
}
