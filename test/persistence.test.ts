import { describe, expect, it } from 'vitest';
import { createSimCluster, type RunEvent, RunInterrupted, runMigration } from '../src/index.js';

interface Persisted {
  value: unknown;
  context: { watch: { startedAt: number; lastAt: number } | null };
}

describe('a persisted migration restored in another actor', () => {
  it('keeps its wait deadlines: they are absolute in the world’s clock, not restarted timers', async () => {
    const sim = createSimCluster({ settings: { guestWriteKiBps: 200 * 1024, resyncKiBps: 2 * 1024 } });
    const input = { instance: 'web1', limits: { syncTotalMs: 30_000 } };
    const stop = new AbortController();
    let saved: Persisted | null = null;
    const first = runMigration(input, sim.effects, {
      clock: sim.clock,
      signal: stop.signal,
      onSnapshot: (s) => {
        const p = s as unknown as Persisted;
        // Crash ten simulated seconds into the dual-master resync.
        if (
          p.context.watch !== null &&
          p.context.watch.lastAt - p.context.watch.startedAt >= 10_000 &&
          saved === null
        ) {
          saved = JSON.parse(JSON.stringify(p));
          queueMicrotask(() => stop.abort());
        }
      },
    });
    await expect(first).rejects.toBeInstanceOf(RunInterrupted);
    const snapshot = saved as Persisted | null;
    expect(snapshot?.value).toEqual({ dualMaster: { syncing: 'polling' } });
    const startedAt = snapshot!.context.watch!.startedAt;

    // The orchestrator stays dead for a while; the world goes on.
    await sim.clock.sleep(8_000);

    const events: RunEvent[] = [];
    const out = await runMigration(input, sim.effects, {
      clock: sim.clock,
      snapshot: snapshot as never,
      onEvent: (e) => events.push(e),
    });
    expect(out.error).toMatch(/Resync did not finish within 30 s/);
    const gaveUp = events.find((e) => e.type === 'state' && e.value.startsWith('singleMaster'));
    expect(gaveUp?.type === 'state' && gaveUp.at).toBeGreaterThanOrEqual(startedAt + 30_000);
    // given up when the original deadline fell due (within one poll), not 30 s after the restore
    expect(gaveUp?.type === 'state' && gaveUp.at).toBeLessThanOrEqual(startedAt + 30_000 + 1_000);
    expect(sim.world.violations).toEqual([]);
  });
});
