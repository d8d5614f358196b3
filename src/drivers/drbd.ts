import type { DiskStatus } from '../../machines/index.js';
import { shellLine } from '../ssh/shell.js';
import {
  drbd9,
  hasPeer,
  parseSelfFence,
  parseStatusJson,
  parseSyncStatusJson,
  resourceOptionsOf,
  selfFenceRead,
} from './drbd9.js';
import { type CopyVolumes, type DrbdLink, drbd84, parseEvents2, parseSyncStatus } from './drbd84.js';

/**
 * What the SSH backend asks of a node's DRBD, whichever its version: the commands for each step of
 * the dual-master choreography, and how to read the answers.
 */
export type DrbdVersion = '8.4' | '9';

export interface DrbdDriver {
  primary(l: DrbdLink): string[];
  secondary(l: DrbdLink): string[];
  /** Leaves the connection StandAlone. */
  disconnect(l: DrbdLink): string[];
  /**
   * The disconnect as a node with `read` (peerRead's answer) runs it: none where DRBD 9's node has
   * no connection to the peer at all (a node whose resource file does not name it, up again after a
   * reboot), which the kernel would refuse as an unknown connection.
   */
  disconnectPeer(l: DrbdLink, read: string): string[][];
  /** Exit codes of disconnect that mean "already StandAlone" (8.4: 10, "unknown connection"). */
  alreadyStandAlone: number[];
  /**
   * Connects again, with or without two primaries allowed (one or more commands, in order); with
   * discardMyData this side gives up what it wrote alone if the handshake finds a split brain.
   */
  connect(l: DrbdLink, allowTwoPrimaries: boolean, discardMyData?: boolean): string[][];
  /** Until Connected, bounded. */
  waitConnect(l: DrbdLink, timeoutS: number): string[];
  /** The reads behind one DiskStatus, and their parse (outputs in the same order). */
  statusReads(l: DrbdLink): string[][];
  parseStatus(outputs: string[], l: DrbdLink): DiskStatus;
  /** DRBD's own wait for the resync then the status in one command (timeoutS 0: the status now). */
  syncRead(l: DrbdLink, timeoutS: number): string[];
  /** Whether a resync is pending or running, how far, and the link's connection state. */
  parseSync(output: string, l: DrbdLink): { syncing: boolean; percent: number | null; connection: string };
  /**
   * A device on new volumes, Secondary and without network (a new secondary's copy): its metadata
   * written first when `fresh`, then the resource, the minor and the attach; with resyncMiBps its
   * resync at that fixed rate. DRBD 9: the resource made with `resourceOptions`, the primary's
   * (resourceRead, read there: quorum and what to do without it), auto-promote always off.
   */
  createDevice(
    l: DrbdLink,
    volumes: CopyVolumes,
    fresh: boolean,
    resyncMiBps?: number,
    resourceOptions?: readonly string[],
  ): string[][];
  /** DRBD 9: the read of a resource's options (on the primary), and what new-resource takes of them. */
  resourceRead(l: DrbdLink): string[] | null;
  parseResourceOptions(read: string): string[];
  /** The device taken down (its volumes stay). */
  down(l: DrbdLink): string[];
  /**
   * DRBD 9, whose connections are objects of their own: the read that says whether the peer is one
   * (null on 8.4, whose connect names its peer), what makes it one where it is not (a new secondary
   * joining before the old one leaves), and what removes it and frees its bitmap slot.
   */
  peerRead(l: DrbdLink): string[] | null;
  addPeer(l: DrbdLink, read: string, resyncMiBps?: number): string[][];
  removePeer(l: DrbdLink, read: string): string[][];
}

/**
 * DRBD's own wait, then a read, as one node command: on a slow node every process and round trip
 * counts towards noticing the end of a resync late. The wait's exit code says nothing useful (it
 * returns early before a resync has begun, and 0 after its timeout); the read tells.
 */
const waitThen = (wait: string[], read: string[]) => [
  'sh',
  '-c',
  `"$@" >/dev/null 2>&1; exec ${shellLine(read)}`,
  'wait-then-read',
  ...wait,
];

export const drbdDrivers: Record<DrbdVersion, DrbdDriver> = {
  '8.4': {
    primary: drbd84.primary,
    secondary: drbd84.secondary,
    disconnect: drbd84.disconnect,
    disconnectPeer: (l) => [drbd84.disconnect(l)],
    alreadyStandAlone: [10],
    connect: (l, two, discard) => [drbd84.connect(l, two, discard)],
    waitConnect: drbd84.waitConnect,
    statusReads: (l) => [drbd84.events(l), drbd84.show(l), drbd84.status(l)],
    parseStatus: ([events, show, status], l) => parseEvents2(events ?? '', show ?? '', l.minor, status),
    syncRead: (l, s) => (s > 0 ? waitThen(drbd84.waitSync(l, s), drbd84.status(l)) : drbd84.status(l)),
    parseSync: (output) => parseSyncStatus(output),
    // Fresh metadata is written; an existing copy's activity log is applied first, as drbdadm up does.
    createDevice: (l, volumes, fresh, resyncMiBps) => [
      ...(fresh ? [drbd84.createMd(l, volumes)] : []),
      drbd84.newResource(l),
      drbd84.newMinor(l),
      ...(fresh ? [] : [drbd84.applyAl(l, volumes)]),
      drbd84.attach(l, volumes, resyncMiBps),
    ],
    down: drbd84.down,
    resourceRead: () => null,
    parseResourceOptions: () => [],
    peerRead: () => null,
    addPeer: () => [],
    // One peer only: removing it is leaving the link StandAlone (nothing to forget).
    removePeer: (l) => [drbd84.disconnect(l)],
  },
  '9': {
    primary: drbd9.primary,
    secondary: drbd9.secondary,
    disconnect: drbd9.disconnect,
    disconnectPeer: (l, show) => (hasPeer(show, l.peerNodeId) ? [drbd9.disconnect(l)] : []),
    // DRBD 9.2.16 answers 0 to a disconnect of a StandAlone connection; its 10 is a real refusal.
    alreadyStandAlone: [],
    // A DRBD 9 connection keeps its options while StandAlone: set them, then connect.
    connect: (l, two, discard) => [drbd9.netOptions(l, two), drbd9.connect(l, discard)],
    waitConnect: drbd9.waitConnect,
    // With whether the node would stop the instance on quorum loss (its quorum-lost handler).
    statusReads: (l) => [drbd9.status(l), drbd9.show(l), drbd9.events(l), selfFenceRead(l.resource)],
    parseStatus: ([json, show, events, selfFence], l) => ({
      ...parseStatusJson(json ?? '', show ?? '', l.minor, l.peerNodeId, events),
      ...(selfFence === undefined ? {} : { quorumLostHandler: parseSelfFence(selfFence) }),
    }),
    syncRead: (l, s) => (s > 0 ? waitThen(drbd9.waitSync(l, s), drbd9.status(l)) : drbd9.status(l)),
    parseSync: (output, l) => parseSyncStatusJson(output, l.peerNodeId),
    // As drbdadm up makes it from a file naming this node alone: no peer yet (attachNet adds it).
    createDevice: (l, volumes, fresh, _resyncMiBps, resourceOptions = []) => [
      ...(fresh ? [drbd9.createMd(l, volumes)] : []),
      drbd9.newResource(l, resourceOptions),
      drbd9.newMinor(l),
      ...(fresh ? [] : [drbd9.applyAl(l, volumes)]),
      drbd9.attach(l, volumes),
    ],
    down: (l) => [drbd9.status(l)[0]!, 'down', l.resource],
    resourceRead: drbd9.show,
    parseResourceOptions: resourceOptionsOf,
    peerRead: drbd9.show,
    addPeer: (l, show, resyncMiBps) =>
      hasPeer(show, l.peerNodeId)
        ? []
        : [
            drbd9.newPeer(l),
            drbd9.newPath(l),
            ...(resyncMiBps === undefined ? [] : [drbd9.resyncRate(l, resyncMiBps)]),
          ],
    // del-peer disconnects first; forget-peer finds nothing to clear when the slot is free already.
    removePeer: (l, show) => [
      ...(hasPeer(show, l.peerNodeId) ? [drbd9.delPeer(l)] : []),
      drbd9.forgetPeer(l),
    ],
  },
};
