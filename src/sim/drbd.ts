import type { DiskStatus } from '../../machines/index.js';
import type { DrbdLink, DrbdLocal, Resource, World } from './world.js';

/**
 * DRBD's own rules, as far as migration depends on them. A resource has a device on each node that
 * holds a copy (role, disk) and a link per pair of connected copies (each side's configuration and
 * view, the resync between the two): one link on 8.4, one per peer on 9. Messages are the kernel's
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

/** The pair's link: the instance's two copies (a joining copy's link comes after it). */
export const pairLink = (r: Resource): DrbdLink => r.links[0]!;
/** The nodes of the pair's link. */
export const pairOf = (r: Resource): readonly [string, string] => pairLink(r).ends;
/**
 * The link between the config's primary and secondary (after a migration to a third copy, no longer
 * the first); the first where the config names no such link.
 */
export const configLink = (r: Resource, primary: string, secondary: string | null): DrbdLink =>
  (secondary === null ? undefined : linkBetween(r, primary, secondary)) ?? pairLink(r);
/** Whom a node's look is towards where the caller names no peer: as the SSH backend's, by the config. */
export const defaultPeer = (node: string, primary: string, secondary: string | null): string | undefined =>
  (node === primary ? secondary : primary) ?? undefined;

export const otherEnd = (l: DrbdLink, node: string) => (l.ends[0] === node ? l.ends[1] : l.ends[0]);
export const linkBetween = (r: Resource, a: string, b: string): DrbdLink | undefined =>
  r.links.find((l) => l.ends.includes(a) && l.ends.includes(b) && a !== b);
export const linksOf = (r: Resource, node: string): DrbdLink[] =>
  r.links.filter((l) => l.ends.includes(node));

/**
 * The link NODE's look is about: the one towards TOWARDS where there is one, else NODE's first
 * (a node of the pair looks at the pair's link; a joining copy at its own).
 */
export const linkFor = (r: Resource, node: string, towards?: string): DrbdLink | undefined =>
  (towards === undefined ? undefined : linkBetween(r, node, towards)) ?? linksOf(r, node)[0];

/** NODE's peer over its first link (its pair peer; a joining copy's, the node it copies from). */
export function peerOf(r: Resource, node: string): string {
  const l = linkFor(r, node);
  return l === undefined ? otherEnd(pairLink(r), node) : otherEnd(l, node);
}

export const linkConnected = (l: DrbdLink) => l.ends.every((n) => l.connection[n] === 'Connected');
export const linkSyncing = (l: DrbdLink) => linkConnected(l) && l.syncSource !== null;
/** Every link of the resource is connected. */
export const isConnected = (r: Resource) => r.links.every(linkConnected);

const newLink = (ends: [string, string]): DrbdLink => ({
  ends,
  net: {},
  connection: { [ends[0]]: 'StandAlone', [ends[1]]: 'StandAlone' },
  syncSource: null,
  outOfSyncKiB: 0,
  syncTotalKiB: 0,
  dirtyKiB: {},
  newGeneration: [],
  linkDownUntil: null,
  joining: false,
});

/** A link to a copy with no data yet: everything is to be sent from `from`. */
function freshLink(r: Resource, from: string, to: string): DrbdLink {
  const l = newLink([from, to]);
  l.syncSource = from;
  l.outOfSyncKiB = r.sizeKiB;
  l.syncTotalKiB = r.sizeKiB;
  localOf(r, to).diskState = 'Inconsistent';
  return l;
}

/**
 * DRBD 8.4: the pair's link is made between `node` and a node that is not yet its peer (a new
 * secondary): the old peer is dropped, and the new one, whose device has no data yet, receives
 * everything from `node` (a full resync). `node` must be StandAlone (8.4 has one peer).
 */
export function switchPeer(r: Resource, node: string, peer: string): void {
  if (pairOf(r).includes(peer)) return;
  localOf(r, peer);
  if (!pairOf(r).includes(node)) throw new Error(`${r.name}: not configured on ${node}`);
  if ((pairLink(r).net[node] ?? null) !== null)
    throw new Error(`${r.name}: Failure: (102) Local address(port) already in use`);
  r.links[0] = freshLink(r, node, peer);
}

/**
 * Promote (drbdsetup primary): needs UpToDate data and, with a Primary peer, two primaries allowed.
 * State change errors read as the 8.4 kernel's do (recorded on the DRBD VMs): prefixed by the minor.
 */
export function promote(world: World, r: Resource, node: string): void {
  const local = localOf(r, node);
  if (local.role === 'Primary') return;
  const q = quorumOf(world, r, node);
  if (q.quorum === 'lost') {
    throw new Error(`${r.name}: State change failed: (-25) No quorum`);
  }
  if (local.diskState !== 'UpToDate') {
    throw new Error(`${r.minor}: State change failed: (-2) Need access to UpToDate data`);
  }
  const links = linksOf(r, node);
  const toPrimary = links.filter((l) => linkConnected(l) && localOf(r, otherEnd(l, node)).role === 'Primary');
  // DRBD 9 promotes only where its kernel says it may: a Primary peer still in the tiebreaker's
  // reach, though not connected here, bars it (the simulator's wording; the kernel's may differ).
  if (q.quorum === 'held' && q.mayPromote === false && toPrimary.length === 0) {
    throw new Error(`${r.name}: State change failed: a Primary is still in reach (may_promote: no)`);
  }
  if (toPrimary.some((l) => l.net[node]?.allowTwoPrimaries !== true)) {
    throw new Error(`${r.minor}: State change failed: (-1) Multiple primaries not allowed by config`);
  }
  newGeneration(r, node);
  // Safety rule 4 is the orchestrator's, not DRBD's: DRBD lets a StandAlone node become Primary.
  // Rule 7's exception: the peer is down (the failover's proof), so there is no peer to agree with,
  // or it fenced itself: without quorum it cannot write, and nothing of this disk runs there.
  const agreed = (l: DrbdLink) => {
    const peer = otherEnd(l, node);
    return (
      world.nodes[peer]?.down === true ||
      fencedItself(world, r, peer) ||
      (linkConnected(l) &&
        !linkSyncing(l) &&
        local.diskState === 'UpToDate' &&
        localOf(r, peer).diskState === 'UpToDate')
    );
  };
  if (!links.some(agreed)) {
    const l = linkFor(r, node);
    const peer = l === undefined ? undefined : otherEnd(l, node);
    world.violations.push(
      `rule 4: ${r.name} promoted on ${node} while ${l?.connection[node] ?? 'StandAlone'}, ${local.diskState}/${peer === undefined ? 'DUnknown' : localOf(r, peer).diskState}`,
    );
  }
  local.role = 'Primary';
}

/**
 * NODE begins a new data generation (DRBD's new current UUID): a peer it is not connected to no
 * longer holds its ancestor, nor does one apart from a peer that follows NODE over a connection (a
 * third copy takes the new generation from the primary and is ahead of the node the two left).
 */
function newGeneration(r: Resource, node: string): void {
  const followers = [
    node,
    ...linksOf(r, node)
      .filter(linkConnected)
      .map((l) => otherEnd(l, node)),
  ];
  for (const n of followers)
    for (const l of linksOf(r, n))
      if (!linkConnected(l) && !l.newGeneration.includes(n)) l.newGeneration.push(n);
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

/**
 * drbdsetup disconnect of NODE's link towards PEER (8.4: its only one): this side StandAlone, the
 * other waits for a connection.
 */
export function disconnect(r: Resource, node: string, peer?: string): void {
  const l = peer === undefined ? linkFor(r, node) : linkBetween(r, node, peer);
  if (l === undefined) return;
  l.net[node] = null;
  l.connection[node] = 'StandAlone';
  const other = otherEnd(l, node);
  if ((l.net[other] ?? null) !== null) l.connection[other] = 'Connecting';
}

/** drbdsetup connect: configure the network; the handshake happens once both sides are configured. */
export function configureNet(
  l: DrbdLink,
  node: string,
  allowTwoPrimaries: boolean,
  discardMyData = false,
  resource = '',
): void {
  const net = l.net[node] ?? null;
  if (net !== null && l.connection[node] !== 'StandAlone') {
    if (net.allowTwoPrimaries === allowTwoPrimaries) return;
    throw new Error(`${resource}: Failure: (102) Local address(port) already in use`);
  }
  l.net[node] = { allowTwoPrimaries, discardMyData };
  l.connection[node] = 'Connecting';
}

function dropToStandAlone(l: DrbdLink) {
  for (const n of l.ends) {
    l.net[n] = null;
    l.connection[n] = 'StandAlone';
  }
}

/**
 * The handshake of a link's two configured sides. Mismatched allow-two-primaries and two Primaries
 * without it both end StandAlone, as does a resync that would make a Primary the SyncTarget.
 */
export function handshake(world: World, r: Resource, l: DrbdLink): void {
  const [a, b] = l.ends;
  const na = l.net[a] ?? null;
  const nb = l.net[b] ?? null;
  if (na === null || nb === null || linkConnected(l) || l.linkDownUntil !== null) return;
  if (l.ends.some((n) => world.nodes[n]?.down === true || isolated(world, n))) return;
  if (na.allowTwoPrimaries !== nb.allowTwoPrimaries) {
    dropToStandAlone(l);
    return;
  }
  const la = localOf(r, a);
  const lb = localOf(r, b);
  if (la.role === 'Primary' && lb.role === 'Primary' && !na.allowTwoPrimaries) {
    dropToStandAlone(l);
    return;
  }
  const da = l.dirtyKiB[a] ?? 0;
  const db = l.dirtyKiB[b] ?? 0;
  // A side moved on if it wrote, or was promoted (a new generation), while apart.
  const movedA = da > 0 || l.newGeneration.includes(a);
  const movedB = db > 0 || l.newGeneration.includes(b);
  // Both sides moved on while apart: a split brain, which only --discard-my-data on one side resolves
  // (that side becomes the resync target and loses what it wrote alone).
  const victim = na.discardMyData ? a : nb.discardMyData ? b : null;
  if (movedA && movedB && victim === null) {
    world.violations.push(`split brain: ${r.name} was written on both ${a} and ${b} while disconnected`);
    dropToStandAlone(l);
    return;
  }
  const source = movedA && movedB ? otherEnd(l, victim!) : movedA ? a : movedB ? b : l.syncSource;
  if (source !== null) {
    const target = otherEnd(l, source);
    if (localOf(r, target).role === 'Primary' && (movedA || movedB)) {
      // "I shall become SyncTarget, but I am primary!"
      dropToStandAlone(l);
      return;
    }
    l.syncSource = source;
    l.outOfSyncKiB += da + db;
    l.syncTotalKiB = l.outOfSyncKiB;
    l.dirtyKiB = {};
    l.newGeneration = [];
    if (l.outOfSyncKiB > 0) localOf(r, target).diskState = 'Inconsistent';
    else l.syncSource = null;
  }
  l.connection[a] = 'Connected';
  l.connection[b] = 'Connected';
}

/** Resync progress and guest writes over dt simulated ms, on every link of the resource. */
export function advanceResource(world: World, r: Resource, dtMs: number, running: Set<string>): void {
  // Nodes whose guest writes (Primary; with quorum, as on-no-quorum io-error fails the rest), and
  // the peers those writes reach over a connection: each is ahead of a peer it is apart from. Two
  // copies that took one primary's writes while apart from each other share its generation on the
  // kernel; here each counts as ahead of the other, so their reconnect without --discard-my-data on
  // one side is judged a split brain: stricter than DRBD, never more lenient.
  const writers = new Set(
    [...running].filter((n) => localOf(r, n).role === 'Primary' && quorumOf(world, r, n).quorum !== 'lost'),
  );
  for (const n of [...writers])
    for (const l of linksOf(r, n)) if (linkConnected(l)) writers.add(otherEnd(l, n));
  const slowEnds = r.slowUntil !== null && world.time + dtMs >= r.slowUntil;
  // A copy is resynced from one peer at a time (DRBD 9 pauses the others): a new copy that joins
  // the primary and a third copy takes the third's resync after the primary's, in full. Stricter
  // than a kernel that may clear the second bitmap, never more lenient.
  const receiving = new Set<string>();
  for (const l of r.links) {
    let dt = dtMs;
    if (l.linkDownUntil !== null && world.time + dt >= l.linkDownUntil) {
      // What was written until the link came back is counted before the handshake judges it.
      const apartMs = Math.max(0, l.linkDownUntil - world.time);
      writeWhileApart(world, l, apartMs, writers);
      dt -= apartMs;
      l.linkDownUntil = null;
      handshake(world, r, l);
    }
    const target = linkSyncing(l) ? otherEnd(l, l.syncSource!) : null;
    if (target !== null && !receiving.has(target)) {
      receiving.add(target);
      const rate = (slowEnds ? null : r.resyncKiBps) ?? world.settings.resyncKiBps;
      l.outOfSyncKiB = Math.max(0, l.outOfSyncKiB - (rate * dt) / 1000);
      if (l.outOfSyncKiB === 0) {
        localOf(r, otherEnd(l, l.syncSource!)).diskState = 'UpToDate';
        l.syncSource = null;
        l.syncTotalKiB = 0;
      }
    }
    writeWhileApart(world, l, dt, writers);
  }
  if (slowEnds) {
    r.slowUntil = null;
    r.resyncKiBps = null;
  }
}

/** Writes made on a side while not connected: what the resync (or a split brain) will count. */
function writeWhileApart(world: World, l: DrbdLink, dtMs: number, writers: Set<string>): void {
  if (linkConnected(l) || dtMs <= 0) return;
  // A new copy's link before its full resync: everything is to be sent anyway, and the new copy
  // holds no data of its own that a write could put at odds with its peer's.
  if (l.joining && l.syncSource !== null && l.outOfSyncKiB >= l.syncTotalKiB) return;
  for (const n of l.ends)
    if (writers.has(n)) l.dirtyKiB[n] = (l.dirtyKiB[n] ?? 0) + (world.settings.guestWriteKiBps * dtMs) / 1000;
}

/** DRBD 9: whether NODE would stop the instance on losing quorum (see the node's selfFences). */
const selfFenceOf = (world: World, r: Resource, node: string) =>
  r.drbd === '9' ? (world.nodes[node]?.selfFences ?? true) : null;

/** `node`'s view of the resource, towards `towards` where it has more than one peer (DRBD 9). */
export function statusOf(world: World, r: Resource, node: string, towards?: string): DiskStatus {
  if (node === r.tiebreaker)
    return tiebreakerStatus(
      world,
      r,
      towards ?? pairOf(r).find((n) => localOf(r, n).role === 'Primary') ?? pairOf(r)[0],
    );
  const l = linkFor(r, node, towards);
  if (l === undefined) return unlinkedStatus(world, r, node);
  const local = localOf(r, node);
  const peer = localOf(r, otherEnd(l, node));
  const connected = linkConnected(l);
  const syncing = linkSyncing(l);
  return {
    resource: r.name,
    minor: r.minor,
    quorumLostHandler: selfFenceOf(world, r, node),
    role: local.role,
    peerRole: connected ? peer.role : 'Unknown',
    connection: l.connection[node] ?? 'StandAlone',
    replication: !connected
      ? 'Off'
      : !syncing
        ? 'Established'
        : l.syncSource === node
          ? 'SyncSource'
          : 'SyncTarget',
    diskState: local.diskState,
    peerDiskState: connected ? peer.diskState : 'DUnknown',
    allowTwoPrimaries: l.net[node]?.allowTwoPrimaries ?? false,
    syncPercent:
      syncing && l.syncTotalKiB > 0 ? Math.floor(1000 * (1 - l.outOfSyncKiB / l.syncTotalKiB)) / 10 : null,
    outOfSyncKiB: Math.round(l.outOfSyncKiB + (l.dirtyKiB[node] ?? 0)),
    ...quorumOf(world, r, node),
    autoPromote: r.autoPromote,
  };
}

/**
 * DRBD 9's quorum with a diskless tiebreaker (a resource with `quorum`): the copies and the
 * tiebreaker vote; the tiebreaker, while up and not cut off itself, reaches every node that is up
 * and not isolated. A node holds quorum with a peer connected or the tiebreaker in reach.
 * may_promote besides needs UpToDate data and no Primary anyone can still reach: a Primary cut off
 * from its peer only (the link between the two down) is still the tiebreaker's, so its peer may not
 * promote.
 */
export function quorumOf(world: World, r: Resource, node: string): Pick<DiskStatus, 'quorum' | 'mayPromote'> {
  if (!r.quorum) return { quorum: 'off', mayPromote: null };
  const links = linksOf(r, node);
  const tiebreakerReaches = (n: string) => tiebreakerUp(world, r) && !isolated(world, n) && votesFor(r, n);
  const held = world.nodes[node]?.down !== true && (links.some(linkConnected) || tiebreakerReaches(node));
  if (!held) return { quorum: 'lost', mayPromote: false };
  const local = localOf(r, node);
  const primaryInReach = links.some((l) => {
    const peer = otherEnd(l, node);
    return (
      localOf(r, peer).role === 'Primary' &&
      world.nodes[peer]?.down !== true &&
      (linkConnected(l) || tiebreakerReaches(peer))
    );
  });
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

/** NODE is cut off: on each of its links both sides wait for the other until it is back. */
export function isolate(r: Resource, node: string): void {
  for (const l of linksOf(r, node)) waitOnBothSides(l);
}

function waitOnBothSides(l: DrbdLink) {
  for (const n of l.ends) if ((l.net[n] ?? null) !== null) l.connection[n] = 'Connecting';
}

/** A replication link fails for a while: both sides keep their configuration and wait. */
export function linkDown(l: DrbdLink, untilMs: number): void {
  l.linkDownUntil = untilMs;
  waitOnBothSides(l);
}

/**
 * The node died: its DRBD devices are gone (Secondary, unconfigured, its data as it was), and its
 * peers wait for it. With `wroteAlone`, it had been cut off and written on its own before it died,
 * so its return is a split brain.
 */
export function nodeDies(r: Resource, node: string, wroteAlone: boolean): void {
  const local = localOf(r, node);
  for (const l of linksOf(r, node)) {
    if (wroteAlone && local.role === 'Primary') l.dirtyKiB[node] = (l.dirtyKiB[node] ?? 0) + 4096;
    l.net[node] = null;
    l.connection[node] = 'StandAlone';
    const other = otherEnd(l, node);
    if ((l.net[other] ?? null) !== null) l.connection[other] = 'Connecting';
    // A resync under way is not forgotten: DRBD keeps its bitmap and resumes when the two meet again.
  }
  local.role = 'Secondary';
}

/** A device on no link (a new copy not yet attached, an old one left): alone. */
function unlinkedStatus(world: World, r: Resource, node: string): DiskStatus {
  const local = localOf(r, node);
  return {
    resource: r.name,
    minor: r.minor,
    quorumLostHandler: selfFenceOf(world, r, node),
    role: local.role,
    peerRole: 'Unknown',
    connection: 'StandAlone',
    replication: 'Off',
    diskState: local.diskState,
    peerDiskState: 'DUnknown',
    allowTwoPrimaries: false,
    syncPercent: null,
    outOfSyncKiB: 0,
    ...quorumOf(world, r, node),
    autoPromote: r.autoPromote,
  };
}

/** A joining link's new copy: its second end (addPeer makes it so). */
export const joiningEnd = (l: DrbdLink) => l.ends[1];

/**
 * The copy joining beside the others (DRBD 9), if one is, over its first joining link (the one to
 * the primary; a third copy's comes after).
 */
export function joiningPeer(r: Resource): { node: string; to: string; link: DrbdLink } | null {
  const l = r.links.find((x) => x.joining);
  if (l === undefined) return null;
  return { node: joiningEnd(l), to: l.ends[0], link: l };
}

/**
 * DRBD 9's make-before-break: `peer` (a new secondary, its device made by createDisks) gets a link
 * of its own to `node` beside the links the copies have (to the primary first, then to a third
 * copy). DRBD 8.4 has one peer: there the pair itself changes (switchPeer). One new copy at a time:
 * a second is a slot the simulator does not model.
 */
export function addPeer(r: Resource, node: string, peer: string): void {
  localOf(r, peer);
  if (linkBetween(r, node, peer) !== undefined) return;
  const joining = joiningPeer(r);
  if (joining !== null && joining.node !== peer)
    throw new Error(`${r.name}: ${joining.node} is joining already; remove that peer first`);
  r.links.push({ ...freshLink(r, node, peer), joining: true });
}

/** Whether NODE is a new copy that has joined its peers only so far (its every link joining). */
export const onlyJoining = (r: Resource, node: string) =>
  linksOf(r, node).every((l) => l.joining && joiningEnd(l) === node);

/**
 * DRBD 9's del-peer and forget-peer on `node`: `peer` stops being its peer. The joining peer's link
 * removed is the undo of a replace; the pair's removed while a copy joins `node` makes the joining
 * link the pair's (the old secondary leaves). Removing the last other UpToDate copy while the new
 * one is not is what rule 8 forbids: the simulator does it, as DRBD would, and says so. A pair with
 * no copy joining, and 8.4 always, are only disconnected on `node`'s side.
 */
export function removePeer(world: World, r: Resource, node: string, peer: string): void {
  if (node === r.tiebreaker) {
    r.tiebreakerPeers = r.tiebreakerPeers.filter((n) => n !== peer);
    return;
  }
  const l = linkBetween(r, node, peer);
  if (l === undefined) return;
  if (r.drbd !== '9') {
    disconnect(r, node, peer);
    return;
  }
  if (l.joining) {
    r.links = r.links.filter((x) => x !== l);
    return;
  }
  const joining = linksOf(r, node).find((x) => x.joining);
  if (joining === undefined) {
    disconnect(r, node, peer);
    return;
  }
  const inSync = linkConnected(joining) && joining.outOfSyncKiB === 0;
  if (!inSync && localOf(r, peer).diskState === 'UpToDate' && world.nodes[peer]?.down !== true)
    world.violations.push(
      `rule 8: ${r.name}: ${peer}, UpToDate, removed as a peer of ${node} while ${otherEnd(joining, node)} was ${linkConnected(joining) ? `${Math.round(joining.outOfSyncKiB)} KiB behind` : 'not connected'}`,
    );
  // The new copy's link takes the old one's place (the pair's first, a third copy's after).
  r.links = r.links.flatMap((x) => (x === l ? [{ ...joining, joining: false }] : x === joining ? [] : [x]));
}
