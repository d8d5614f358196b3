import { describe, expect, it, vi } from 'vitest';
import { nextPollTimeout, observe, overdue } from '../machines/limits.js';
import {
  type Clock,
  createSimCluster,
  type Effects,
  runMigration,
  SimClock,
  sleepOnTimer,
  systemClock,
} from '../src/index.js';

describe('progress watch', () => {
  it('starts at the first observation and asks for the state now', () => {
    expect(nextPollTimeout(null, 5_000, 60_000, 10_000)).toBe(0);
    const w = observe(null, 1_000, 0);
    expect(w).toEqual({ startedAt: 1_000, lastAt: 1_000, lastProgressAt: 1_000, best: 0 });
    expect(nextPollTimeout(w, 5_000, 60_000, 10_000)).toBe(5_000);
  });

  it('moves the no-progress deadline only when the measure improves', () => {
    let w = observe(null, 0, 10);
    w = observe(w, 4_000, 10);
    expect(w.lastProgressAt).toBe(0);
    w = observe(w, 8_000, 5);
    expect(w.lastProgressAt).toBe(0);
    expect(nextPollTimeout(w, 5_000, 60_000, 10_000)).toBe(2_000);
    w = observe(w, 9_000, 11);
    expect(w.lastProgressAt).toBe(9_000);
    expect(overdue(observe(w, 19_000, 11), 60_000, 10_000)).toBe('noProgress');
  });

  it('never lets a poll outlast the total deadline', () => {
    let w = observe(null, 0, 0);
    w = observe(w, 58_000, 50);
    expect(nextPollTimeout(w, 5_000, 60_000, 10_000)).toBe(2_000);
    expect(overdue(observe(w, 60_000, 60), 60_000, 10_000)).toBe('total');
  });
});

describe('input limits are checked before anything runs', () => {
  it.each([
    [{ stepTimeoutMs: 3_000_000_000 }, /limits\.stepTimeoutMs: must be at most 2147483647 ms/],
    [{ syncNoProgresMs: 1000 }, /limits: unknown key 'syncNoProgresMs'/],
    [{ pollWindowMs: 0 }, /limits\.pollWindowMs: must be more than 0 ms/],
  ])('refuses %o: rejected, no effect called', async (limits, message) => {
    const sim = createSimCluster();
    const calls: string[] = [];
    const out = await runMigration({ instance: 'web1', limits } as never, sim.effects, {
      clock: sim.clock,
      onCall: (c) => calls.push(c.effect),
    });
    expect(out).toMatchObject({ outcome: 'rejected', primaryNode: null });
    expect(out.error).toMatch(message);
    expect(calls).toEqual([]);
  });

  it('sleeps past the longest timer in pieces (no overflow to an immediate wake-up)', async () => {
    vi.useFakeTimers();
    try {
      let woke = false;
      const slept = systemClock.sleep(2 ** 31 + 10).then((v) => {
        woke = v;
      });
      await vi.advanceTimersByTimeAsync(60_000);
      expect(woke).toBe(false);
      await vi.advanceTimersByTimeAsync(2 ** 31);
      await slept;
      expect(woke).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('the effect boundary and its deadline', () => {
  // A run on the simulator whose migrateInstance is replaced: it records the signal it was given.
  async function runWith(clockOf: (sim: ReturnType<typeof createSimCluster>) => Clock, hang: boolean) {
    const sim = createSimCluster();
    let seen: AbortSignal | null = null;
    const effects: Effects = {
      ...sim.effects,
      acceptInstance: (input, signal) => {
        seen = signal;
        return hang ? new Promise<void>(() => {}) : sim.effects.acceptInstance(input, signal);
      },
    };
    const out = await runMigration({ instance: 'web1', limits: { stepTimeoutMs: 30_000 } }, effects, {
      clock: clockOf(sim),
    });
    return { out, seen: seen as AbortSignal | null };
  }
  const withoutTimer = (sim: ReturnType<typeof createSimCluster>): Clock => ({
    now: () => sim.clock.now(),
    sleep: (ms, signal) => sim.clock.sleep(ms, signal),
  });

  for (const [name, clockOf] of [
    ['a clock with its own timer', (sim: ReturnType<typeof createSimCluster>) => sim.clock],
    ['a clock with only sleep', withoutTimer],
  ] as const) {
    it(`cuts off a call that never answers and aborts its signal (${name})`, async () => {
      const { out, seen } = await runWith(clockOf, true);
      expect(out.outcome).toBe('reverted');
      expect(out.error).toMatch(/acceptInstance did not answer within 31000 ms/);
      expect(seen?.aborted).toBe(true);
    });
    it(`leaves the signal of a call that answered alone (${name})`, async () => {
      const { out, seen } = await runWith(clockOf, false);
      expect(out.outcome).toBe('migrated');
      expect(seen?.aborted).toBe(false);
    });
  }

  it('sleeps on a timer: true when the time passed, false at once when aborted', async () => {
    const clock = new SimClock();
    expect(await sleepOnTimer((ms, fire) => clock.timer(ms, fire), 1_000)).toBe(true);
    expect(clock.now()).toBe(1_000);
    const stop = new AbortController();
    const sleeping = sleepOnTimer((ms, fire) => clock.timer(ms, fire), 5_000, stop.signal);
    stop.abort();
    expect(await sleeping).toBe(false);
    // Its timer was removed with the abort: nothing is left for the clock to jump to.
    expect(clock.pending).toBe(0);
    expect(clock.now()).toBe(1_000);
  });
});
