import { describe, expect, it } from 'vitest';
import {
  createSimCluster,
  type RunEvent,
  runCleanup,
  runEvacuation,
  runFailover,
  runMigration,
  type WorldSpec,
} from '../src/index.js';
import { expectTruthfulOutcome } from './helpers.js';

/** Runs a migration and has the operator abort on entering `state`. */
async function abortAt(
  state: string | ((e: RunEvent) => boolean),
  spec: WorldSpec = {},
  what: 'migration' | 'cleanup' = 'migration',
) {
  const when = typeof state === 'string' ? (e: RunEvent) => e.type === 'state' && e.value === state : state;
  const sim = createSimCluster(spec);
  const before = sim.snapshot();
  const abort = new AbortController();
  const events: RunEvent[] = [];
  const run = what === 'migration' ? runMigration : runCleanup;
  const out = await run({ instance: 'web1' }, sim.effects, {
    clock: sim.clock,
    abort: abort.signal,
    onEvent: (e) => {
      events.push(e);
      if (when(e)) abort.abort();
    },
  });
  const feedback = events.flatMap((e) => (e.type === 'feedback' ? [e.message] : []));
  return { out, sim, before, events, feedback };
}

describe('an operator abort', () => {
  it('before anything is touched: refused, nothing changed', async () => {
    const r = await abortAt('checkingPrereqs.checkingNodes');
    expect(r.out).toMatchObject({
      outcome: 'rejected',
      verdict: 'aborted',
      error: 'Aborted by the operator; nothing was touched',
    });
    expectTruthfulOutcome({ ...r, calls: [] });
  });

  it('that came before the run started is honoured at its first safe point, touching nothing', async () => {
    const aborted = AbortSignal.abort();
    for (const [name, run] of [
      ['migration', runMigration],
      ['failover', runFailover],
    ] as const) {
      const sim = createSimCluster();
      const before = sim.snapshot();
      const out = await run({ instance: 'web1' }, sim.effects, { clock: sim.clock, abort: aborted });
      expect(out, name).toMatchObject({ outcome: 'rejected', verdict: 'aborted' });
      const after = sim.snapshot();
      expect(after.config, name).toEqual(before.config);
      expect(after.resources, name).toEqual(before.resources);
      // The guest ran on where it was (only its uptime moved with the clock).
      const guests = (w: typeof after) =>
        Object.entries(w.vms).flatMap(([node, vms]) =>
          Object.entries(vms).map(([i, v]) => `${i}@${node}:${v.state}:${v.memoryMiB}:${v.migration}`),
        );
      expect(guests(after), name).toEqual(guests(before));
    }
    const sim = createSimCluster();
    const started: string[] = [];
    const drain = await runEvacuation({ node: 'node-a' }, sim.effects, {
      clock: sim.clock,
      abort: aborted,
      onRun: (n) => started.push(n.request.instance),
    });
    expect(drain.outcome).toBe('aborted');
    expect(started).toEqual([]);
  });

  it('while the disks go dual-master: waits for the step, then reverts the disks', async () => {
    const r = await abortAt('dualMaster.syncing.polling');
    expect(r.out).toMatchObject({ outcome: 'reverted', primaryNode: 'node-a' });
    expect(r.out.error).toMatch(/Aborted by the operator while the disks went dual-master/);
    expectTruthfulOutcome({ ...r, calls: [] });
  });

  it('during the memory copy, before the point of no return: aborts the handover and reverts', async () => {
    const r = await abortAt('migrating.transferring.polling');
    expect(r.out).toMatchObject({ outcome: 'reverted', primaryNode: 'node-a' });
    expect(r.feedback).toContain('Aborted by the operator, aborting');
    expectTruthfulOutcome({ ...r, calls: [] });
  });

  it('after the copy completed: refuses, says why, and finishes forward', async () => {
    const r = await abortAt('finalizing.target');
    expect(r.out).toMatchObject({ outcome: 'migrated', primaryNode: 'node-b' });
    expect(r.feedback).toContain(
      'Abort refused: the memory copy has passed the point of no return; finishing the migration forward',
    );
    expectTruthfulOutcome({ ...r, calls: [] });
  });

  it('after the postcopy switch: refuses and finishes forward', async () => {
    const r = await abortAt(
      (e) => e.type === 'progress' && e.kind === 'memory' && e.status === 'postcopy-active',
      {
        settings: { postcopy: true },
      },
    );
    expect(r.out.outcome).toBe('migrated');
    expect(
      r.feedback.some((f) =>
        f.startsWith('Abort refused: the memory copy has passed the point of no return'),
      ),
    ).toBe(true);
    expectTruthfulOutcome({ ...r, calls: [] });
  });

  it('after the commit: refuses and finishes the switch back to single-master', async () => {
    const r = await abortAt('singleMaster.goingStandalone');
    expect(r.out.outcome).toBe('migrated');
    expect(
      r.feedback.some((f) => f.startsWith('Abort refused: the instance already runs on the target')),
    ).toBe(true);
  });

  it('during a cleanup: refuses, since the cleanup is the repair', async () => {
    const r = await abortAt('singleMaster.goingStandalone', {}, 'cleanup');
    expect(r.out.outcome).toBe('cleaned');
    expect(r.feedback.some((f) => f.startsWith('Abort refused'))).toBe(true);
  });
});

describe('an operator abort during a long poll', () => {
  // A slow copy and a slow resync, and long poll windows: without hurrying the poll in flight, the
  // abort would wait out the window (60 s of simulated time) before it took effect.
  const limits = { pollWindowMs: 60_000, syncNoProgressMs: 600_000, syncTotalMs: 100_000_000 };
  const slowCopy: WorldSpec = { settings: { migrationMiBps: 1 } };
  const slowResync: WorldSpec = { settings: { resyncKiBps: 0.5 } };

  /** Asks for an abort one simulated second into a long poll of `effect` (one that may block). */
  async function abortDuring(effect: 'migrationStatus' | 'waitSync', spec: WorldSpec) {
    const sim = createSimCluster(spec);
    const abort = new AbortController();
    let requestedAt: number | null = null;
    let tookEffectAt: number | null = null;
    const out = await runMigration({ instance: 'web1', limits }, sim.effects, {
      clock: sim.clock,
      abort: abort.signal,
      onCall: (c) => {
        const blocking = (c.input as { timeoutMs: number }).timeoutMs > 0;
        if (requestedAt !== null || c.phase !== 'start' || c.effect !== effect || !blocking) return;
        requestedAt = Number.NaN;
        void sim.clock.sleep(1_000).then(() => {
          requestedAt = sim.clock.now();
          abort.abort();
        });
      },
      onEvent: (e) => {
        // In effect once the run leaves the poll for the way back.
        if (
          Number.isFinite(requestedAt) &&
          tookEffectAt === null &&
          e.type === 'state' &&
          !e.value.includes('polling')
        )
          tookEffectAt = sim.clock.now();
      },
    });
    return { out, waitedMs: (tookEffectAt ?? Number.NaN) - (requestedAt ?? Number.NaN) };
  }

  it('of the memory copy is hurried: the poll answers at once and the run reverts', async () => {
    const r = await abortDuring('migrationStatus', slowCopy);
    expect(r.out).toMatchObject({ outcome: 'reverted', primaryNode: 'node-a' });
    expect(r.waitedMs).toBeLessThan(limits.pollWindowMs / 10);
  });

  it('of a resync is hurried too', async () => {
    const r = await abortDuring('waitSync', slowResync);
    expect(r.out).toMatchObject({ outcome: 'reverted', primaryNode: 'node-a' });
    expect(r.waitedMs).toBeLessThan(limits.pollWindowMs / 10);
  });
});
