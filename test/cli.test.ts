import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { saveWorld } from '../src/cli/worldFile.js';
import { createWorld, type WorldSpec } from '../src/index.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

let dir: string;
beforeEach(async () => {
  dir = tempDir('drbd-migrate-');
  // Journals and locks of each test in a directory of its own.
  process.env.DRBD_MIGRATE_STATE_DIR = join(dir, 'state');
});

async function worldFile(spec: WorldSpec = {}) {
  const file = join(dir, 'world.json');
  await saveWorld(file, createWorld(spec));
  return file;
}

describe('drbd-migrate demo', () => {
  it('migrates the demo instance and prints the final cluster state', async () => {
    const r = await cli('demo', '--fast');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('* done');
    expect(r.stdout).toContain('outcome: migrated');
    expect(r.stdout).toContain('instance web1 runs on: node-b; the config names node-b');
    expect(r.stdout.find((l) => l.startsWith('step '))).toMatch(/duration/);
    expect(r.stdout.some((l) => /^dualMaster\s+\d+\.\d s$/.test(l))).toBe(true);
    expect(r.stdout).toContain('node-b: web1 (running)');
    expect(r.stdout).toContain('safety rules: all held');
  });

  it('speaks one JSON object per line with --json', async () => {
    const r = await cli('demo', '--fast', '--json');
    const lines = r.json();
    expect(new Set(lines.map((l) => l.type))).toEqual(
      new Set(['state', 'feedback', 'forecast', 'progress', 'result', 'world']),
    );
    expect(lines.some((l) => l.type === 'progress' && l.kind === 'sync')).toBe(true);
    expect(lines.some((l) => l.type === 'progress' && l.kind === 'memory')).toBe(true);
    expect(lines.at(-2)).toMatchObject({
      type: 'result',
      outcome: 'migrated',
      instance: 'web1',
      primaryNode: 'node-b',
      live: true,
    });
    expect(lines.at(-1)).toMatchObject({
      type: 'world',
      nodes: {
        'node-b': {
          instances: { web1: 'running' },
          drbd: { 'web1-disk0': { role: 'Primary', allowTwoPrimaries: false } },
        },
      },
      config: { web1: { primary: 'node-b' } },
    });
  });

  it('exits 1 when the migration fails and the instance is safe on the source', async () => {
    const r = await cli('demo', '--fast', '--json', '--fail', 'acceptInstance');
    expect(r.code).toBe(1);
    expect(r.json().at(-2)).toMatchObject({ outcome: 'reverted', primaryNode: 'node-a' });
  });

  it('cuts off a hung step with simulated time', async () => {
    const r = await cli('demo', '--fast', '--hang', 'waitSync@2');
    expect(r.code).toBe(1);
    expect(r.stdout.join('\n')).toMatch(/waitSync did not answer within/);
  });

  it('saves the world it leaves, so a later cleanup repairs it (exit 3, then 0)', async () => {
    const file = join(dir, 'w.json');
    const failed = await cli('demo', '--fast', '--world', file, '--fail', 'finalizeMigrationTarget');
    expect(failed.code).toBe(3);
    expect(failed.stdout).toContain(
      `next: inspect the nodes, then run 'drbd-migrate migrate web1 --world ${file} --cleanup'`,
    );
    const cleaned = await cli('migrate', 'web1', '--world', file, '--cleanup');
    expect(cleaned.code).toBe(0);
    const world = JSON.parse(await readFile(file, 'utf8'));
    expect(world.violations).toEqual([]);
    const again = await cli('migrate', 'web1', '--world', file, '--json');
    expect(again.code).toBe(0);
    expect(again.json().at(-2)).toMatchObject({ outcome: 'migrated' });
  });

  it('prints only the result with --quiet', async () => {
    const r = await cli('demo', '--fast', '--quiet');
    expect(r.stdout).toEqual(['migrated: web1 is primary on node-b']);
  });

  it('migrates non-live', async () => {
    const r = await cli('demo', '--fast', '--json', '--non-live');
    expect(r.json().at(-2)).toMatchObject({ outcome: 'migrated', live: false });
  });
});

describe('bad input: a one-line cause, exit 2, and nothing touched', () => {
  const cases: [string, WorldSpec, string[], RegExp][] = [
    ['an unknown instance', {}, ['nosuch'], /^drbd-migrate: instance nosuch is not in world file /],
    [
      'an instance without DRBD disks',
      { instances: [{ name: 'web1', primary: 'node-a', secondary: null, diskTemplate: 'plain' }] },
      ['web1'],
      /disk layout 'plain' does not allow migrations/,
    ],
    [
      'a target that is not the secondary',
      { nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} } },
      ['web1', '--target', 'node-c'],
      /cannot be migrated to arbitrary nodes: node-c is not the secondary/,
    ],
    [
      'a target without enough memory',
      {
        nodes: { 'node-a': {}, 'node-b': { memoryMiB: 512 } },
        instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048 }],
      },
      ['web1'],
      /Not enough memory on node node-b for migrating instance web1: needed 2048 MiB, available 512 MiB/,
    ],
    [
      'degraded disks',
      { instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', outOfSyncMiB: 100 }] },
      ['web1'],
      /Disk 0 \(web1-disk0\) is degraded or not fully synchronized on target node node-b/,
    ],
  ];

  it.each(cases)('%s', async (_what, spec, args, message) => {
    const file = await worldFile(spec);
    const before = await readFile(file, 'utf8');
    const r = await cli('migrate', ...args, '--world', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toHaveLength(1);
    expect(r.stderr[0]).toMatch(message);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  const usage: [string, () => Promise<string[]>, RegExp][] = [
    [
      'a malformed world file',
      async () => {
        const file = await worldFile();
        const w = JSON.parse(await readFile(file, 'utf8'));
        w.resources['web1-disk0'].local['node-a'].role = 'Boss';
        await writeFile(file, JSON.stringify(w));
        return ['migrate', 'web1', '--world', file];
      },
      /world file .* is malformed at resources\.web1-disk0\.local\.node-a\.role/,
    ],
    [
      'a world file that is not JSON',
      async () => {
        const file = join(dir, 'bad.json');
        await writeFile(file, '{ nope');
        return ['migrate', 'web1', '--world', file];
      },
      /is not JSON/,
    ],
    [
      'a missing world file',
      async () => ['migrate', 'web1', '--world', join(dir, 'none.json')],
      /cannot read world file .*ENOENT/,
    ],
    [
      'an unknown effect in --fail',
      async () => ['migrate', 'web1', '--world', await worldFile(), '--fail', 'acceptInstanc'],
      /unknown effect 'acceptInstanc'/,
    ],
    [
      'an instance name with shell metacharacters',
      async () => ['migrate', 'web1;reboot', '--world', await worldFile()],
      /bad instance name 'web1;reboot'/,
    ],
    [
      'a target name with shell metacharacters',
      async () => ['migrate', 'web1', '--target', '$(id)', '--world', await worldFile()],
      /bad target node/,
    ],
    [
      'no --cluster or --world for migrate',
      async () => ['migrate', 'web1'],
      /migrate needs --cluster FILE or --world FILE/,
    ],
    [
      'a cluster file that is not there',
      async () => ['migrate', 'web1', '--cluster', '/nonexistent/c.yaml'],
      /cannot read cluster file/,
    ],
    [
      'a metacharacter instance name with --cluster',
      async () => ['migrate', 'web1;id', '--cluster', 'docs/cluster.example.yaml'],
      /bad instance name/,
    ],
    [
      'resume --cluster with nothing journaled',
      async () => ['resume', 'web1', '--cluster', 'docs/cluster.example.yaml'],
      /there is no unfinished migration or cleanup of web1 to resume/,
    ],
    [
      'resume --cluster --dry-run',
      async () => ['resume', 'web1', '--cluster', 'docs/cluster.example.yaml', '--dry-run'],
      /resume does not take --dry-run \(it is an option of migrate, failover, evacuate, rejoin, replace-secondary, replace-third-copy\)/,
    ],
    ['an unknown command', async () => ['fly'], /unknown command 'fly'/],
    [
      'an unknown option',
      async () => ['demo', '--fly'],
      /^drbd-migrate: unknown option --fly; see 'drbd-migrate demo --help'$/,
    ],
  ];

  it.each(usage)('%s', async (_what, argv, message) => {
    const args = await argv();
    const file = args[args.indexOf('--world') + 1];
    const before = file === undefined ? null : await readFile(file, 'utf8').catch(() => null);
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toHaveLength(1);
    expect(r.stderr[0]).toMatch(message);
    expect(r.stdout).toEqual([]);
    if (file !== undefined) expect(await readFile(file, 'utf8').catch(() => null)).toBe(before);
  });
});

describe('the installed binary', () => {
  // Executed as a program, not through node: npx may reuse a cached link to this file and
  // not mark it executable again, so the build must.
  it('runs the demo from the package bin', () => {
    const out = execFileSync('dist/src/cli/main.js', ['demo', '--fast', '--json'], {
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim().split('\n').at(-2) ?? '{}')).toMatchObject({
      type: 'result',
      outcome: 'migrated',
    });
  });
});
