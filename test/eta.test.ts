import { describe, expect, it } from 'vitest';
import { CopyEta, type CopyReading, RunEta } from '../src/cli/eta.js';
import { createSimCluster, type RunEvent, runMigration } from '../src/index.js';
import { streamingGuest } from './helpers.js';

/** Issue 24: the copy's ETA never runs backwards without a reason, and says the reason. */

const readings = (...rows: [number, number, number][]): CopyReading[] =>
  rows.map(([at, transferredMiB, remainingMiB]) => ({ at: at * 1000, transferredMiB, remainingMiB }));

/**
 * The rule, checked on every step: the end moves later only with a reason given. An ETA of 0 s is
 * not a later end: what it counts is done, and the run's own steps (never counted) remain.
 */
function ruleBroken(steps: { at: number; seconds: number | null; why: string | null }[]): string[] {
  const broken: string[] = [];
  for (let i = 1; i < steps.length; i++) {
    const [a, b] = [steps[i - 1]!, steps[i]!];
    const endA = a.seconds === null ? Number.POSITIVE_INFINITY : a.at + a.seconds * 1000;
    const endB = b.seconds === null ? Number.POSITIVE_INFINITY : b.at + b.seconds * 1000;
    if (endB > endA + 1 && b.why === null && b.seconds !== 0)
      broken.push(`at ${b.at} ms the end moved from ${endA} to ${endB} with no reason`);
  }
  return broken;
}

describe('the copy ETA', () => {
  it('counts down while the rates hold, and noise does not push the end later', () => {
    const eta = new CopyEta();
    // 100 MiB/s sent, 20 MiB/s dirtied; then a reading a little slower (noise, within a tenth).
    const steps = readings([0, 0, 1000], [1, 100, 920], [2, 200, 840], [3, 295, 765], [4, 395, 685]).map(
      (r) => ({
        at: r.at,
        ...eta.observe(r),
      }),
    );
    expect(steps[1]).toMatchObject({ seconds: 11.5, why: null });
    expect(steps.map((s) => s.why)).toEqual([null, null, null, null, null]);
    expect(ruleBroken(steps)).toEqual([]);
    // The end stays where it was: 1 s + 11.5 s.
    expect(steps[3]!.at + steps[3]!.seconds! * 1000).toBe(12_500);
  });

  it('moves the end later when the guest gets busier, saying so', () => {
    const eta = new CopyEta();
    eta.observe({ at: 0, transferredMiB: 0, remainingMiB: 1000 });
    eta.observe({ at: 1000, transferredMiB: 100, remainingMiB: 920 });
    const busier = eta.observe({ at: 2000, transferredMiB: 200, remainingMiB: 900 });
    expect(busier.why).toBe('the guest now dirties 80 MiB/s');
    expect(busier.seconds).toBe(45);
  });

  it('moves it later when the link gets slower, saying so; and to never when the guest outruns it', () => {
    const eta = new CopyEta();
    eta.observe({ at: 0, transferredMiB: 0, remainingMiB: 1000 });
    eta.observe({ at: 1000, transferredMiB: 100, remainingMiB: 900 });
    const slower = eta.observe({ at: 2000, transferredMiB: 150, remainingMiB: 850 });
    expect(slower).toEqual({ seconds: 17, why: 'the link now sends 50 MiB/s' });
    const outrun = eta.observe({ at: 3000, transferredMiB: 200, remainingMiB: 900 });
    expect(outrun).toEqual({ seconds: null, why: 'the guest now dirties 100 MiB/s' });
  });

  it('on a simulated copy whose guest gets busier midway: every later end has its reason', async () => {
    const sim = createSimCluster({
      ...streamingGuest(8192, 16),
    });
    const eta = new CopyEta();
    const steps: { at: number; seconds: number | null; why: string | null }[] = [];
    let polls = 0;
    const out = await runMigration({ instance: 'web1', convergence: { predict: false } }, sim.effects, {
      clock: sim.clock,
      onEvent: (e: RunEvent) => {
        if (e.type !== 'progress' || e.kind !== 'memory') return;
        steps.push({ at: e.at, ...eta.observe(e) });
        // A third of the way in, the guest starts dirtying four times as fast.
        if (++polls === 8) sim.world.guests.web1!.dirtyMiBps = 64;
      },
    });
    expect(out.outcome).toBe('migrated');
    expect(steps.length).toBeGreaterThan(10);
    expect(ruleBroken(steps)).toEqual([]);
    expect(steps.some((s) => s.why?.startsWith('the guest now dirties'))).toBe(true);
  });
});

describe('the run ETA: the resync it waits for, then the copy', () => {
  it('counts the predicted copy while the disks resync, and moves later only with a reason', () => {
    const eta = new RunEta();
    eta.forecast(20);
    expect(eta.observeSync(0, 0)).toEqual({ seconds: null, why: null });
    // 10 % a second: 9 s of resync, then the 20 s copy.
    expect(eta.observeSync(10, 1000)).toEqual({ seconds: 29, why: null });
    // A little slower (within a tenth): noise, the end stays.
    expect(eta.observeSync(19.5, 2000)).toEqual({ seconds: 28, why: null });
    const slower = eta.observeSync(21.5, 3000);
    expect(slower.why).toBe('the resync now goes at 2 % a second');
    expect(slower.seconds).toBeCloseTo(59.25, 2);
    // The copy's first reading gives no rate yet: the predicted end holds.
    expect(eta.observeCopy({ at: 42_000, transferredMiB: 0, remainingMiB: 2048 }).seconds).toBeCloseTo(
      20.25,
      2,
    );
    // Its own estimate, later than predicted: said.
    const copy = eta.observeCopy({ at: 43_000, transferredMiB: 64, remainingMiB: 1984 });
    expect(copy).toEqual({ seconds: 31, why: 'the copy goes slower than predicted' });
  });

  it('on a simulated run that resyncs first: the first end counts the predicted copy, every later end has its reason', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': { memoryMiB: 65_536 }, 'node-b': { memoryMiB: 65_536 } },
      instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 4096 }],
      // A guest that writes fast: what it wrote while dual-master was being set up is resynced first.
      settings: { guestWriteKiBps: 200 * 1024 },
    });
    const eta = new RunEta();
    let predicted: number | null = null;
    const steps: { at: number; seconds: number | null; why: string | null; kind: string }[] = [];
    const out = await runMigration({ instance: 'web1' }, sim.effects, {
      clock: sim.clock,
      onEvent: (e: RunEvent) => {
        if (e.type === 'forecast') {
          predicted = e.copySeconds;
          eta.forecast(e.copySeconds);
        } else if (e.type === 'progress') {
          const step = e.kind === 'sync' ? eta.observeSync(e.percent, e.at) : eta.observeCopy(e);

          steps.push({ at: e.at, kind: e.kind, ...step });
        }
      },
    });
    expect(out.outcome).toBe('migrated');
    expect(predicted).toBe(32);
    const first = steps.find((s) => s.seconds !== null)!;
    expect(first.kind).toBe('sync');
    // The resync left, then the 32 s copy.
    expect(first.seconds).toBeGreaterThan(32);
    expect(steps.some((s) => s.kind === 'memory')).toBe(true);
    expect(ruleBroken(steps)).toEqual([]);
    // Back to single-master, the disks resync what the guest wrote meanwhile: the end moves, saying why.
    expect(steps.filter((s) => s.why === 'the disks resync again')).toHaveLength(1);
  });
});
