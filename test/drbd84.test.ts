import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DrbdLink, drbd84, parseEvents2 } from '../src/drivers/drbd84.js';
import { shellLine, shellQuote } from '../src/drivers/shell.js';

const link: DrbdLink = {
  resource: 'web1-disk0',
  minor: 0,
  local: { address: '10.99.1.1', port: 7789 },
  peer: { address: '10.99.1.2', port: 7789 },
};

const DRBDADM84 = '/lib/drbd/drbdadm-84';
const available = existsSync(DRBDADM84) && existsSync('/usr/bin/unshare');
if (!available && process.env.CI === 'true') {
  throw new Error(
    `drbd-utils is missing (${DRBDADM84}): .ci/run installs it; this real-component test must not skip in CI`,
  );
}

/** What drbdadm-84 itself would run on node-a for the same resource (a dry run: no kernel needed). */
function dryRun(args: string, twoPrimaries: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'drbd-'));
  writeFileSync(
    join(dir, 'drbd.conf'),
    `resource web1-disk0 {
  net { protocol C; after-sb-0pri discard-zero-changes; after-sb-1pri consensus;${twoPrimaries ? ' allow-two-primaries yes;' : ''} }
  on node-a { device /dev/drbd0; disk /dev/vg/web1-disk0; address 10.99.1.1:7789; meta-disk internal; }
  on node-b { device /dev/drbd0; disk /dev/vg/web1-disk0; address 10.99.1.2:7789; meta-disk internal; }
}
`,
  );
  // drbdadm picks its "on" section by host name: give it node-a's, in a UTS namespace of its own.
  const out = execFileSync(
    'unshare',
    ['--uts', 'sh', '-c', `hostname node-a && ${DRBDADM84} -c ${dir}/drbd.conf -d ${args}`],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  return out.split('\n').find((l) => l.startsWith('/lib/drbd/')) ?? '';
}

describe.skipIf(!available)(
  'DRBD 8.4 command lines are the ones drbdadm-84 runs (real drbd-utils, dry run)',
  () => {
    it.each([
      ['primary web1-disk0', false, drbd84.primary(link)],
      ['secondary web1-disk0', false, drbd84.secondary(link)],
      ['disconnect web1-disk0', false, drbd84.disconnect(link)],
      ['connect web1-disk0', false, drbd84.connect(link, false)],
      ['connect web1-disk0', true, drbd84.connect(link, true)],
    ])('drbdadm %s (two primaries %s)', (args, twoPrimaries, argv) => {
      expect(shellLine(argv)).toBe(dryRun(args, twoPrimaries));
    });
  },
);

describe('shell quoting', () => {
  it('leaves plain arguments alone and quotes anything else', () => {
    expect(shellLine(['drbdsetup', 'primary', '0'])).toBe('drbdsetup primary 0');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's; reboot")).toBe("'it'\\''s; reboot'");
    expect(shellQuote('$(id)')).toBe("'$(id)'");
  });
});

// The events2 lines below follow the format documented in ../shared/reference/peers-drbd-qmp.md §3.3
// (8.4 utils print DRBD 9-style lines); they are not yet recordings from a real 8.4 kernel.
describe('events2 parsing', () => {
  const show = (two: boolean) =>
    `resource web1-disk0 {\n    net {\n        allow-two-primaries ${two ? 'yes' : 'no'};\n    }\n}\n`;
  it('a connected, in-sync primary', () => {
    const out = [
      'exists resource name:web1-disk0 role:Primary suspended:no',
      'exists connection name:web1-disk0 peer-node-id:1 conn-name:node-b connection:Connected role:Secondary',
      'exists device name:web1-disk0 volume:0 minor:0 disk:UpToDate client:no',
      'exists peer-device name:web1-disk0 peer-node-id:1 conn-name:node-b volume:0 replication:Established peer-disk:UpToDate resync-suspended:no received:0 sent:24 out-of-sync:0',
      'exists -',
    ].join('\n');
    expect(parseEvents2(out, show(false), 0)).toEqual({
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
  });

  it('a resync target, with its progress', () => {
    const out = [
      'exists resource name:web1-disk0 role:Secondary suspended:no',
      'exists connection name:web1-disk0 peer-node-id:0 conn-name:node-a connection:Connected role:Primary',
      'exists device name:web1-disk0 volume:0 minor:0 disk:Inconsistent',
      'exists peer-device name:web1-disk0 peer-node-id:0 conn-name:node-a volume:0 replication:SyncTarget peer-disk:UpToDate out-of-sync:65536 done:42.50',
      'exists -',
    ].join('\n');
    expect(parseEvents2(out, show(true), 0)).toMatchObject({
      replication: 'SyncTarget',
      diskState: 'Inconsistent',
      syncPercent: 42.5,
      outOfSyncKiB: 65536,
      allowTwoPrimaries: true,
    });
  });

  it('a standalone node, and output that is not events2', () => {
    const out =
      'exists resource name:web1-disk0 role:Primary suspended:no\nexists device name:web1-disk0 volume:0 minor:0 disk:UpToDate\nexists -\n';
    expect(parseEvents2(out, show(false), 0)).toMatchObject({
      connection: 'StandAlone',
      peerDiskState: 'DUnknown',
      peerRole: 'Unknown',
    });
    expect(() => parseEvents2('modprobe: FATAL: Module drbd not found', '', 0)).toThrow(
      /no resource or device in drbdsetup events2 output/,
    );
  });
});
