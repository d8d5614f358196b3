import { z } from 'zod';
import type { DiskStatus } from '../../machines/index.js';
import { DiskStatus as DiskStatusSchema } from '../../machines/index.js';
import {
  type CopyVolumes,
  type DrbdLink,
  DrbdParseError,
  endpoint,
  isResyncing,
  metaPlace,
  NET_POLICIES,
  wfcTimeout,
} from './drbd84.js';

/**
 * DRBD 9, driven the way the 8.4 driver drives 8.4 (Ganeti's choreography): the connection to the
 * peer is addressed by the peer's node-id, and its options are changed with net-options before the
 * connect, since a DRBD 9 connection keeps its configuration while StandAlone. Roles are per
 * resource. Command lines match what drbd-utils 9's drbdadm runs for the same resource (checked
 * against `drbdadm -d` in the tests); the status comes from `drbdsetup status --json`. Run against
 * DRBD 9.2.16 built for Debian's kernel on the VM testbed (test/drbd9-vms.test.ts); its parse is
 * tested on outputs recorded there (test/fixtures/drbd9).
 */

export const drbdsetup9 = '/usr/sbin/drbdsetup';

const peer = (d: DrbdLink) => {
  if (d.peerNodeId === undefined) throw new Error(`${d.resource}: DRBD 9 needs the peer's node-id`);
  return String(d.peerNodeId);
};
const self = (d: DrbdLink) => {
  if (d.localNodeId === undefined) throw new Error(`${d.resource}: DRBD 9 needs this node's node-id`);
  return String(d.localNodeId);
};

/**
 * Bitmap slots a new copy's metadata gets: one per peer it may have at once. A replace adds a peer
 * beside the one it replaces, so two is the least; DRBD refuses a connect with no free slot ("Not
 * enough free bitmap slots").
 */
export const NEW_COPY_MAX_PEERS = 7;

export const drbd9 = {
  primary: (d: DrbdLink) => [drbdsetup9, 'primary', d.resource],
  secondary: (d: DrbdLink) => [drbdsetup9, 'secondary', d.resource],
  disconnect: (d: DrbdLink) => [drbdsetup9, 'disconnect', d.resource, peer(d)],
  /** The connection's options: Ganeti's split-brain policies, and two primaries or not. */
  netOptions: (d: DrbdLink, allowTwoPrimaries: boolean) => [
    drbdsetup9,
    'net-options',
    d.resource,
    peer(d),
    ...NET_POLICIES,
    `--allow-two-primaries=${allowTwoPrimaries ? 'yes' : 'no'}`,
  ],
  connect: (d: DrbdLink, discardMyData = false) => [
    drbdsetup9,
    'connect',
    d.resource,
    peer(d),
    ...(discardMyData ? ['--discard-my-data'] : []),
  ],
  waitConnect: (d: DrbdLink, timeoutS: number) => [
    drbdsetup9,
    'wait-connect-resource',
    d.resource,
    wfcTimeout(timeoutS),
  ],
  waitSync: (d: DrbdLink, timeoutS: number) => [
    drbdsetup9,
    'wait-sync-resource',
    d.resource,
    wfcTimeout(timeoutS),
  ],
  status: (d: DrbdLink) => [drbdsetup9, 'status', d.resource, '--json', '--statistics'],
  /** For may_promote only: the JSON status does not carry it. */
  events: (d: DrbdLink) => [drbdsetup9, 'events2', '--now', d.resource],
  show: (d: DrbdLink) => [drbdsetup9, 'show', d.resource],
  // A new copy, as drbdadm create-md and up make one from a resource file naming it (external metadata).
  createMd: (d: DrbdLink, v: CopyVolumes) => [
    'drbdmeta',
    String(d.minor),
    'v09',
    metaPlace(v).device,
    metaPlace(v).drbdmeta,
    'create-md',
    String(NEW_COPY_MAX_PEERS),
    '--force',
  ],
  applyAl: (d: DrbdLink, v: CopyVolumes) => [
    'drbdmeta',
    String(d.minor),
    'v09',
    metaPlace(v).device,
    metaPlace(v).drbdmeta,
    'apply-al',
  ],
  /** With the resource options given (the primary's), auto-promote off whatever they say. */
  newResource: (d: DrbdLink, options: readonly string[] = []) => [
    drbdsetup9,
    'new-resource',
    d.resource,
    self(d),
    ...options.filter((o) => !o.startsWith('--auto-promote=')),
    '--auto-promote=no',
  ],
  newMinor: (d: DrbdLink) => [drbdsetup9, 'new-minor', d.resource, String(d.minor), '0'],
  attach: (d: DrbdLink, v: CopyVolumes) => [
    drbdsetup9,
    'attach',
    String(d.minor),
    v.data,
    metaPlace(v).device,
    metaPlace(v).attach,
  ],
  /** A peer the resource does not have yet (a new secondary), single-primary, and its path. */
  newPeer: (d: DrbdLink) => [
    drbdsetup9,
    'new-peer',
    d.resource,
    peer(d),
    ...(d.peerName === undefined ? [] : [`--_name=${d.peerName}`]),
    ...NET_POLICIES,
  ],
  newPath: (d: DrbdLink) => [
    drbdsetup9,
    'new-path',
    d.resource,
    peer(d),
    endpoint(d.local),
    endpoint(d.peer),
  ],
  /** A fixed resync rate towards the peer (drbdadm's peer-device-options from a disk section). */
  resyncRate: (d: DrbdLink, mibps: number) => [
    drbdsetup9,
    'peer-device-options',
    d.resource,
    peer(d),
    '0',
    '--c-plan-ahead=0',
    `--resync-rate=${mibps}M`,
  ],
  delPeer: (d: DrbdLink) => [drbdsetup9, 'del-peer', d.resource, peer(d)],
  /** Frees the departed peer's bitmap slot (the connection must be gone: del-peer first). */
  forgetPeer: (d: DrbdLink) => [drbdsetup9, 'forget-peer', d.resource, peer(d)],
};

/**
 * The resource options `drbdsetup show RES` prints (those that differ from DRBD's defaults: quorum,
 * on-no-quorum, auto-promote...), as new-resource takes them, so that a new copy votes and fences as
 * the primary does. Only plain words pass (a key of letters and dashes, a value of letters, digits,
 * dots, dashes); anything else is left out.
 */
export function resourceOptionsOf(show: string): string[] {
  const block = /^resource\s+\S+\s*\{\s*options\s*\{([^}]*)\}/m.exec(show)?.[1] ?? '';
  return [...block.matchAll(/^\s*([a-z][a-z-]*)\s+([A-Za-z0-9_.-]+);/gm)].map(([, k, v]) => `--${k}=${v}`);
}

/** Whether `drbdsetup show RES` has a connection to the peer (its `_peer_node_id`). */
export function hasPeer(show: string, peerNodeId: number | undefined): boolean {
  return peerNodeId !== undefined && new RegExp(`^\\s*_peer_node_id\\s+${peerNodeId};`, 'm').test(show);
}

/** `drbdsetup status RES --json --statistics`: the keys the driver reads (spellings as DRBD's). */
const PeerDevice = z.object({
  volume: z.number(),
  'replication-state': z.string(),
  'peer-disk-state': z.string(),
  'out-of-sync': z.number().optional(),
  'percent-resync-done': z.number().optional(),
});
const Connection = z.object({
  'peer-node-id': z.number(),
  'connection-state': z.string(),
  'peer-role': z.string(),
  peer_devices: z.array(PeerDevice),
});
const Resource = z.object({
  name: z.string(),
  role: z.string(),
  devices: z.array(
    z.object({
      volume: z.number(),
      minor: z.number(),
      'disk-state': z.string(),
      quorum: z.boolean().optional(),
    }),
  ),
  connections: z.array(Connection),
});
const StatusJson = z.array(Resource);

function resourceOf(json: string): z.infer<typeof Resource> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new DrbdParseError(`not drbdsetup status --json output: ${JSON.stringify(json.slice(0, 200))}`);
  }
  const parsed = StatusJson.safeParse(value);
  if (!parsed.success || parsed.data[0] === undefined) {
    throw new DrbdParseError(
      `unexpected drbdsetup status --json output: ${parsed.success ? 'no resource' : parsed.error.issues[0]?.message}`,
    );
  }
  return parsed.data[0];
}

/**
 * The connection to the peer (by node-id) and its peer device for the disk's volume. Without a
 * node-id only a resource with one connection has an answer: with a tiebreaker or a third peer the
 * only connection left may be another node's, never taken for the peer's.
 */
function peerOf(resource: z.infer<typeof Resource>, volume: number, peerNodeId: number | undefined) {
  const connection =
    peerNodeId === undefined
      ? resource.connections.length === 1
        ? resource.connections[0]
        : undefined
      : resource.connections.find((c) => c['peer-node-id'] === peerNodeId);
  return { connection, device: connection?.peer_devices.find((p) => p.volume === volume) };
}

/**
 * Whether the connection to the peer allows two primaries, from `drbdsetup show RES`: each
 * connection is its own section (`_peer_node_id N;`, then its net options), and only the peer's
 * counts (a third node's connection must never allow it).
 */
export function twoPrimariesAllowed(show: string, peerNodeId: number | undefined): boolean {
  const sections = show.split(/^\s*connection\s*\{/m).slice(1);
  const section =
    peerNodeId === undefined
      ? sections.length === 1
        ? sections[0]
        : undefined
      : sections.find((c) => new RegExp(`^\\s*_peer_node_id\\s+${peerNodeId};`, 'm').test(c));
  return section !== undefined && /^\s*allow-two-primaries\s+yes;/m.test(section);
}

/**
 * Whether the resource has quorum at all, from `drbdsetup show RES` (`options { quorum majority; }`,
 * `all` or a count): the device's `quorum` is true also where none is configured.
 */
export const quorumConfigured = (show: string) => /^\s*quorum\s+(majority|all|\d+);/m.test(show);

/** The kernel's may_promote, from the resource line of `drbdsetup events2 --now RES`. */
export function mayPromoteOf(events: string): boolean | null {
  const m = /^exists resource .*\bmay_promote:(yes|no)\b/m.exec(events);
  return m === null ? null : m[1] === 'yes';
}

/**
 * The contract's DiskStatus from `drbdsetup status RES --json --statistics`, whether two primaries
 * are allowed and quorum is configured from `drbdsetup show RES`, and may_promote from
 * `drbdsetup events2 --now RES` when given.
 */
export function parseStatusJson(
  json: string,
  show: string,
  minor: number,
  peerNodeId?: number,
  events?: string,
): DiskStatus {
  const resource = resourceOf(json);
  const device = resource.devices.find((d) => d.minor === minor);
  if (device === undefined) throw new DrbdParseError(`${resource.name}: no device with minor ${minor}`);
  const { connection, device: peerDevice } = peerOf(resource, device.volume, peerNodeId);
  const connectionState = connection?.['connection-state'] ?? 'StandAlone';
  const replication = peerDevice?.['replication-state'] ?? 'Off';
  const syncing = isResyncing(connectionState, replication);
  return DiskStatusSchema.parse({
    resource: resource.name,
    minor,
    role: resource.role,
    peerRole: connection?.['peer-role'] ?? 'Unknown',
    connection: connectionState,
    replication,
    diskState: device['disk-state'],
    peerDiskState: peerDevice?.['peer-disk-state'] ?? 'DUnknown',
    allowTwoPrimaries: twoPrimariesAllowed(show, peerNodeId),
    syncPercent: syncing ? Math.min(100, peerDevice?.['percent-resync-done'] ?? 0) : null,
    outOfSyncKiB: peerDevice?.['out-of-sync'] ?? 0,
    quorum: !quorumConfigured(show) ? 'off' : device.quorum === false ? 'lost' : 'held',
    // show prints only what differs from the default, and auto-promote's default is yes.
    autoPromote: !/^\s*auto-promote\s+no;/m.test(show),
    mayPromote: events === undefined ? null : mayPromoteOf(events),
  });
}

/** Whether a resync is pending or running on any volume, and how far the slowest one is. */
export function parseSyncStatusJson(
  json: string,
  peerNodeId?: number,
): { syncing: boolean; percent: number | null; connection: string } {
  const resource = resourceOf(json);
  const volumes = resource.devices.map((d) => ({ local: d, ...peerOf(resource, d.volume, peerNodeId) }));
  // Between the handshake and the resync's start DRBD 9.2 shows the replication Established while a
  // side is still Outdated (seen in CI: peer Outdated, 8 KiB out of sync, right after a reconnect):
  // a resync to come, not a disk in sync.
  const behind = (disk: string | undefined) => disk === 'Outdated' || disk === 'Inconsistent';
  const pending = volumes.filter(({ local, connection, device }) => {
    const state = connection?.['connection-state'] ?? 'StandAlone';
    const replication = device?.['replication-state'] ?? 'Off';
    return (
      isResyncing(state, replication) ||
      (state === 'Connected' &&
        replication === 'Established' &&
        (behind(local['disk-state']) || behind(device?.['peer-disk-state'])))
    );
  });
  // The least connected of the disks' connections to the peer (one connection per peer in DRBD 9).
  const states = volumes.map(({ connection }) => connection?.['connection-state'] ?? 'StandAlone');
  return {
    connection: states.find((s) => s !== 'Connected') ?? 'Connected',
    syncing: pending.length > 0,
    percent:
      pending.length === 0
        ? null
        : Math.min(100, ...pending.map(({ device }) => device?.['percent-resync-done'] ?? 0)),
  };
}

/**
 * Whether this node would stop an instance when it loses DRBD quorum on `resource`: DRBD runs its
 * usermode helper on quorum loss, and only drbdadm (the default) runs the quorum-lost handler its
 * configuration names for the resource (Ganeti's /bin/true runs none). Prints the helper, then the
 * handler if one is configured; always exit 0 (the answer is in the output).
 */
export const selfFenceRead = (resource: string) => [
  'sh',
  '-c',
  'echo "helper $(cat /sys/module/drbd/parameters/usermode_helper 2>/dev/null)"; drbdadm dump "$1" 2>/dev/null | sed -n "s/^[[:space:]]*quorum-lost[[:space:]][[:space:]]*\\(.*\\);[[:space:]]*$/handler \\1/p"; exit 0',
  'self-fence',
  resource,
];

/** The answer to selfFenceRead: a helper that is drbdadm, and a quorum-lost handler configured. */
export function parseSelfFence(output: string): boolean {
  const helper = /^helper (.*)$/m.exec(output)?.[1]?.trim() ?? '';
  return /(^|\/)drbdadm$/.test(helper) && /^handler \S/m.test(output);
}
