import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/cli.js';
import { EvacuationView } from '../src/cli/evacuationView.js';
import { saveWorld } from '../src/cli/worldFile.js';
import { createWorld, restStateProblems, type World } from '../src/index.js';
import { cluster, vm } from './drain.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/** drbd-migrate evacuate: the built CLI draining a world file, killed and resumed, and its terminal view. */

describe('drbd-migrate evacuate', () => {
  const world = (file: string) =>
    saveWorld(
      file,
      createWorld(
        cluster([
          ...Array.from({ length: 6 }, (_, i) => vm(`v${i}`, 'node-a', ['node-b', 'node-c'][i % 2]!)),
          vm('stopped', 'node-a', 'node-b', { running: false, adminState: 'down' }),
        ]),
      ),
    );
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as World;

  it('drains the node: a summary table, exit 1 while a stopped instance stays, 0 with --allow-failover', async () => {
    const dir = tempDir('drbd-migrate-evac-cli-');
    const file = join(dir, 'w.json');
    await world(file);
    const state = ['--state-dir', join(dir, 'state')];
    const first = await cli('evacuate', 'node-a', '--world', file, '--concurrency', '3', ...state);
    expect(first.code).toBe(1);
    expect(first.stdout).toContain('v0: migration to node-b');
    // Said before the first run: the drain's length, from its guests measured first.
    const said = first.stdout.findIndex((l) =>
      l.startsWith("* predicted: the drain's copies and resyncs take about "),
    );
    expect(said).toBeGreaterThanOrEqual(0);
    expect(said).toBeLessThan(first.stdout.indexOf('v0: migration to node-b'));
    expect(first.stdout[said]).toMatch(
      /\(6 run\(s\), 3 at once, 3 per node; the longest, v\d, about \d+ s\)/,
    );
    expect(first.stdout.at(-2)).toMatch(
      /^took \d+ (s|min)[^;]*; predicted \d+ (s|min)[^;]* of copies and resyncs, before each run's own steps$/,
    );
    expect(first.stdout.some((l) => /^stopped\s+-\s+skipped\s+node-a\s+it is down/.test(l))).toBe(true);
    expect(first.stdout.at(-1)).toBe('incomplete: node-a: 6 moved, 0 not moved, 1 skipped, 0 not started');
    expect(first.stderr[0]).toMatch(/^drbd-migrate: incomplete: 1 instance\(s\) not moved: stopped skipped/);
    const second = await cli('evacuate', 'node-a', '--world', file, '--allow-failover', '--quiet', ...state);
    expect(second.code).toBe(0);
    expect(second.stdout.at(-1)).toBe('evacuated: node-a: 1 moved, 0 not moved, 0 skipped, 0 not started');
    const after = read(file);
    expect(after.violations).toEqual([]);
    expect(Object.values(after.config.instances).every((i) => i.primaryNode !== 'node-a')).toBe(true);
  });

  it('on a terminal, its block counts what it will run: a skipped instance is not waiting', async () => {
    const dir = tempDir('drbd-migrate-evac-cli-');
    const file = join(dir, 'w.json');
    await world(file);
    const written: string[] = [];
    const code = await runCli(['evacuate', 'node-a', '--world', file, '--state-dir', join(dir, 'state')], {
      out: () => {},
      err: () => {},
      screen: { tty: true, color: false, columns: 160, write: (t) => written.push(t) },
    });
    expect(code).toBe(1);
    const blocks = written
      .join('')
      .split('\n')
      .filter((l) => l.includes('evacuating node-a:'));
    // The drain's time against its prediction, and each run's against its own.
    const predicted = / {2}\d+ (s|min)[^~]* \/ ~\d+ (s|min)[^~]*$/;
    expect(blocks.at(0)).toMatch(/ 6 waiting|, 5 waiting|, 4 waiting/);
    expect(blocks.at(0)).toMatch(predicted);
    expect(blocks.at(-1)).toMatch(/6 moved, 0 not moved, 0 waiting {2}/);
    const flights = written
      .join('')
      .split('\n')
      .filter((l) => /^ {2}v\d → node-/.test(l));
    expect(flights.length).toBeGreaterThan(0);
    expect(flights.every((l) => predicted.test(l))).toBe(true);
  });

  it('--dry-run plans on a copy; bad limits are refused before anything runs', async () => {
    const dir = tempDir('drbd-migrate-evac-cli-');
    const file = join(dir, 'w.json');
    await world(file);
    const before = readFileSync(file, 'utf8');
    const plan = await cli('evacuate', 'node-a', '--world', file, '--dry-run');
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('# would migrate v0 to node-b');
    expect(readFileSync(file, 'utf8')).toBe(before);
    const bad = await cli('evacuate', 'node-a', '--world', file, '--per-node', '0');
    expect(bad.code).toBe(2);
    expect(bad.stderr[0]).toMatch(/bad --per-node '0': expected a whole number from 1 to 1024/);
    for (const text of ['-1', '1e3', '0x10', '2.5']) {
      const r = await cli('evacuate', 'node-a', '--world', file, '--concurrency', text);
      expect(r.code, text).toBe(2);
      expect(r.stderr[0], text).toBe(
        `drbd-migrate: bad --concurrency '${text}': expected a whole number from 1 to 1024`,
      );
    }
    const unknown = await cli('evacuate', 'node-z', '--world', file);
    expect(unknown.stderr[0]).toMatch(/node node-z is not in world file/);
  });

  it('killed mid-way, resume NODE takes the drain up and ends it', async () => {
    const dir = tempDir('drbd-migrate-evac-cli-');
    const file = join(dir, 'w.json');
    await world(file);
    const state = join(dir, 'state');
    // The built CLI, killed as soon as its first run has ended (the rest under way or waiting).
    const child = spawn(
      process.execPath,
      [
        'dist/src/cli/main.js',
        'evacuate',
        'node-a',
        '--world',
        file,
        '--concurrency',
        '1',
        '--json',
        '--state-dir',
        state,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const killed = await new Promise<NodeJS.Signals | null>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('"phase":"end"')) child.kill('SIGKILL');
      });
      child.on('exit', (_, signal) => resolve(signal));
    });
    expect(killed).toBe('SIGKILL');
    // The dead drain's lock looks stale, but its journal is open: a run on one of its instances
    // (v0, moved to node-b, its secondary node-a) is refused until the drain is resumed.
    const before = readFileSync(file, 'utf8');
    const blocked = await cli('migrate', 'v0', '--world', file, '--state-dir', state);
    expect(blocked.code).toBe(2);
    expect(blocked.stderr[0]).toMatch(
      /an evacuation of node-a is unfinished \(its process died\) and v0 is on node-a: resume it first with 'drbd-migrate resume node-a --world /,
    );
    expect(readFileSync(file, 'utf8')).toBe(before);
    const resumed = await cli('resume', 'node-a', '--world', file, '--state-dir', state, '--quiet');
    expect(resumed.stdout.at(-1)).toBe('incomplete: node-a: 6 moved, 0 not moved, 1 skipped, 0 not started');
    expect(resumed.code).toBe(1);
    const after = read(file);
    expect(after.violations).toEqual([]);
    for (const name of Object.keys(after.config.instances)) {
      if (name !== 'stopped') expect(restStateProblems(after, name)).toEqual([]);
    }
    // Nothing left to resume.
    const again = await cli('resume', 'node-a', '--world', file, '--state-dir', state);
    expect(again.code).toBe(2);
  });
});

/**
 * The scheduler alone, generated: random nodes, instances, limits, run outcomes (ends in any order,
 * half-done ones followed up) and operator aborts, against a runner that only answers. Whatever
 * happens, the limits hold, nothing starts after an abort, every concerned instance is listed once,
 * and the outcome is what the list says.
 */
/** A line as the terminal shows it: cursor and colour escapes take no room. */
const visible = (line: string) =>
  line
    .split(String.fromCharCode(27))
    .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*[A-Za-z]/, '')))
    .join('');

describe('the evacuation view on a terminal', () => {
  it('shows every run in flight with its step and progress in a block redrawn under the scrolling lines', async () => {
    const written: string[] = [];
    const screen = { tty: true, color: false, columns: 100, write: (t: string) => written.push(t) };
    let now = 0;
    const view = new EvacuationView(
      screen,
      'node-a',
      () => 3,
      () => now,
    );
    const request = (instance: string) => ({
      instance,
      operation: 'migration' as const,
      source: 'node-a',
      target: 'node-b',
      resumed: false,
      input: { instance },
    });
    view.onEvent({
      type: 'forecast',
      forecast: {
        seconds: 95,
        says: 'predicted: …',
        runs: [
          { instance: 'v1', operation: 'migration', seconds: 80, basis: 'measured', refused: false },
          { instance: 'v2', operation: 'migration', seconds: 15, basis: 'measured', refused: false },
        ],
      },
    });
    view.onRun({ phase: 'start', request: request('v1') });
    now = 12_000;
    view.onRun({ phase: 'start', request: request('v2') });
    view.onInstanceEvent('v1', { type: 'state', value: 'dualMaster.syncing.polling', at: 0 });
    view.onInstanceEvent('v1', { type: 'progress', kind: 'sync', percent: 42, at: 1 });
    view.onInstanceEvent('v2', {
      type: 'progress',
      kind: 'memory',
      percent: 7,
      transferredMiB: 7,
      totalMiB: 100,
      remainingMiB: 93,
      status: 'active',
      at: 1,
    });
    const block = written.at(-1)!.split('\n');
    expect(block[0]).toBe(
      'evacuating node-a: 2 running, 0 moved, 0 not moved, 1 waiting  12 s / ~1 min 35 s',
    );
    expect(block[1]).toBe('  v1 → node-b  dualMaster.syncing.polling  resync 42%  12 s / ~1 min 20 s');
    expect(block[2]).toBe('  v2 → node-b    memory 7%  0 s / ~15 s');
    // Every line fits the terminal, so the block can be drawn again in place.
    for (const l of written.join('').split('\n')) expect(visible(l).length).toBeLessThan(100);
    view.onRun({
      phase: 'end',
      request: request('v1'),
      output: {
        outcome: 'migrated',
        verdict: 'done',
        instance: 'v1',
        primaryNode: 'node-b',
        live: true,
        warnings: [],
      },
    });
    expect(written.at(-1)!.split('\n')[0]).toBe(
      'evacuating node-a: 1 running, 1 moved, 0 not moved, 1 waiting  12 s / ~1 min 35 s',
    );
  });
});
