import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createSimCluster,
  fileLeases,
  type LeaseStore,
  memoryLeases,
  runMigration,
  withLease,
} from '../src/index.js';
import { tempDir } from './tmp.js';

/** Safety rule 9 across runtimes: the lease every runtime takes where it meets the others. */

function stores(now: () => number): [string, LeaseStore][] {
  return [
    ['in memory (a served world)', memoryLeases(now)],
    ['in files (beside a cluster file)', fileLeases(tempDir('drbd-migrate-leases-'), now)],
  ];
}

describe('a lease store', () => {
  let clock = 1_000_000;
  for (const [name, store] of stores(() => clock)) {
    it(`${name}: one holder at a time; renewed by its holder; lapses when not renewed; released`, async () => {
      expect(await store.acquire('web1', 'a', 30_000)).toEqual({
        held: true,
        holder: 'a',
        untilMs: clock + 30_000,
      });
      expect(await store.acquire('web1', 'b', 30_000)).toEqual({
        held: false,
        holder: 'a',
        untilMs: clock + 30_000,
      });
      expect((await store.acquire('web2', 'b', 30_000)).held).toBe(true);
      clock += 20_000;
      expect(await store.acquire('web1', 'a', 30_000)).toEqual({
        held: true,
        holder: 'a',
        untilMs: clock + 30_000,
      });
      clock += 29_999;
      expect((await store.acquire('web1', 'b', 30_000)).held).toBe(false);
      // Its holder died: nobody renewed it.
      clock += 1;
      expect(await store.acquire('web1', 'b', 30_000)).toMatchObject({ held: true, holder: 'b' });
      await store.release('web1', 'a');
      expect((await store.acquire('web1', 'a', 30_000)).held).toBe(false);
      await store.release('web1', 'b');
      expect((await store.acquire('web1', 'a', 30_000)).held).toBe(true);
    });
  }

  it('in files: many takers at once, one holder', async () => {
    const dir = tempDir('drbd-migrate-leases-');
    const takers = Array.from({ length: 16 }, (_, i) =>
      fileLeases(dir).acquire('web1', `taker ${i}`, 30_000),
    );
    const answers = await Promise.all(takers);
    expect(answers.filter((a) => a.held)).toHaveLength(1);
    expect(new Set(answers.map((a) => a.holder)).size).toBe(1);
    // No guard left behind.
    expect(readdirSync(dir).sort()).toEqual(['web1.lease']);
  });
});

describe('a run holding the lease', () => {
  it('is refused, touching nothing, while another holds it', async () => {
    const sim = createSimCluster();
    const leases = memoryLeases();
    await leases.acquire('web1', 'a Restate invocation', 30_000);
    const out = await runMigration({ instance: 'web1' }, sim.effects, {
      clock: sim.clock,
      lease: { store: leases, holder: 'journal here' },
    });
    expect(out).toMatchObject({ outcome: 'rejected', verdict: 'refused' });
    expect(out.error).toMatch(/^another run holds web1 \(a Restate invocation, its lease until/);
    expect(Object.values(sim.calls).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('gives it up at the end, so the next run takes it', async () => {
    const sim = createSimCluster();
    const leases = memoryLeases();
    const lease = { store: leases, holder: 'journal here' };
    expect((await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock, lease })).outcome).toBe(
      'migrated',
    );
    expect((await leases.acquire('web1', 'someone else', 30_000)).held).toBe(true);
  });

  it('a run that can no longer renew its lease calls no effect again, and says why', async () => {
    const sim = createSimCluster();
    let clock = 0;
    const store: LeaseStore = {
      acquire: async (_, holder, ttlMs) => ({ held: true, holder, untilMs: clock + ttlMs }),
      release: async () => {},
    };
    // The config store stops answering renewals: by the second call, the lease's time has passed.
    const effects = {
      ...sim.effects,
      getInstance: async (...args: Parameters<typeof sim.effects.getInstance>) => {
        const answer = await sim.effects.getInstance(...args);
        clock = 60_000;
        return answer;
      },
    };
    const out = await runMigration({ instance: 'web1' }, effects, {
      clock: sim.clock,
      lease: { store, holder: 'journal here', ttlMs: 30_000, now: () => clock },
    });
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(/the lease on web1 could not be renewed within 30000 ms/);
    // Only the config was read; no node was asked anything, let alone changed.
    expect(Object.entries(sim.calls).filter(([, n]) => n > 0)).toEqual([['getInstance', 1]]);
  });

  it('touches no node once it can no longer count on it', async () => {
    let renewals = 0;
    const store: LeaseStore = {
      acquire: async (_, holder, ttlMs) => {
        renewals++;
        return { held: true, holder, untilMs: Date.now() + ttlMs };
      },
      release: async () => {},
    };
    const checks: string[] = [];
    await withLease(
      { store, holder: 'h', ttlMs: 60_000 },
      'web1',
      () => 'refused',
      async (check) => {
        check();
        checks.push('held');
        return 'done';
      },
    );
    expect(checks).toEqual(['held']);
    expect(renewals).toBe(1);
    // A store that stops answering: once the lease's time has passed, check refuses.
    let clock = 0;
    await expect(
      withLease(
        { store, holder: 'h', ttlMs: 60_000, now: () => clock },
        'web1',
        () => 'refused',
        async (check) => {
          check();
          clock = 60_000;
          check();
          return 'went on';
        },
      ),
    ).rejects.toThrow(
      /the lease on web1 could not be renewed within 60000 ms .* the run touches no node again/,
    );
  });
});
