import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { plannedCommands } from '../src/backend/plan.js';
import { ClusterFile, clusterConfigEffects, instanceConfig, loadCluster } from '../src/cluster/index.js';
import { drbdDrivers } from '../src/drivers/drbd.js';
import {
  drbd9,
  NEW_COPY_MAX_PEERS,
  parseSelfFence,
  parseStatusJson,
  parseSyncStatusJson,
  resourceOptionsOf,
  selfFenceRead,
  twoPrimariesAllowed,
} from '../src/drivers/drbd9.js';
import { type DrbdLink, NET_POLICIES } from '../src/drivers/drbd84.js';
import { drbdFamilyProblem, parseNodeInfo } from '../src/drivers/node.js';
import { createSimCluster, runMigration } from '../src/index.js';
import { shellLine } from '../src/ssh/shell.js';
import { tempDir } from './tmp.js';

const link: DrbdLink = {
  resource: 'web1-disk0',
  minor: 0,
  local: { address: '10.99.1.1', port: 7789 },
  peer: { address: '10.99.1.2', port: 7789 },
  peerNodeId: 1,
};

/** A DRBD 9 output recorded on the VM testbed (test/fixtures/drbd9). */
const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`fixtures/drbd9/${name}`, import.meta.url)), 'utf8');

const DRBDADM = '/usr/sbin/drbdadm';
const available = existsSync(DRBDADM) && existsSync('/usr/bin/unshare');
if (!available && process.env.CI === 'true') {
  throw new Error(
    `drbd-utils is missing (${DRBDADM}): .ci/run installs it; this real-component test must not skip in CI`,
  );
}

/**
 * What drbd-utils 9's drbdadm itself would run on node-a (a dry run; with no DRBD kernel loaded it
 * speaks DRBD 9), as sorted words: drbdadm orders the options its own way and names the connection
 * (--_name), which the driver leaves as configured.
 */
function dryRun(args: string): string[] {
  const dir = tempDir('drbd9-');
  writeFileSync(
    join(dir, 'drbd.conf'),
    `resource web1-disk0 {
  net { protocol C; after-sb-0pri discard-zero-changes; after-sb-1pri consensus; }
  on node-a { node-id 0; device /dev/drbd0; disk /dev/vg/web1-disk0; address 10.99.1.1:7789; meta-disk internal; }
  on node-b { node-id 1; device /dev/drbd0; disk /dev/vg/web1-disk0; address 10.99.1.2:7789; meta-disk internal; }
}
`,
  );
  const out = execFileSync(
    'unshare',
    ['--uts', 'sh', '-c', `hostname node-a && ${DRBDADM} -c ${dir}/drbd.conf -d ${args}`],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const line = out.split('\n').find((l) => l.startsWith('/usr/sbin/drbdsetup ')) ?? '';
  return line
    .split(' ')
    .filter((w) => !w.startsWith('--_name='))
    .sort();
}
const words = (argv: string[]) => shellLine(argv).split(' ').sort();

describe.skipIf(!available)(
  'DRBD 9 command lines are the ones drbdadm 9 runs (real drbd-utils, dry run)',
  () => {
    it.each([
      ['primary web1-disk0', drbd9.primary(link)],
      ['secondary web1-disk0', drbd9.secondary(link)],
      ['disconnect web1-disk0', drbd9.disconnect(link)],
      ['connect web1-disk0', drbd9.connect(link)],
      ['net-options --allow-two-primaries=yes web1-disk0', drbd9.netOptions(link, true)],
      ['net-options --allow-two-primaries=no web1-disk0', drbd9.netOptions(link, false)],
    ])('drbdadm %s', (args, argv) => {
      expect(words(argv)).toEqual(dryRun(args));
    });

    it('waits as drbdadm does, bounded', () => {
      expect(words(drbd9.waitConnect(link, 30))).toEqual(
        [...dryRun('wait-connect web1-disk0'), '--wfc-timeout=30'].sort(),
      );
      expect(words(drbd9.waitSync(link, 30))).toEqual(
        [...dryRun('wait-sync web1-disk0'), '--wfc-timeout=30'].sort(),
      );
    });
  },
);

/**
 * What drbdadm 9 runs on HOST for a three-node resource on LVM with external metadata, the way a
 * replace's new copy is laid out (node-c joining node-a), as each line's sorted words.
 */
function dryRunSpare(
  host: string,
  args: string,
  metaDisk = '/dev/xenvg/web1-disk0_meta',
  options = 'auto-promote no;',
): string[][] {
  const dir = tempDir('drbd9-');
  const volume = (n: number) =>
    `volume 0 { device minor 0; disk /dev/xenvg/web1-disk0_data; meta-disk ${metaDisk}; } node-id ${n};`;
  writeFileSync(
    join(dir, 'drbd.conf'),
    `resource web1-disk0 {
  options { ${options} }
  net { protocol C; after-sb-0pri discard-zero-changes; after-sb-1pri consensus; }
  disk { c-plan-ahead 0; resync-rate 100M; }
  on node-a { ${volume(0)} }
  on node-c { ${volume(2)} }
  connection { host node-a address ipv4 10.99.0.1:7789; host node-c address ipv4 10.99.0.3:7789; }
}
`,
  );
  const out = execFileSync(
    'unshare',
    ['--uts', 'sh', '-c', `hostname ${host} && ${DRBDADM} -c ${dir}/drbd.conf -d ${args}`],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  return out
    .split('\n')
    .filter((l) => /^(\S*\/)?(drbdsetup|drbdmeta) /.test(l))
    .map((l) =>
      l
        .replace(/^\S*\/(drbdsetup|drbdmeta) /, '$1 ')
        .split(' ')
        .filter((w) => !w.startsWith('--_name='))
        .sort(),
    );
}
const spareWords = (argv: string[]) =>
  shellLine(argv)
    .replace(/^\S*\/(drbdsetup|drbdmeta) /, '$1 ')
    .split(' ')
    .filter((w) => !w.startsWith('--_name='))
    .sort();

describe.skipIf(!available)(
  'DRBD 9 make-before-break: a new copy and its peer as drbdadm 9 makes them (real drbd-utils, dry run)',
  () => {
    const onC: DrbdLink = {
      resource: 'web1-disk0',
      minor: 0,
      local: { address: '10.99.0.3', port: 7789 },
      peer: { address: '10.99.0.1', port: 7789 },
      peerNodeId: 0,
      localNodeId: 2,
      peerName: 'node-a',
    };
    const onA: DrbdLink = {
      ...onC,
      local: onC.peer,
      peer: onC.local,
      peerNodeId: 2,
      localNodeId: 0,
      peerName: 'node-c',
    };
    const data = '/dev/xenvg/web1-disk0_data';
    const meta = '/dev/xenvg/web1-disk0_meta';
    const driver = drbdDrivers['9'];

    it('makes the new copy as drbdadm create-md and up do, with room for further peers', () => {
      const [createMd] = dryRunSpare(
        'node-c',
        `create-md --force --max-peers=${NEW_COPY_MAX_PEERS} web1-disk0`,
      );
      const up = dryRunSpare('node-c', 'up web1-disk0');
      const has = (words: string[]) => up.some((l) => JSON.stringify(l) === JSON.stringify(words));
      const [md, resource, minor, attach] = driver.createDevice(onC, { data, meta }, true);
      expect(spareWords(md!)).toEqual(createMd);
      for (const argv of [resource!, minor!, attach!]) expect(has(spareWords(argv))).toBe(true);
      const again = driver.createDevice(onC, { data, meta }, false);
      expect(has(spareWords(again[2]!))).toBe(true); // apply-al before an existing copy's attach
    });

    it('makes the new resource with the primary’s options as its kernel prints them (quorum), auto-promote off', () => {
      // node-b's show on the three-node testbed (the real kernel's output), as a primary's would be.
      const options = resourceOptionsOf(fixture('quorum.show'));
      expect(options).toEqual(['--auto-promote=no', '--quorum=majority', '--on-no-quorum=io-error']);
      const up = dryRunSpare(
        'node-c',
        'up web1-disk0',
        meta,
        'auto-promote no; quorum majority; on-no-quorum io-error;',
      );
      const [, resource] = driver.createDevice(onC, { data, meta }, true, undefined, options);
      expect(spareWords(resource!)).toEqual(up.find((l) => l.includes('new-resource')));
      // A primary with auto-promote on (misconfigured) does not pass it on.
      expect(drbd9.newResource(onC, ['--auto-promote=yes', '--quorum=majority'])).toEqual([
        ...drbd9.newResource(onC).slice(0, -1),
        '--quorum=majority',
        '--auto-promote=no',
      ]);
      expect(
        resourceOptionsOf('resource "r" {\n    options {\n        quorum   $(reboot);\n    }\n'),
      ).toEqual([]);
    });

    it('with internal metadata (the cluster file’s metaDisk): create-md and attach on the data volume', () => {
      const [createMd] = dryRunSpare(
        'node-c',
        `create-md --force --max-peers=${NEW_COPY_MAX_PEERS} web1-disk0`,
        'internal',
      );
      const up = dryRunSpare('node-c', 'up web1-disk0', 'internal');
      const has = (words: string[]) => up.some((l) => JSON.stringify(l) === JSON.stringify(words));
      const [md, , , attach] = driver.createDevice(onC, { data, meta: null }, true);
      expect(spareWords(md!)).toEqual(createMd);
      expect(has(spareWords(attach!))).toBe(true);
      expect(has(spareWords(driver.createDevice(onC, { data, meta: null }, false)[2]!))).toBe(true);
    });

    it('adds the peer (new-peer, new-path, the fixed resync rate) only where show names none', () => {
      const up = dryRunSpare('node-a', 'up web1-disk0');
      const has = (words: string[]) => up.some((l) => JSON.stringify(l) === JSON.stringify(words));
      const [peer, path, rate] = driver.addPeer(onA, '', 100);
      expect(has(spareWords(path!))).toBe(true);
      expect(has(spareWords(rate!))).toBe(true);
      // new-peer: drbdadm puts the resource's net section on it; the driver Ganeti's policies.
      expect(spareWords(peer!)).toEqual(
        [
          ...up.find((l) => l.includes('new-peer'))!.filter((w) => !w.startsWith('--')),
          ...NET_POLICIES,
        ].sort(),
      );
      expect(driver.addPeer(onA, 'connection {\n  _peer_node_id 2;\n', 100)).toEqual([]);
    });

    it('removes a peer as drbdadm del-peer and forget-peer do, del-peer only where it is one', () => {
      const [del, forget] = driver.removePeer(onA, '    _peer_node_id 2;');
      expect(spareWords(del!)).toEqual(dryRunSpare('node-a', 'del-peer web1-disk0:node-c')[0]);
      expect(spareWords(forget!)).toEqual(dryRunSpare('node-a', 'forget-peer web1-disk0:node-c')[0]);
      expect(driver.removePeer(onA, '').map(spareWords)).toEqual([spareWords(forget!)]);
    });
  },
);

describe('DRBD 9 status --json (recorded from DRBD 9.2.16 on the VM testbed, test/fixtures/drbd9)', () => {
  const single = fixture('single-master.show');
  const dual = fixture('dual-master.show');

  it('disconnects a peer only where the node has a connection to it (the kernel refuses an unknown one)', () => {
    // node-b's own show with three diskful peers: node-a (0), node-c (2) and the tiebreaker node-d (3).
    const show = fixture('three-diskful-window-secondary.show');
    const towards = (peerNodeId: number) => ({ ...link, peerNodeId });
    expect(drbdDrivers['9'].disconnectPeer(towards(0), show)).toEqual([drbd9.disconnect(towards(0))]);
    expect(drbdDrivers['9'].disconnectPeer(towards(1), show)).toEqual([]);
    expect(drbdDrivers['8.4'].disconnectPeer(link, '')).toHaveLength(1);
  });

  it('a connected, in-sync primary and its secondary', () => {
    expect(parseStatusJson(fixture('primary-connected.json'), single, 0, 1)).toEqual({
      resource: 'web1-disk0',
      minor: 0,
      role: 'Primary',
      peerRole: 'Secondary',
      connection: 'Connected',
      replication: 'Established',
      diskState: 'UpToDate',
      peerDiskState: 'UpToDate',
      allowTwoPrimaries: false,
      syncPercent: null,
      outOfSyncKiB: 0,
      quorum: 'off',
      mayPromote: null,
      autoPromote: false,
      quorumLostHandler: null,
    });
    expect(parseSyncStatusJson(fixture('primary-connected.json'), 1)).toEqual({
      syncing: false,
      percent: null,
      connection: 'Connected',
    });
    // Right after a reconnect, before the resync starts: Established, the peer still Outdated.
    const before = JSON.parse(fixture('primary-connected.json'));
    Object.assign(before[0].connections[0].peer_devices[0], {
      'peer-disk-state': 'Outdated',
      'out-of-sync': 8,
    });
    expect(parseSyncStatusJson(JSON.stringify(before), 1)).toMatchObject({ syncing: true, percent: 0 });
    const behindHere = JSON.parse(fixture('primary-connected.json'));
    behindHere[0].devices[0]['disk-state'] = 'Outdated';
    expect(parseSyncStatusJson(JSON.stringify(behindHere), 1).syncing).toBe(true);
    expect(parseStatusJson(fixture('secondary-connected.json'), single, 0, 0)).toMatchObject({
      role: 'Secondary',
      peerRole: 'Primary',
      diskState: 'UpToDate',
      peerDiskState: 'UpToDate',
    });
  });

  it('both primaries inside the window, two primaries allowed on the connection', () => {
    expect(parseStatusJson(fixture('dual-primary.json'), dual, 0, 0)).toMatchObject({
      role: 'Primary',
      peerRole: 'Primary',
      connection: 'Connected',
      allowTwoPrimaries: true,
    });
  });

  it('a disconnected primary, and its secondary Outdated while it tries to connect', () => {
    expect(parseStatusJson(fixture('primary-standalone.json'), single, 0, 1)).toMatchObject({
      connection: 'StandAlone',
      peerRole: 'Unknown',
      replication: 'Off',
      diskState: 'UpToDate',
      peerDiskState: 'DUnknown',
      syncPercent: null,
    });
    // DRBD 9 outdates a Secondary that loses its Primary peer (8.4 keeps it UpToDate).
    expect(parseStatusJson(fixture('secondary-connecting.json'), single, 0, 0)).toMatchObject({
      connection: 'Connecting',
      diskState: 'Outdated',
      peerDiskState: 'DUnknown',
    });
    // Not syncing, and not connected either: the backend's wait refuses it (not a disk in sync).
    expect(parseSyncStatusJson(fixture('secondary-connecting.json'), 0)).toEqual({
      syncing: false,
      percent: null,
      connection: 'Connecting',
    });
  });

  it('a resync on both sides, with its progress (percent-resync-done, not percent-in-sync)', () => {
    expect(parseStatusJson(fixture('secondary-synctarget.json'), single, 0, 0)).toMatchObject({
      role: 'Secondary',
      peerRole: 'Primary',
      replication: 'SyncTarget',
      diskState: 'Inconsistent',
      syncPercent: 0,
      outOfSyncKiB: 61440,
    });
    expect(parseSyncStatusJson(fixture('secondary-synctarget.json'), 0)).toMatchObject({
      syncing: true,
      percent: 0,
    });
    expect(parseStatusJson(fixture('primary-syncsource.json'), single, 0, 1)).toMatchObject({
      replication: 'SyncSource',
      peerDiskState: 'Inconsistent',
      syncPercent: 58.33,
      outOfSyncKiB: 25600,
    });
    expect(parseSyncStatusJson(fixture('primary-syncsource.json'), 1)).toMatchObject({
      syncing: true,
      percent: 58.33,
    });
  });

  it('quorum, from the kernel: held by the survivor of a cut (may promote), lost by the cut-off node', () => {
    const withQuorum = fixture('quorum.show');
    // node-b: node-a cut off from it and from the tiebreaker.
    expect(
      parseStatusJson(
        fixture('quorum-held-peer-lost.json'),
        withQuorum,
        0,
        0,
        fixture('quorum-held-peer-lost.events2'),
      ),
    ).toMatchObject({
      role: 'Secondary',
      connection: 'Connecting',
      diskState: 'UpToDate',
      quorum: 'held',
      mayPromote: true,
    });
    // node-a itself: Primary, no quorum, may not promote.
    expect(
      parseStatusJson(fixture('quorum-lost.json'), withQuorum, 0, 1, fixture('quorum-lost.events2')),
    ).toMatchObject({ role: 'Primary', quorum: 'lost', mayPromote: false });
    // The device's quorum flag is true where none is configured: that is no quorum.
    expect(parseStatusJson(fixture('primary-connected.json'), single, 0, 1)).toMatchObject({
      quorum: 'off',
      mayPromote: null,
    });
  });

  it('reads the connection to the peer by node-id, not a diskless tiebreaker (hand-written)', () => {
    expect(
      parseStatusJson(fixture('handwritten-primary-standalone-tiebreaker.json'), single, 0, 1),
    ).toMatchObject({
      connection: 'StandAlone',
      peerRole: 'Unknown',
      replication: 'Off',
      peerDiskState: 'DUnknown',
      outOfSyncKiB: 40960,
    });
  });

  it('three diskful peers (node-b the third copy, node-d the tiebreaker): each look is by the peer’s node-id, and two primaries are allowed on the migrating connection only', () => {
    const window = fixture('three-diskful-window-secondary.json');
    const windowShow = fixture('three-diskful-window-secondary.show');
    // node-b, inside node-c's migration to node-a: both Primary, neither of its connections allows two.
    for (const peer of [0, 2])
      expect(parseStatusJson(window, windowShow, 0, peer)).toMatchObject({
        role: 'Secondary',
        peerRole: 'Primary',
        connection: 'Connected',
        replication: 'Established',
        diskState: 'UpToDate',
        peerDiskState: 'UpToDate',
        allowTwoPrimaries: false,
        quorum: 'held',
      });
    expect(parseStatusJson(window, windowShow, 0, 3)).toMatchObject({
      peerRole: 'Secondary',
      peerDiskState: 'Diskless',
    });
    // Without a node-id there is no answer among three connections: never another node's taken.
    expect(parseStatusJson(window, windowShow, 0)).toMatchObject({
      connection: 'StandAlone',
      peerRole: 'Unknown',
      peerDiskState: 'DUnknown',
    });
    // node-c, the source: two primaries towards node-a (0) alone.
    const source = fixture('three-diskful-window-source.show');
    expect([0, 1, 3].map((peer) => twoPrimariesAllowed(source, peer))).toEqual([true, false, false]);
    // node-a, the target, Primary beside node-c; node-b a connected UpToDate copy to it.
    expect(parseStatusJson(fixture('three-diskful-window-target.json'), single, 0, 1)).toMatchObject({
      role: 'Primary',
      peerRole: 'Secondary',
      connection: 'Connected',
      peerDiskState: 'UpToDate',
    });
    expect(parseStatusJson(fixture('three-diskful-window-target.json'), single, 0, 2)).toMatchObject({
      role: 'Primary',
      peerRole: 'Primary',
    });
    // Before the migration: node-b in sync with both copies, no resync pending towards either.
    for (const peer of [0, 2])
      expect(parseSyncStatusJson(fixture('three-diskful-secondary.json'), peer)).toEqual({
        syncing: false,
        percent: null,
        connection: 'Connected',
      });
  });

  it('refuses what is not status --json (what drbdsetup-84 prints when the kernel is 8.4)', () => {
    expect(() => parseStatusJson("status: unrecognized option '--json'", '', 0, 1)).toThrow(
      /not drbdsetup status --json output/,
    );
    expect(() => parseStatusJson('[]', '', 0, 1)).toThrow(/no resource/);
  });
});

describe('a cluster file with DRBD 9 nodes', () => {
  const file = (nodeIds?: Record<string, number>) => ({
    version: 1,
    nodes: ['node-a', 'node-b', 'node-c'].map((name, i) => ({
      name,
      address: `10.0.0.${i + 1}`,
      hostKey: `SHA256:${'A'.repeat(43)}`,
      replicationAddress: `10.99.1.${i + 1}`,
      drbd: '9',
    })),
    instances: [
      {
        name: 'web1',
        primary: 'node-a',
        secondary: 'node-b',
        memoryMiB: 512,
        hypervisor: {
          kind: 'qemu',
          binary: '/usr/bin/qemu-system-x86_64',
          args: [],
          qmpSocket: '/run/web1.qmp',
        },
        disks: [{ resource: 'web1-disk0', minor: 0, port: 7789, ...(nodeIds ? { nodeIds } : {}) }],
      },
    ],
  });

  it('needs each disk’s node-ids', () => {
    const r = ClusterFile.safeParse(file());
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(
      /runs DRBD 9: nodeIds must give the node-id of node-a and node-b/,
    );
  });

  it('refuses an instance on a mixed pair: 8.4 and 9.2 cannot connect', () => {
    const f = file({ 'node-a': 0, 'node-b': 1 });
    const mixed = { ...f, nodes: f.nodes.map((n) => (n.name === 'node-b' ? { ...n, drbd: '8.4' } : n)) };
    expect(ClusterFile.safeParse(mixed).error?.issues[0]?.message).toMatch(
      /node-a and node-b run different DRBD \(8\.4 and 9\): their resources cannot connect \(DRBD 9\.2 speaks protocols 118-123, 8\.4 86-101\)/,
    );
  });

  const messages = (f: unknown) => ClusterFile.safeParse(f).error?.issues.map((i) => i.message) ?? [];
  const withInstance = (extra: object, drbd = '9', ids: Record<string, number> = ALL_IDS) => {
    const f = file(ids);
    return {
      ...f,
      nodes: f.nodes.map((n) => ({ ...n, drbd })),
      instances: f.instances.map((i) => ({ ...i, ...extra })),
    };
  };
  const ALL_IDS = { 'node-a': 0, 'node-b': 1, 'node-c': 2 };

  it('plans the self-fence read before a new copy is made, where the instance has a bound', () => {
    const planned = (extra: object) =>
      plannedCommands(ClusterFile.parse(withInstance(extra)), 'c.yaml', 'createDisks', {
        instance: 'web1',
        node: 'node-b',
        timeoutMs: 5_000,
      }).map((c) => c.text);
    const fence = shellLine(selfFenceRead('web1-disk0'));
    expect(planned({ selfFenceMs: 30_000, tiebreaker: 'node-c' })).toContain(fence);
    expect(planned({ tiebreaker: 'node-c' })).not.toContain(fence);
  });

  it('withdraws the self-fence bound in the commit’s own write when asked (a failover onto a node without the handler)', async () => {
    const path = join(tempDir('drbd9-commit-'), 'cluster.json');
    writeFileSync(path, JSON.stringify(withInstance({ selfFenceMs: 30_000, tiebreaker: 'node-c' })));
    const signal = new AbortController().signal;
    await clusterConfigEffects(path).setPrimaryNode(
      { instance: 'web1', node: 'node-b', timeoutMs: 1000, withdrawSelfFence: true },
      signal,
    );
    const after = (await loadCluster(path)).instances[0]!;
    expect(after).toMatchObject({ primary: 'node-b', secondary: 'node-a', tiebreaker: 'node-c' });
    expect(after.selfFenceMs).toBeUndefined();
  });

  it('takes a self-fence bound on DRBD 9 with a tiebreaker only: quorum is DRBD 9’s, and two votes prove nothing', () => {
    const parsed = ClusterFile.parse(withInstance({ selfFenceMs: 30_000, tiebreaker: 'node-c' }));
    expect(instanceConfig(parsed.instances[0]!, '9')).toMatchObject({
      selfFenceMs: 30_000,
      tiebreaker: 'node-c',
    });
    expect(messages(withInstance({ selfFenceMs: 30_000 }))).toEqual([
      "needs a tiebreaker: with two votes, node-a and node-b each lose quorum without the other, so quorum never proves a silent node cannot write; name the resource's diskless third node in tiebreaker",
    ]);
    expect(messages(withInstance({ selfFenceMs: 30_000 }, '8.4'))).toEqual([
      `needs DRBD 9 on node-a and node-b (quorum is DRBD 9's): set their "drbd" to "9", or leave selfFenceMs out`,
    ]);
  });

  it('names a diskless tiebreaker: a DRBD 9 node of the file outside the pair, its node-id on every disk', () => {
    for (const node of ['node-a', 'node-b', 'node-z'])
      expect(messages(withInstance({ tiebreaker: node }))).toContain(
        `${node} must be a node of this file other than the primary, the secondary and a former secondary (a tiebreaker holds no copy)`,
      );
    expect(messages(withInstance({ tiebreaker: 'node-c' }, '9', { 'node-a': 0, 'node-b': 1 }))).toEqual([
      'nodeIds must give the node-id of the tiebreaker node-c too (a new secondary must not take its id)',
    ]);
    const f = withInstance({ tiebreaker: 'node-c' });
    const old = { ...f, nodes: f.nodes.map((n) => (n.name === 'node-c' ? { ...n, drbd: '8.4' } : n)) };
    expect(messages(old)).toEqual([
      'needs DRBD 9 on node-c, node-a and node-b (a diskless tiebreaker is DRBD 9\'s, 9.0.18 or later): set their "drbd" to "9", or leave tiebreaker out',
    ]);
  });

  it('plans DRBD 9 commands: options then connect, status as JSON', () => {
    const cluster = ClusterFile.parse(file({ 'node-a': 0, 'node-b': 1 }));
    // With each status: whether the node would stop the instance on losing quorum.
    const fence = shellLine(selfFenceRead('web1-disk0'));
    const attach = plannedCommands(cluster, 'c.yaml', 'attachNet', {
      instance: 'web1',
      nodes: ['node-a', 'node-b'],
      multimaster: true,
      timeoutMs: 30_000,
    }).map((c) => `${c.node}$ ${c.text}`);
    expect(attach).toEqual([
      // Whether each side has the other as a peer (a new secondary would be made one here).
      'node-a$ /usr/sbin/drbdsetup show web1-disk0',
      'node-b$ /usr/sbin/drbdsetup show web1-disk0',
      // Each side's state: DRBD 9 connects a StandAlone connection only.
      'node-a$ /usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      'node-a$ /usr/sbin/drbdsetup show web1-disk0',
      'node-a$ /usr/sbin/drbdsetup events2 --now web1-disk0',
      `node-a$ ${fence}`,
      'node-b$ /usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      'node-b$ /usr/sbin/drbdsetup show web1-disk0',
      'node-b$ /usr/sbin/drbdsetup events2 --now web1-disk0',
      `node-b$ ${fence}`,
      'node-a$ /usr/sbin/drbdsetup net-options web1-disk0 1 --protocol=C --after-sb-0pri=discard-zero-changes --after-sb-1pri=consensus --allow-two-primaries=yes',
      'node-a$ /usr/sbin/drbdsetup connect web1-disk0 1',
      'node-b$ /usr/sbin/drbdsetup net-options web1-disk0 0 --protocol=C --after-sb-0pri=discard-zero-changes --after-sb-1pri=consensus --allow-two-primaries=yes',
      'node-b$ /usr/sbin/drbdsetup connect web1-disk0 0',
      'node-a$ /usr/sbin/drbdsetup wait-connect-resource web1-disk0 --wfc-timeout=5',
      'node-b$ /usr/sbin/drbdsetup wait-connect-resource web1-disk0 --wfc-timeout=5',
      'node-a$ /usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      'node-a$ /usr/sbin/drbdsetup show web1-disk0',
      'node-a$ /usr/sbin/drbdsetup events2 --now web1-disk0',
      `node-a$ ${fence}`,
      'node-b$ /usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      'node-b$ /usr/sbin/drbdsetup show web1-disk0',
      'node-b$ /usr/sbin/drbdsetup events2 --now web1-disk0',
      `node-b$ ${fence}`,
    ]);
    const status = plannedCommands(cluster, 'c.yaml', 'diskStatus', {
      instance: 'web1',
      nodes: ['node-a'],
      timeoutMs: 5_000,
    }).map((c) => c.text);
    expect(status).toEqual([
      '/usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      '/usr/sbin/drbdsetup show web1-disk0',
      '/usr/sbin/drbdsetup events2 --now web1-disk0',
      fence,
    ]);
  });
});

describe('the loaded DRBD module against the cluster file', () => {
  // /proc/drbd's first line as each kernel printed it on the VM testbed.
  const facts = (proc: string) =>
    parseNodeInfo(
      'node-a',
      '/usr/bin/qemu-system-x86_64',
      `MemAvailable:     401234 kB\nQEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\n${proc}`,
    );

  it('reads the module family and version, none where no module is loaded', () => {
    expect(facts('version: 9.2.16 (api:2/proto:118-123)\n').drbd).toEqual({ family: '9', version: '9.2.16' });
    expect(facts('version: 8.4.11 (api:1/proto:86-101)\n').drbd).toEqual({
      family: '8.4',
      version: '8.4.11',
    });
    expect(facts('').drbd).toBeNull();
  });

  it('refuses a node whose kernel runs the other DRBD, saying what to set', () => {
    expect(drbdFamilyProblem('node-a', '9', facts('version: 8.4.11 (api:1/proto:86-101)\n'))).toBe(
      'node-a: its kernel runs DRBD 8.4.11 but the cluster file says drbd: 9; set the node\'s "drbd" to "8.4" (nothing was touched)',
    );
    expect(drbdFamilyProblem('node-a', '9', facts('version: 9.2.16 (api:2/proto:118-123)\n'))).toBeNull();
    expect(drbdFamilyProblem('node-a', '8.4', facts(''))).toBeNull();
  });
});

describe('DRBD 9 auto-promote, read from the kernel and refused by a migration', () => {
  it('is off where the resource file says so (show prints it), on where show is silent (the default)', () => {
    expect(
      parseStatusJson(fixture('primary-connected.json'), fixture('single-master.show'), 0, 1).autoPromote,
    ).toBe(false);
    const silent = fixture('single-master.show').replace(/^\s*auto-promote\s+no;\n/m, '');
    expect(parseStatusJson(fixture('primary-connected.json'), silent, 0, 1).autoPromote).toBe(true);
  });

  it('a migration refuses a disk that promotes itself when opened; nothing touched', async () => {
    const sim = createSimCluster();
    const r = sim.world.resources['web1-disk1']!;
    r.autoPromote = true;
    const before = JSON.stringify(sim.snapshot().resources);
    const out = await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /Disk 1 \(web1-disk1\) on node-b promotes itself when opened \(DRBD 9's auto-promote\).*auto-promote no/,
    );
    expect(JSON.stringify(sim.snapshot().resources)).toBe(before);
  });
});

describe('whether a node would stop the instance on losing quorum (selfFenceRead)', () => {
  it('only with drbdadm as DRBD’s usermode helper and a quorum-lost handler configured', () => {
    const handler = 'handler /usr/lib/drbd-migrate/quorum-lost\n';
    expect(parseSelfFence(`helper /sbin/drbdadm\n${handler}`)).toBe(true);
    expect(parseSelfFence(`helper drbdadm\n${handler}`)).toBe(true);
    // Ganeti's helper runs no handler; a file without one, or no module loaded, neither.
    expect(parseSelfFence(`helper /bin/true\n${handler}`)).toBe(false);
    expect(parseSelfFence('helper /sbin/drbdadm\n')).toBe(false);
    expect(parseSelfFence(`helper \n${handler}`)).toBe(false);
  });

  it.skipIf(!available)(
    'finds the handler in what drbdadm 9 dumps of the node’s file, and nothing in a file without one (real drbd-utils)',
    () => {
      const dir = tempDir('drbd9-fence-');
      const read = (handlers: string) => {
        writeFileSync(
          join(dir, 'drbd.conf'),
          `resource web1-disk0 {
  options { auto-promote no; quorum majority; on-no-quorum io-error; }
${handlers}  on node-a { node-id 0; device /dev/drbd0; disk /dev/vg/web1-disk0; address 10.99.1.1:7789; meta-disk internal; }
  on node-b { node-id 1; device /dev/drbd0; disk /dev/vg/web1-disk0; address 10.99.1.2:7789; meta-disk internal; }
}
`,
        );
        // The node's own /etc/drbd.conf, as drbdadm reads it there (a private mount of the file).
        return execFileSync(
          'unshare',
          [
            '--uts',
            '--mount',
            'sh',
            '-c',
            `hostname node-a && mount --bind ${dir}/drbd.conf /etc/drbd.conf && exec "$@"`,
            'sh',
            ...selfFenceRead('web1-disk0'),
          ],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
        );
      };
      expect(read('  handlers { quorum-lost "/usr/lib/drbd-migrate/quorum-lost"; }\n')).toMatch(
        /^handler \/usr\/lib\/drbd-migrate\/quorum-lost$/m,
      );
      expect(read('')).not.toMatch(/^handler/m);
      // No DRBD module here: the helper is unread, so the answer is no whichever the file.
      expect(parseSelfFence(read('  handlers { quorum-lost "/x"; }\n'))).toBe(
        existsSync('/sys/module/drbd/parameters/usermode_helper'),
      );
    },
  );
});
