import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Convergence, DEFAULT_CONVERGENCE, predictCopy } from '../machines/index.js';
import { saveWorld } from '../src/cli/worldFile.js';
import { createSimCluster, createWorld, type MigrationStatus, runMigration } from '../src/index.js';
import { cli, streamingGuest } from './helpers.js';
import { tempDir } from './tmp.js';

/** Issue 24: the copy's prediction, checked against the simulated cluster's own copy of the memory. */

const policy = (p: Partial<Convergence> = {}): Convergence => ({ ...DEFAULT_CONVERGENCE, ...p });

/** A live migration of a guest of `memoryMiB` dirtying `dirtyMiBps` over all of its memory, on the simulator. */
async function simulated(memoryMiB: number, dirtyMiBps: number, convergence: Partial<Convergence>) {
  const sim = createSimCluster({
    ...streamingGuest(memoryMiB, dirtyMiBps),
    settings: { migrationMiBps: 100_000 },
  });
  let started = 0;
  let last: MigrationStatus | null = null;
  const out = await runMigration({ instance: 'web1', convergence }, sim.effects, {
    clock: sim.clock,
    onCall: (call) => {
      if (call.effect === 'migrateInstance' && call.phase === 'start') started = sim.clock.now();
      if (call.effect === 'migrationStatus' && call.phase === 'done') last = call.output as MigrationStatus;
    },
  });
  const status = last as MigrationStatus | null;
  return { out, passes: status?.passes ?? null, seconds: ((status?.at ?? 0) - started) / 1000 };
}

describe('the copy prediction', () => {
  it('an idle guest: one pass, then the switch-over', () => {
    const p = predictCopy({ memoryMiB: 2048, dirtyMiBps: 0, policy: policy(), live: true });
    expect(p).toMatchObject({ converges: true, stage: 'asIs', passes: 1, copySeconds: 16, downtimeMs: 0 });
  });

  it('a guest that dirties slower than the link: passes shrink until one fits the downtime', () => {
    const p = predictCopy({ memoryMiB: 2048, dirtyMiBps: 32, policy: policy(), live: true });
    expect(p).toMatchObject({
      converges: true,
      stage: 'asIs',
      passes: 3,
      copySeconds: 21.25,
      downtimeMs: 250,
    });
    expect(p.says).toBe(
      'predicted: converges as it starts, 3 passes, about 21.3 s, downtime about 250 ms (the guest dirties 32 MiB/s, the copy sends 128 MiB/s)',
    );
  });

  it('a guest that dirties faster than the link never converges by itself, and says what would move it', () => {
    const p = predictCopy({ memoryMiB: 2048, dirtyMiBps: 256, policy: policy(), live: true });
    expect(p.converges).toBe(false);
    expect(p.stage).toBeNull();
    expect(p.says).toMatch(
      /^predicted: never converges: the guest dirties 256 MiB\/s, the copy sends 128 MiB\/s, and 2048 MiB stay dirty each pass, more than 2000 ms of downtime can send; it would move with a downtime cap of 16000 ms or more, or auto-converge, or postcopy allowed, or a faster link, or a non-live migration$/,
    );
  });

  it('the policy’s stages, in order: a raised downtime, the throttle, postcopy', () => {
    const slowish = predictCopy({
      memoryMiB: 256,
      dirtyMiBps: 300,
      policy: policy({ bandwidthMiBps: 256 }),
      live: true,
    });
    expect(slowish).toMatchObject({ stage: 'raisedDowntime', downtimeMs: 1000 });
    const busy = { memoryMiB: 2048, dirtyMiBps: 256, live: true };
    expect(predictCopy({ ...busy, policy: policy({ autoConverge: true }) }).stage).toBe('autoConverge');
    expect(predictCopy({ ...busy, policy: policy({ postcopy: true }) })).toMatchObject({
      converges: true,
      stage: 'postcopy',
      downtimeMs: 0,
    });
  });

  it('a non-live copy is one pass of the whole memory, paused', () => {
    expect(predictCopy({ memoryMiB: 2048, dirtyMiBps: 999, policy: policy(), live: false })).toMatchObject({
      converges: true,
      passes: 1,
      copySeconds: 16,
      downtimeMs: 16_000,
    });
  });

  for (const [memoryMiB, dirtyMiBps] of [
    [2048, 32],
    [4096, 64],
    [1024, 100],
  ] as const) {
    it(`agrees with the simulator's copy: ${memoryMiB} MiB dirtied at ${dirtyMiBps} MiB/s`, async () => {
      const predicted = predictCopy({ memoryMiB, dirtyMiBps, policy: policy(), live: true });
      const sim = await simulated(memoryMiB, dirtyMiBps, {});
      expect(sim.out.outcome).toBe('migrated');
      expect(predicted.converges).toBe(true);
      expect(sim.passes).toBe(predicted.passes);
      // The simulator's polls land on its own steps: within a tenth.
      expect(Math.abs(sim.seconds - predicted.copySeconds)).toBeLessThanOrEqual(predicted.copySeconds / 10);
    });
  }
});

describe('drbd-migrate plan', () => {
  const worldWith = async (instance: Record<string, unknown>) => {
    const file = join(tempDir('drbd-migrate-plan-'), 'w.json');
    await saveWorld(
      file,
      createWorld({
        instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048, ...instance }],
      }),
    );
    return file;
  };

  it('measures the guest on its primary and predicts its copy; the world file is not changed', async () => {
    const file = await worldWith({ dirtyMiBps: 32, workingSetMiB: 2048 });
    const before = readFileSync(file, 'utf8');
    const r = await cli('plan', 'web1', '--world', file);
    expect(r.code).toBe(0);
    expect(r.stdout).toEqual([
      'web1: 2048 MiB on node-a, live',
      'measured: dirties 32 MiB/s (QEMU calc-dirty-rate, page sampling over 1 s)',
      // The two readings of one measurement: a working set, or a stream (this one; the simulator's copy takes 3 passes, 21.3 s).
      'predicted: converges as it starts, 1–3 passes, 16–21 s, downtime about 250 ms (the guest dirties 32 MiB/s, the copy sends 128 MiB/s)',
    ]);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('a dry run prints the same forecast, for the copy it drives', async () => {
    const file = await worldWith({ dirtyMiBps: 32, workingSetMiB: 2048 });
    const r = await cli('migrate', 'web1', '--world', file, '--dry-run');
    expect(r.stdout).toContain(
      '# predicted: converges as it starts, 1–3 passes, 16–21 s, downtime about 250 ms (the guest dirties 32 MiB/s, the copy sends 128 MiB/s)',
    );
  });

  it('says when a guest never converges, and what would move it', async () => {
    const file = await worldWith({ dirtyMiBps: 4096, workingSetMiB: 2048 });
    const r = await cli('plan', 'web1', '--world', file, '--calc-seconds', '2', '--json');
    expect(r.code).toBe(0);
    const [plan] = r.json();
    expect(plan).toMatchObject({
      type: 'plan',
      measured: { dirtyMiBps: 1024, calcSeconds: 2, mode: 'page-sampling' },
      forecast: { hopeless: true, hopeful: { converges: false, stage: null } },
    });
    const said = await cli('plan', 'web1', '--world', file);
    expect(said.stdout.at(-1)).toBe(
      'a migration would be refused before anything is touched (convergence.predict false tries it anyway)',
    );
  });

  it('a non-live copy is not measured: one pass, paused', async () => {
    const file = await worldWith({ dirtyMiBps: 32 });
    const r = await cli('plan', 'web1', '--world', file, '--non-live');
    expect(r.stdout).toEqual([
      'web1: 2048 MiB on node-a, non-live',
      'predicted: converges as it starts, 1 pass, about 16 s, downtime about 16000 ms (the guest is paused for the copy, which sends 128 MiB/s)',
    ]);
  });

  it('a guest that is not running cannot be measured: refused, exit 2', async () => {
    const file = await worldWith({ running: false });
    const r = await cli('plan', 'web1', '--world', file);
    expect(r.code).toBe(2);
    expect(r.stderr[0]).toMatch(
      /cannot measure the dirty rate of web1 on node-a: .*its dirty rate is measured only while it runs/,
    );
  });
});
