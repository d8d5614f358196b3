import { isIP } from 'node:net';
import type { DiskStatus } from '../../machines/index.js';
import { DiskStatus as DiskStatusSchema } from '../../machines/index.js';

/**
 * DRBD 8.4 (Debian's in-tree module, Ganeti's own target), the way Ganeti drives it: dual-primary on
 * and off by disconnecting until StandAlone and connecting again with or without
 * --allow-two-primaries, promotion and demotion by minor. Command lines match what drbdadm-84 itself
 * runs for the same resource (checked against `drbdadm -d` in the tests).
 */
export interface DrbdLink {
  resource: string;
  minor: number;
  local: { address: string; port: number };
  peer: { address: string; port: number };
  /** DRBD 9 only: the peer's node-id in this resource. */
  peerNodeId?: number;
  /** DRBD 9 only: this node's node-id in this resource (a new copy's resource is made with it). */
  localNodeId?: number;
  /** DRBD 9 only: the peer's name, the connection's name in DRBD's status. */
  peerName?: string;
}

export const endpoint = (e: { address: string; port: number }) =>
  isIP(e.address) === 6 ? `ipv6:[${e.address}]:${e.port}` : `ipv4:${e.address}:${e.port}`;

/** Protocol C and Ganeti's fixed split-brain policies (both DRBD drivers set them on the connection). */
export const NET_POLICIES = [
  '--protocol=C',
  '--after-sb-0pri=discard-zero-changes',
  '--after-sb-1pri=consensus',
];

export const drbdsetup84 = '/lib/drbd/drbdsetup-84';

/**
 * A copy's backing volumes: its data, and its metadata's own volume (external, Ganeti's layout) or
 * null where the metadata sits at the end of the data volume (internal).
 */
export interface CopyVolumes {
  data: string;
  meta: string | null;
}
/** drbdmeta's device and index, and attach's meta device and index, for where the metadata is. */
export const metaPlace = (v: CopyVolumes) =>
  v.meta === null
    ? { device: v.data, drbdmeta: 'internal', attach: 'internal' }
    : { device: v.meta, drbdmeta: 'flex-external', attach: 'flexible' };

/** A DRBD wait's bound in whole seconds: 0 would mean forever. */
export const wfcTimeout = (seconds: number) => `--wfc-timeout=${Math.max(1, Math.ceil(seconds))}`;

export const drbd84 = {
  primary: (d: DrbdLink) => [drbdsetup84, 'primary', String(d.minor)],
  secondary: (d: DrbdLink) => [drbdsetup84, 'secondary', String(d.minor)],
  disconnect: (d: DrbdLink) => [drbdsetup84, 'disconnect', endpoint(d.local), endpoint(d.peer)],
  /** With discardMyData this side loses a split brain: it becomes the resync target of its peer. */
  connect: (d: DrbdLink, allowTwoPrimaries: boolean, discardMyData = false) => [
    drbdsetup84,
    'connect',
    d.resource,
    endpoint(d.local),
    endpoint(d.peer),
    ...NET_POLICIES,
    ...(allowTwoPrimaries ? ['--allow-two-primaries=yes'] : []),
    ...(discardMyData ? ['--discard-my-data'] : []),
  ],
  /** DRBD's own wait, bounded: 0 would mean forever. */
  waitSync: (d: DrbdLink, timeoutS: number) => [
    drbdsetup84,
    'wait-sync',
    String(d.minor),
    wfcTimeout(timeoutS),
  ],
  /** Until Connected (by minor: 8.4's drbdsetup cannot resolve a resource name here), bounded. */
  waitConnect: (d: DrbdLink, timeoutS: number) => [
    drbdsetup84,
    'wait-connect',
    String(d.minor),
    wfcTimeout(timeoutS),
  ],
  events: (d: DrbdLink) => [drbdsetup84, 'events2', '--now', '--statistics', d.resource],
  /** For the resync's progress only: 8.4's events2 prints no `done:`, its status does. */
  status: (d: DrbdLink) => [drbdsetup84, 'status', d.resource, '--verbose', '--statistics'],
  show: (d: DrbdLink) => [drbdsetup84, 'show', d.resource],
  /** Fresh metadata (drbdadm create-md --force: no question asked). */
  createMd: (d: DrbdLink, v: CopyVolumes) => [
    'drbdmeta',
    String(d.minor),
    'v08',
    metaPlace(v).device,
    metaPlace(v).drbdmeta,
    'create-md',
    '--force',
  ],
  /** The activity log replayed into the bitmap before an existing device is attached (drbdadm up). */
  applyAl: (d: DrbdLink, v: CopyVolumes) => [
    'drbdmeta',
    String(d.minor),
    'v08',
    metaPlace(v).device,
    metaPlace(v).drbdmeta,
    'apply-al',
  ],
  newResource: (d: DrbdLink) => [drbdsetup84, 'new-resource', d.resource],
  newMinor: (d: DrbdLink) => [drbdsetup84, 'new-minor', d.resource, String(d.minor), '0'],
  /** With resyncMiBps a fixed resync rate (no dynamic controller), as a resource file's disk section sets it. */
  attach: (d: DrbdLink, v: CopyVolumes, resyncMiBps?: number) => [
    drbdsetup84,
    'attach',
    String(d.minor),
    v.data,
    metaPlace(v).device,
    metaPlace(v).attach,
    ...(resyncMiBps === undefined ? [] : [`--resync-rate=${resyncMiBps}M`, '--c-plan-ahead=0']),
  ],
  down: (d: DrbdLink) => [drbdsetup84, 'down', d.resource],
};

const pairs = (line: string) =>
  Object.fromEntries(
    line
      .split(/\s+/)
      .slice(2)
      .map((t) => t.split(':'))
      .filter((p) => p.length >= 2)
      .map(([k, ...v]) => [k, v.join(':')]),
  ) as Record<string, string>;

/** Replication states of a resync that is starting, running or paused. */
const RESYNC = /^(StartingSync[ST]|WFBitMap[ST]|WFSyncUUID|SyncSource|SyncTarget|PausedSync[ST])$/;

/**
 * A resync is under way from the handshake on, not only while SyncSource/SyncTarget: right after a
 * reconnect a real 8.4 node reports Connected/Off (8.4's WFReportParams), then WFBitMap*, before
 * the resync of what was written while StandAlone starts. Counting those as done let the wait end
 * before the resync began (seen on the DRBD VMs).
 */
export const isResyncing = (connection: string, replication: string) =>
  RESYNC.test(replication) || (connection === 'Connected' && replication === 'Off');

/**
 * Whether a resync is pending or running, and how far it is, from `drbdsetup status RES --verbose
 * --statistics` (the same classification as parseEvents2).
 */
export function parseSyncStatus(status: string): {
  syncing: boolean;
  percent: number | null;
  connection: string;
} {
  const connection = /\sconnection:(\S+)/.exec(status)?.[1];
  const replications = [...status.matchAll(/\sreplication:(\S+)/g)].map((m) => m[1]!);
  if (!/^\S+ role:/m.test(status)) {
    throw new DrbdParseError(`not drbdsetup status output: ${JSON.stringify(status.slice(0, 200))}`);
  }
  const syncing = replications.some((r) => isResyncing(connection ?? 'StandAlone', r));
  const done = [...status.matchAll(/\sdone:(\d+(?:\.\d+)?)/g)].map((m) => Number(m[1]));
  return {
    syncing,
    percent: !syncing ? null : done.length === 0 ? 0 : Math.min(100, ...done),
    connection: connection ?? 'StandAlone',
  };
}

export class DrbdParseError extends Error {
  override name = 'DrbdParseError';
}

/**
 * `drbdsetup events2 --now --statistics RES` (8.4 utils print 9-style lines) plus whether two
 * primaries are allowed (from `drbdsetup show RES`) and the resync's progress (the `done:` of
 * `drbdsetup status RES --verbose --statistics`), as the contract's DiskStatus.
 */
export function parseEvents2(output: string, show: string, minor: number, status = ''): DiskStatus {
  const lines = output.split('\n').filter((l) => l.startsWith('exists '));
  const kind = (k: string) => lines.filter((l) => l.split(/\s+/)[1] === k).map(pairs);
  const resource = kind('resource')[0];
  const device = kind('device').find((d) => d.minor === String(minor)) ?? kind('device')[0];
  if (resource === undefined || device === undefined) {
    throw new DrbdParseError(
      `no resource or device in drbdsetup events2 output: ${JSON.stringify(output.slice(0, 200))}`,
    );
  }
  const connection = kind('connection')[0];
  const peer = kind('peer-device').find((p) => p.volume === device.volume) ?? kind('peer-device')[0];
  const replication = peer?.replication ?? 'Off';
  const connectionState = connection?.connection ?? 'StandAlone';
  const syncing = isResyncing(connectionState, replication);
  const shown = /\sdone:(\d+(?:\.\d+)?)/.exec(status)?.[1] ?? peer?.done;
  const done = shown === undefined ? null : Math.min(100, Number(shown));
  return DiskStatusSchema.parse({
    resource: resource.name,
    minor,
    role: resource.role ?? 'Unknown',
    peerRole: connection?.role ?? 'Unknown',
    connection: connectionState,
    replication,
    diskState: device.disk ?? 'DUnknown',
    peerDiskState: peer?.['peer-disk'] ?? 'DUnknown',
    allowTwoPrimaries: /^\s*allow-two-primaries\s+yes;/m.test(show),
    syncPercent: syncing ? (done ?? 0) : null,
    outOfSyncKiB: Number(peer?.['out-of-sync'] ?? 0),
  });
}
