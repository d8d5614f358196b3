import { describe, expect, it } from 'vitest';
import { CopyEta, type CopyReading } from '../src/cli/eta.js';
import { createSimCluster, type RunEvent, runMigration } from '../src/index.js';
import { streamingGuest } from './helpers.js';

/** Issue 24: the copy's ETA never runs backwards without a reason, and says the reason. */

const readings = (...rows: [number, number, number][]): CopyReading[] =>
  rows.map(([at, transferredMiB, remainingMiB]) => ({ at: at * 1000, transferredMiB, remainingMiB }));

/** The rule, checked on every step: the end moves later only with a reason given. */
function ruleBroken(steps: { at: number; seconds: number | null; why: string | null }[]): string[] {
  const broken: string[] = [];
  for (let i = 1; i < steps.length; i++) {
    const [a, b] = [steps[i - 1]!, steps[i]!];
    const endA = a.seconds === null ? Number.POSITIVE_INFINITY : a.at + a.seconds * 1000;
    const endB = b.seconds === null ? Number.POSITIVE_INFINITY : b.at + b.seconds * 1000;
    if (endB > endA + 1 && b.why === null)
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
