import { describe, expect, it } from 'vitest';
import {
  createSimCluster,
  EFFECT_NAMES,
  RunInterrupted,
  runMigration,
  type SimCluster,
} from '../src/index.js';
import { expectTruthfulOutcome, fault, feedback, simulate } from './helpers.js';

/** Runs a migration and drops it (as a dead orchestrator would) on entering `state`. */
async function crashAt(state: string, sim: SimCluster = createSimCluster()) {
  const stop = new AbortController();
  const run = runMigration({ instance: 'web1' }, sim.effects, {
    clock: sim.clock,
    signal: stop.signal,
    onEvent: (e) => {
      if (e.type === 'state' && e.value === state) queueMicrotask(() => stop.abort());
    },
  });
  await expect(run).rejects.toBeInstanceOf(RunInterrupted);
  return sim;
}

describe('cleanup', () => {
  it('is safe on a healthy instance, in Ganeti’s words', async () => {
    const run = await simulate('cleanup');
    expect(run.out).toMatchObject({ outcome: 'cleaned', primaryNode: 'node-a' });
    expect(feedback(run.events)).toEqual([
      '* checking where the instance actually runs (if this hangs, the hypervisor might be in a bad state)',
      '* instance running on: node-a',
      '* instance confirmed to be running on its primary node (node-a)',
      '* closing instance disks on node node-b',
      '* wait until resync is done',
      '* changing into standalone mode',
      '* changing disks into single-master mode',
      '* wait until resync is done',
      '* done',
    ]);
    expectTruthfulOutcome(run);
  });

  it('is safe right after a migration (burnin: migrate, then cleanup)', async () => {
    const migration = await simulate('migration');
    const run = await simulate('cleanup', { sim: migration.sim });
    expect(run.out).toMatchObject({ outcome: 'cleaned', primaryNode: 'node-b' });
    expectTruthfulOutcome(run);
  });

  it('fails, saying what to do, when the instance runs nowhere', async () => {
    const world = createSimCluster().snapshot();
    delete world.vms['node-a']?.web1;
    const sim = createSimCluster(world);
    const run = await simulate('cleanup', { sim });
    expect(run.out.outcome).toBe('failed');
    expect(run.out.error).toMatch(/does not seem to be running at all; .* restarting it on node-a/);
    expect(run.out.left).toContain('instance web1 runs nowhere');
    expect(run.sim.world.violations).toEqual([]);
  });

  it('aborts a migration found on both nodes, looks again, and repairs the disks', async () => {
    const sim = await crashAt('migrating.transferring.polling');
    expect(Object.keys(sim.world.vms).filter((n) => sim.world.vms[n]?.web1)).toEqual(['node-a', 'node-b']);
    const run = await simulate('cleanup', { sim });
    expect(feedback(run.events)).toContain('Trying to cleanup after failed migration');
    expect(run.out).toMatchObject({ outcome: 'cleaned', primaryNode: 'node-a' });
    expectTruthfulOutcome(run);
  });

  it('finishes a handover that completed but was never finalized, instead of killing the live copy', async () => {
    const sim = await crashAt('finalizing.source');
    expect(sim.world.vms['node-a']?.web1?.state).toBe('postmigrate');
    expect(sim.world.vms['node-b']?.web1?.state).toBe('running');
    const uptime = sim.snapshot().vms['node-b']?.web1?.uptimeMs ?? 0;
    const run = await simulate('cleanup', { sim });
    expect(run.out).toMatchObject({ outcome: 'cleaned', primaryNode: 'node-b' });
    expect(feedback(run.events)).toContain('* instance running on secondary node (node-b), updating config');
    // the guest kept running on the target: its uptime only grew
    expect(sim.snapshot().vms['node-b']?.web1?.uptimeMs).toBeGreaterThan(uptime);
    expectTruthfulOutcome(run);
  });

  it('refuses to guess when the instance still runs on both nodes after the abort', async () => {
    const sim = await crashAt('migrating.transferring.polling');
    const run = await simulate('cleanup', { sim, faults: [fault('finalizeMigrationTarget', null)] });
    expect(run.out.outcome).toBe('failed');
    expect(run.out.error).toMatch(/running on two nodes, or the hypervisor is confused/);
    expect(run.out.warnings.join()).toMatch(/Aborting migration failed on target node node-b/);
    expect(run.sim.world.violations).toEqual([]);
  });
});

describe('cleanup after a crash at every state of a migration', async () => {
  const happy = await simulate('migration');
  const states = [...new Set(happy.events.flatMap((e) => (e.type === 'state' ? [e.value] : [])))].filter(
    (s) => s !== 'migrated',
  );

  it.each(states)('crash on entering %s, then cleanup: at rest where the config says', async (state) => {
    const sim = await crashAt(state);
    expect(sim.world.violations).toEqual([]);
    const run = await simulate('cleanup', { sim });
    expect(run.out.outcome).toBe('cleaned');
    expectTruthfulOutcome(run);
  });
});

describe('a failure at every effect call of a cleanup', async () => {
  // The hardest starting point: a crash mid-copy leaves the instance on both nodes, dual-master.
  const start = (await crashAt('migrating.transferring.polling')).snapshot();
  const probe = await simulate('cleanup', { spec: start });
  const points = EFFECT_NAMES.flatMap((effect) =>
    Array.from({ length: probe.sim.calls[effect] }, (_, i) => ({ effect, call: i + 1 })),
  );

  it.each(points)(
    'error in $effect call $call: truthful outcome, and a second cleanup repairs',
    async (p) => {
      const run = await simulate('cleanup', { spec: start, faults: [fault(p.effect, p.call)] });
      expect(['cleaned', 'failed', 'rejected']).toContain(run.out.outcome);
      expectTruthfulOutcome(run);
      const again = await simulate('cleanup', { sim: run.sim });
      expect(again.out.outcome).toBe('cleaned');
      expectTruthfulOutcome(again);
    },
  );
});
