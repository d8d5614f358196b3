import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli/commands/index.js';
import { fitToWidth, LiveView } from '../src/cli/live.js';
import { holdWorld, saveWorld } from '../src/cli/worldFile.js';
import { createWorld, loadCluster } from '../src/index.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/** Issue 10: what a new user tripped over, each with the behaviour it must have now. */

let dir: string;
let state: string;
beforeEach(() => {
  dir = tempDir();
  state = join(dir, 'state');
  process.env.DRBD_MIGRATE_STATE_DIR = state;
});

async function world() {
  const file = join(dir, 'w.json');
  await saveWorld(file, createWorld());
  return file;
}

describe('--dry-run never changes anything (item 2)', () => {
  it('with --world: plans on a copy, prints each effect and its node, leaves the file and the state dir', async () => {
    const file = await world();
    const before = readFileSync(file, 'utf8');
    const r = await cli('migrate', 'web1', '--world', file, '--dry-run');
    expect(r.code).toBe(0);
    expect(r.stdout[0]).toMatch(/dry run of the migration of web1 on a copy of .*nothing is touched/);
    expect(r.stdout).toContain('openDisks on node-b');
    expect(r.stdout).toContain('setPrimaryNode on node-b');
    expect(r.stdout.at(-1)).toBe('# planned: migrated: web1 is primary on node-b');
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(existsSync(state)).toBe(false);
  });
});

/** The example cluster on DRBD 9 with web1's third copy on node-c, and the further nodes given. */
async function threeCopyCluster(file: string, more: string[] = []) {
  const example = await loadCluster('docs/cluster.example.yaml');
  const nodes = example.nodes.map((n) => ({ ...n, drbd: '9' as const }));
  const names = ['node-c', ...more];
  writeFileSync(
    file,
    JSON.stringify({
      ...example,
      nodes: [
        ...nodes,
        ...names.map((name, i) => ({
          ...nodes[1]!,
          name,
          address: `10.99.0.${i + 3}`,
          replicationAddress: `10.99.1.${i + 3}`,
        })),
      ],
      instances: example.instances.map((i) => ({
        ...i,
        thirdCopy: 'node-c',
        disks: i.disks.map((d) => ({
          ...d,
          nodeIds: Object.fromEntries(['node-a', 'node-b', ...names].map((n, id) => [n, id])),
        })),
      })),
    }),
  );
  return readFileSync(file, 'utf8');
}

describe('--dry-run of a migration to a third copy (DRBD 9)', () => {
  it('plans the migration to the cluster file’s thirdCopy and the rotating commit, touching nothing', async () => {
    const file = join(dir, 'three.json');
    const before = await threeCopyCluster(file);
    const r = await cli('migrate', 'web1', '--cluster', file, '--dry-run', '--target', 'node-c');
    expect([r.code, r.stderr]).toEqual([0, []]);
    expect(r.stdout.join('\n')).toContain('rewrite');
    expect(r.stdout.at(-1)).toBe('# planned: migrated: web1 is primary on node-c');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
});

describe('--dry-run of a replace of a three-copy instance’s secondary (DRBD 9)', () => {
  it('plans node-d joined to the primary and the third copy before the commit, node-b removed from both after', async () => {
    const file = join(dir, 'four.json');
    const before = await threeCopyCluster(file, ['node-d']);
    const r = await cli(
      'replace-secondary',
      'web1',
      '--cluster',
      file,
      '--dry-run',
      '--new-secondary',
      'node-d',
    );
    expect([r.code, r.stderr]).toEqual([0, []]);
    const at = (line: string) => r.stdout.findIndex((l) => l.includes(line));
    const commit = at('setSecondaryNode on node-d');
    expect(at('node-c$ /usr/sbin/drbdsetup new-peer web1-disk0 3 --_name=node-d')).toBeGreaterThan(-1);
    expect(at('node-c$ /usr/sbin/drbdsetup new-peer web1-disk0 3 --_name=node-d')).toBeLessThan(commit);
    expect(at('waitSync on node-c and node-d')).toBeLessThan(commit);
    expect(at('node-c$ /usr/sbin/drbdsetup del-peer web1-disk0 1')).toBeGreaterThan(commit);
    expect(r.stdout.at(-1)).toBe('# planned: replaced: web1 is primary on node-a, secondary on node-d');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
});

describe('every exit other than 0 says why, in plain output too (item 3)', () => {
  it('a wrong --target with --cluster --dry-run', async () => {
    const r = await cli(
      'migrate',
      'web1',
      '--cluster',
      'docs/cluster.example.yaml',
      '--dry-run',
      '--target',
      'node-c',
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toEqual([
      expect.stringMatching(/^drbd-migrate: rejected: .*node-c is not the secondary node of web1 \(node-b\)/),
    ]);
  });

  it('a reverted demo', async () => {
    const r = await cli('demo', '--fast', '--fail', 'acceptInstance');
    expect(r.code).toBe(1);
    expect(r.stderr).toEqual([expect.stringMatching(/^drbd-migrate: reverted: Could not pre-migrate/)]);
  });
});

describe('flags that conflict or do nothing are refused, exit 2, one line (item 6)', () => {
  const cases: [string, string[], RegExp][] = [
    [
      '--world with --cluster',
      ['migrate', 'web1', '--world', 'w', '--cluster', 'c'],
      /give one of --cluster and --world, not both/,
    ],
    [
      '--cleanup with --target',
      ['migrate', 'web1', '--world', 'w', '--cleanup', '--target', 'node-b'],
      /--cleanup cannot go with --target: the cleanup only repairs/,
    ],
    [
      '--cleanup with --non-live',
      ['migrate', 'web1', '--world', 'w', '--cleanup', '--non-live'],
      /--cleanup cannot go with --non-live/,
    ],
    [
      '--cleanup with --no-runtime-changes',
      ['migrate', 'web1', '--world', 'w', '--cleanup', '--no-runtime-changes'],
      /--cleanup cannot go with --no-runtime-changes/,
    ],
    [
      '--cleanup with --fail',
      ['migrate', 'web1', '--world', 'w', '--cleanup', '--fail', 'closeDisks'],
      /--cleanup cannot go with --fail/,
    ],
    [
      'demo --cleanup',
      ['demo', '--cleanup'],
      /demo does not take --cleanup \(it is an option of migrate, failover, replace-secondary, replace-third-copy\)/,
    ],
    [
      'demo --cluster',
      ['demo', '--cluster', 'c.yaml'],
      /demo does not take --cluster \(it is an option of migrate, plan, check, failover, evacuate, undrain, rejoin, replace-secondary, replace-third-copy, resume, status, worker\)/,
    ],
    ['--quiet --json', ['demo', '--quiet', '--json'], /--quiet cannot go with --json/],
    [
      '--dry-run --fail',
      ['migrate', 'web1', '--world', 'w', '--dry-run', '--fail', 'closeDisks'],
      /--dry-run cannot go with --fail/,
    ],
    [
      '--fail on real nodes',
      ['migrate', 'web1', '--cluster', 'c', '--fail', 'closeDisks'],
      /--cluster cannot go with --fail: faults are injected into a simulated cluster only/,
    ],
    ['resume --dry-run', ['resume', 'web1', '--world', 'w', '--dry-run'], /resume does not take --dry-run/],
    [
      'an unknown flag',
      ['migrate', 'web1', '--wrold', 'w'],
      /^drbd-migrate: unknown option --wrold; see 'drbd-migrate migrate --help'$/,
    ],
    [
      'an unknown short flag',
      ['diagram', '-x'],
      /^drbd-migrate: unknown option -x; see 'drbd-migrate diagram --help'$/,
    ],
    ['a flag without its value', ['migrate', 'web1', '--world'], /--world needs a value \(FILE\)/],
    [
      'paths with a machine that does not exist',
      ['paths', 'evacuation'],
      /unknown machine 'evacuation': expected migration or cleanup/,
    ],
    ['an extra argument', ['demo', 'web2'], /demo: unexpected arguments: web2/],
  ];
  it.each(cases)('%s', async (_what, argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toHaveLength(1);
    expect(r.stderr[0]).toMatch(message);
    // Node's own parser text has an unbalanced quote; ours never shows it.
    expect(r.stderr[0]).not.toMatch(/Unknown option '|ERR_PARSE_ARGS/);
    expect(r.stdout).toEqual([]);
  });

  it('paths takes the machine as an argument, like diagram', async () => {
    const r = await cli('paths', 'cleanup');
    expect(r.code).toBe(0);
    expect(r.stdout.at(-1)).toMatch(/^cleanup: \d+ paths over .* transitions covered/);
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect((await cli('--version')).stdout).toEqual([`drbd-migrate ${pkg.version}`]);
  });

  it('every command has its help from the table, listing every option it takes and its conflicts', async () => {
    for (const command of COMMANDS) {
      const r = await cli(command.name, '--help');
      expect(r.code).toBe(0);
      const text = r.stdout.join('\n');
      for (const o of command.options) expect(text).toContain(`--${o}`);
      for (const c of command.conflicts ?? []) expect(text).toContain(`--${c.option} with`);
    }
    const all = (await cli('--help')).stdout.join('\n');
    for (const command of COMMANDS) expect(all).toContain(`drbd-migrate ${command.name}`);
  });
});

describe('plain I/O errors are bad input: exit 2 with the path and the cause (item 7)', () => {
  it('init into a folder that does not exist (no temporary name shown)', async () => {
    const r = await cli('init', '--world', '/no-such-dir/w.json');
    expect(r.code).toBe(2);
    expect(r.stderr).toEqual([
      'drbd-migrate: cannot write world file /no-such-dir/w.json: no such file or directory (ENOENT)',
    ]);
  });

  it('an SVG diagram of a shipped machine is the drawing shipped in docs/ (Graphviz not run again)', async () => {
    const r = await cli('diagram', 'cleanup', '--format', 'svg');
    expect(r.code).toBe(0);
    expect(`${r.stdout.join('\n')}\n`).toBe(readFileSync('docs/cleanup.svg', 'utf8'));
  });

  it('a diagram into a folder that does not exist', async () => {
    const r = await cli('diagram', '-o', '/no-such-dir/x.mmd');
    expect(r.code).toBe(2);
    expect(r.stderr[0]).toMatch(/cannot write \/no-such-dir\/x\.mmd: no such file or directory/);
  });

  it('a state directory that cannot be made (a file is in the way)', async () => {
    const file = await world();
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, '');
    const before = readFileSync(file, 'utf8');
    const r = await cli('migrate', 'web1', '--world', file, '--state-dir', join(blocker, 'state'));
    expect(r.code).toBe(2);
    expect(r.stderr).toEqual([
      expect.stringMatching(
        /^drbd-migrate: cannot use the state directory .*blocker\/state: a part of the path is not a directory/,
      ),
    ]);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it("a state directory on the kernel's proc file system: refused at once, nothing touched", async () => {
    const file = await world();
    const before = readFileSync(file, 'utf8');
    const r = await cli('migrate', 'web1', '--world', file, '--state-dir', '/proc/drbd-migrate-state');
    expect(r.code).toBe(2);
    expect(r.stderr).toEqual([
      expect.stringMatching(
        /cannot use the state directory \/proc\/drbd-migrate-state: \/proc is on the kernel's proc file system/,
      ),
    ]);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('a world file whose instance names one node as both primary and secondary: refused as it is read', async () => {
    const file = await world();
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    saved.config.instances.web1.secondaryNode = saved.config.instances.web1.primaryNode;
    writeFileSync(file, JSON.stringify(saved));
    for (const args of [
      ['show'],
      ['migrate', 'web1'],
      ['failover', 'web1'],
      ['migrate', 'web1', '--cleanup'],
    ]) {
      const r = await cli(...args, '--world', file);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr[0]).toMatch(
        /malformed at config\.instances\.web1: names node-a as both its primary and its secondary node/,
      );
    }
  });

  it('init and demo do not replace an existing file unless told to (--force)', async () => {
    const file = join(dir, 'mine.txt');
    writeFileSync(file, 'my notes\n');
    for (const args of [['init'], ['demo', '--fast']]) {
      const r = await cli(...args, '--world', file);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr[0]).toMatch(/mine\.txt exists: add --force to replace it/);
      expect(readFileSync(file, 'utf8')).toBe('my notes\n');
    }
    expect((await cli('init', '--world', file, '--force')).code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8')).version).toBe(1);
  });

  it('one writer at a time on a world file: a second is refused, saying who writes it', async () => {
    const file = await world();
    const before = readFileSync(file, 'utf8');
    const release = await holdWorld(file, 'evacuation of node-a');
    try {
      for (const args of [
        ['power', 'node-b', 'off'],
        ['migrate', 'web1'],
        ['init', '--force'],
      ]) {
        const r = await cli(...args, '--world', file);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr[0]).toMatch(
          /world file .* is being written by evacuation of node-a \(pid \d+ on .*\): wait for it to end/,
        );
      }
      expect(readFileSync(file, 'utf8')).toBe(before);
    } finally {
      await release();
    }
    const after = await cli('power', 'node-b', 'off', '--world', file);
    expect(after.code).toBe(0);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it('show marks a node that is powered off as down, its disks not drawn as present', async () => {
    const file = await world();
    expect((await cli('power', 'node-a', 'off', '--world', file)).code).toBe(0);
    const r = await cli('show', '--world', file);
    expect(r.stdout).toContain(
      'node-a: DOWN (powered off: nothing runs there, its disks are gone until it boots)',
    );
    expect(r.stdout.some((l) => l.startsWith('node-b: '))).toBe(true);
  });

  it('a world file whose instance key breaks the naming rule says the rule', async () => {
    const file = await world();
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    const key = 'wéb1';
    saved.config.instances[key] = { ...saved.config.instances.web1, name: 'web9' };
    writeFileSync(file, JSON.stringify(saved));
    const r = await cli('show', '--world', file);
    expect(r.code).toBe(2);
    expect(r.stderr[0]).toMatch(
      /malformed at config\.instances\.wéb1: instance name must be 1 to 63 letters/,
    );
  });

  it('a world file that can be read but not written: refused before the run', () => {
    // As root, permissions do not stop a write: the folder is mounted read-only in a mount namespace.
    const sub = tempDir('drbd-migrate-ro-');
    const file = join(sub, 'w.json');
    spawnSync(process.execPath, ['dist/src/cli/main.js', 'init', '--world', file]);
    const cliArgs = [
      'dist/src/cli/main.js',
      'migrate',
      'web1',
      '--world',
      file,
      '--state-dir',
      join(dir, 'st'),
    ];
    const root = process.getuid?.() === 0;
    if (!root) chmodSync(sub, 0o555);
    const r = root
      ? spawnSync(
          'unshare',
          [
            '-m',
            '--propagation',
            'private',
            'sh',
            '-c',
            `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"`,
            'sh',
            sub,
            process.execPath,
            ...cliArgs,
          ],
          { encoding: 'utf8' },
        )
      : spawnSync(process.execPath, cliArgs, { encoding: 'utf8' });
    if (!root) chmodSync(sub, 0o755);
    expect(r.stderr.trim()).toMatch(
      /^drbd-migrate: cannot write world file .*w\.json: (read-only file system \(EROFS\)|permission denied \(EACCES\))$/,
    );
    expect(r.status).toBe(2);
  });
});

describe('hints and messages that sent the user wrong (item 8)', () => {
  it('the needsCleanup hint names the file the run used, and the cleanup it names works', async () => {
    const file = await world();
    const r = await cli('migrate', 'web1', '--world', file, '--fail', 'finalizeMigrationTarget', '--quiet');
    expect(r.code).toBe(3);
    const next = r.stdout.find((l) => l.startsWith('next: '));
    expect(next).toBe(
      `next: inspect the nodes, then run 'drbd-migrate migrate web1 --world ${file} --cleanup'`,
    );
    const command = /'drbd-migrate (.*)'/.exec(next!)![1]!.split(' ');
    expect((await cli(...command)).code).toBe(0);
  });

  it('explain needsCleanup says the cleanup needs the file the run used', async () => {
    const r = await cli('explain', 'needsCleanup');
    expect(r.stdout.join('\n')).toMatch(/--cleanup, with the --cluster FILE or --world FILE the run used/);
  });

  it('explain knows what a drain ends in, and what an instance within one does', async () => {
    for (const outcome of ['evacuated', 'incomplete', 'aborted', 'skipped', 'notStarted']) {
      const r = await cli('explain', outcome);
      expect(r.code, outcome).toBe(0);
      expect(r.stdout[0]).toBe(`evacuation outcome ${outcome}`);
      expect(r.stdout.at(-1)).toMatch(/^check: /);
    }
  });

  it('explain finds a state by the name the live view shows, or names the states that share it', async () => {
    const one = await cli('explain', 'attaching');
    expect(one.code).toBe(0);
    expect(one.stdout[0]).toBe('migration.dualMaster.attaching');
    const several = await cli('explain', 'polling');
    expect(several.code).toBe(2);
    expect(several.stderr[0]).toMatch(
      /^drbd-migrate: 'polling' is a state of several: migration\.dualMaster\.syncing\.polling, .*; name one of them$/,
    );
  });

  it('an unknown instance is named once, and leaves no journal behind', async () => {
    const file = await world();
    const r = await cli('migrate', 'web2', '--world', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toEqual([`drbd-migrate: instance web2 is not in world file ${file}`]);
    const journal = join(state, 'journal');
    expect(existsSync(journal) ? readdirSync(journal) : []).toEqual([]);
  });

  it('the library names an unknown instance once too', async () => {
    const file = await world();
    const w = JSON.parse(readFileSync(file, 'utf8'));
    const { runMigration, createSimCluster } = await import('../src/index.js');
    const sim = createSimCluster(w);
    const out = await runMigration({ instance: 'web2' }, sim.effects, { clock: sim.clock });
    expect(out.error).toBe("Cannot read the config of instance web2: Instance 'web2' not known");
  });

  it('an instance that is down is not sent to a command that does not exist', async () => {
    const file = join(dir, 'down.json');
    await saveWorld(
      file,
      createWorld({ instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', running: false }] }),
    );
    const r = await cli('migrate', 'web1', '--world', file);
    expect(r.stderr[0]).toMatch(
      /not running on node-a; an instance that is down moves by failover \(drbd-migrate failover, or migrate --allow-failover\)/,
    );
    expect(r.stderr[0]).not.toMatch(/please use failover/);
  });
});

describe('the terminal view (item 10)', () => {
  const screen = (columns: number) => {
    const written: string[] = [];
    return { written, screen: { tty: true, color: true, columns, write: (t: string) => written.push(t) } };
  };
  const visible = (s: string) => stripVTControlCharacters(s);

  it('fits lines to the width without cutting an escape code', () => {
    const line = `\x1b[36m▶\x1b[0m \x1b[1mmigrating\x1b[0m${'x'.repeat(100)}`;
    const cut = fitToWidth(line, 20);
    expect(visible(cut)).toHaveLength(19);
    expect(cut.endsWith('\x1b[0m')).toBe(true);
    expect(stripVTControlCharacters(cut)).not.toContain('\x1b');
  });

  it.each([0, 30, 80])('at %i columns no drawn line wraps (0 is taken as 80)', (columns) => {
    const { written, screen: s } = screen(columns);
    const view = new LiveView(s);
    view.onEvent({ type: 'state', value: 'migrating.transferring.polling', at: 0 });
    for (let i = 1; i <= 5; i++) {
      view.onEvent({
        type: 'progress',
        kind: 'memory',
        percent: i * 10,
        transferredMiB: i * 256,
        totalMiB: 2560,
        remainingMiB: 2560 - i * 256,
        status: 'active',
        at: i * 1000,
      });
    }
    const width = columns === 0 ? 80 : columns;
    const lines = written.join('').split('\n').map(visible);
    expect(lines.some((l) => l.includes('memory'))).toBe(true);
    for (const l of lines) expect(l.length).toBeLessThan(width);
  });

  it('honours NO_COLOR and FORCE_COLOR', () => {
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['dist/src/cli/main.js', 'demo', '--fast'], {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '', FORCE_COLOR: '', ...env },
      }).stdout;
    expect(run({ FORCE_COLOR: '1' })).toContain('\x1b[32mmigrated\x1b[0m');
    expect(run({ FORCE_COLOR: '1', NO_COLOR: '1' })).not.toContain('\x1b[');
    expect(run({})).not.toContain('\x1b[');
  });
});
