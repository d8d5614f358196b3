import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { plannedCommands } from '../src/backend/plan.js';
import { ClusterFile } from '../src/cluster/index.js';
import { drbd9, parseStatusJson, parseSyncStatusJson } from '../src/drivers/drbd9.js';
import type { DrbdLink } from '../src/drivers/drbd84.js';
import { shellLine } from '../src/ssh/shell.js';
import { tempDir } from './tmp.js';

const link: DrbdLink = {
  resource: 'web1-disk0',
  minor: 0,
  local: { address: '10.99.1.1', port: 7789 },
  peer: { address: '10.99.1.2', port: 7789 },
  peerNodeId: 1,
};

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

describe('DRBD 9 status --json (written from the documented schema, test/fixtures/drbd9)', () => {
  const fixture = (name: string) =>
    readFileSync(fileURLToPath(new URL(`fixtures/drbd9/${name}`, import.meta.url)), 'utf8');
  const show = (two: boolean) =>
    `resource web1-disk0 {\n    connection {\n        net {\n            allow-two-primaries\t${two ? 'yes' : 'no'};\n        }\n    }\n}\n`;

  it('a connected, in-sync primary', () => {
    expect(parseStatusJson(fixture('primary-connected.json'), show(false), 0, 1)).toEqual({
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
    });
    expect(parseSyncStatusJson(fixture('primary-connected.json'), 1)).toEqual({
      syncing: false,
      percent: null,
    });
  });

  it('a resync target, with its progress', () => {
    expect(parseStatusJson(fixture('secondary-synctarget.json'), show(true), 0, 0)).toMatchObject({
      role: 'Secondary',
      peerRole: 'Primary',
      replication: 'SyncTarget',
      diskState: 'Inconsistent',
      allowTwoPrimaries: true,
      syncPercent: 41.66,
      outOfSyncKiB: 28672,
    });
    expect(parseSyncStatusJson(fixture('secondary-synctarget.json'), 0)).toEqual({
      syncing: true,
      percent: 41.66,
    });
  });

  it('reads the connection to the peer by node-id, not a diskless tiebreaker', () => {
    expect(parseStatusJson(fixture('primary-standalone-tiebreaker.json'), show(false), 0, 1)).toMatchObject({
      connection: 'StandAlone',
      peerRole: 'Unknown',
      replication: 'Off',
      peerDiskState: 'DUnknown',
      outOfSyncKiB: 40960,
    });
  });

  it('refuses what is not status --json', () => {
    expect(() => parseStatusJson('status: unrecognized option', '', 0, 1)).toThrow(
      /not drbdsetup status --json output/,
    );
    expect(() => parseStatusJson('[]', '', 0, 1)).toThrow(/no resource/);
  });
});

describe('a cluster file with DRBD 9 nodes', () => {
  const file = (nodeIds?: Record<string, number>) => ({
    version: 1,
    nodes: ['node-a', 'node-b'].map((name, i) => ({
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

  it('plans DRBD 9 commands: options then connect, status as JSON', () => {
    const cluster = ClusterFile.parse(file({ 'node-a': 0, 'node-b': 1 }));
    const attach = plannedCommands(cluster, 'c.yaml', 'attachNet', {
      instance: 'web1',
      nodes: ['node-a', 'node-b'],
      multimaster: true,
      timeoutMs: 30_000,
    }).map((c) => `${c.node}$ ${c.text}`);
    expect(attach).toEqual([
      'node-a$ /usr/sbin/drbdsetup net-options web1-disk0 1 --protocol=C --after-sb-0pri=discard-zero-changes --after-sb-1pri=consensus --allow-two-primaries=yes',
      'node-a$ /usr/sbin/drbdsetup connect web1-disk0 1',
      'node-b$ /usr/sbin/drbdsetup net-options web1-disk0 0 --protocol=C --after-sb-0pri=discard-zero-changes --after-sb-1pri=consensus --allow-two-primaries=yes',
      'node-b$ /usr/sbin/drbdsetup connect web1-disk0 0',
      'node-a$ /usr/sbin/drbdsetup wait-connect-resource web1-disk0 --wfc-timeout=5',
      'node-b$ /usr/sbin/drbdsetup wait-connect-resource web1-disk0 --wfc-timeout=5',
      'node-a$ /usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      'node-a$ /usr/sbin/drbdsetup show web1-disk0',
      'node-b$ /usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      'node-b$ /usr/sbin/drbdsetup show web1-disk0',
    ]);
    const status = plannedCommands(cluster, 'c.yaml', 'diskStatus', {
      instance: 'web1',
      nodes: ['node-a'],
      timeoutMs: 5_000,
    }).map((c) => c.text);
    expect(status).toEqual([
      '/usr/sbin/drbdsetup status web1-disk0 --json --statistics',
      '/usr/sbin/drbdsetup show web1-disk0',
    ]);
  });
});
