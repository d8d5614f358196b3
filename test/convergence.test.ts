import { describe, expect, it } from 'vitest';
import { issuesText } from '../machines/index.js';
import { inputWithLimits } from '../src/cli/cluster.js';
import { ClusterFile } from '../src/cluster/index.js';
import { tuningCommands } from '../src/drivers/qemu.js';
import { vmOn } from '../src/sim/hypervisor.js';
import { expectTruthfulOutcome, fault, feedback, simulate } from './helpers.js';

/**
 * A guest that dirties memory faster than the link copies it (issue 12): the convergence policy's
 * stages, in order, each taken only when the dirty passes stop shrinking, and a stated end when none
 * is left. The simulator copies pass by pass (src/sim/hypervisor.ts); the link gives 128 MiB/s (the
 * policy's default bandwidth), so a 512 MiB working set needs a downtime of 4 s to go in one stop.
 */
const busy = (dirtyMiBps: number, workingSetMiB = 512) => ({
  nodes: { 'node-a': {}, 'node-b': {} },
  instances: [
    { name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048, dirtyMiBps, workingSetMiB },
  ],
});

describe('the convergence policy on the simulated cluster', () => {
  it('leaves a copy alone that converges by itself', async () => {
    const run = await simulate('migration', { spec: busy(60) });
    expect(run.out.outcome).toBe('migrated');
    expect(run.out.tried).toBeUndefined();
    expectTruthfulOutcome(run);
  });

  it('a copy predicted never to converge, even by the most hopeful reading, is refused before anything is touched', async () => {
    const run = await simulate('migration', { spec: busy(400) });
    expect(run.out.outcome).toBe('rejected');
    expect(run.out.error).toMatch(
      /^Not migrating instance web1: predicted: never converges: the guest dirties 400 MiB\/s, the copy sends 128 MiB\/s, and 400 MiB stay dirty each pass, more than 2000 ms of downtime can send; it would move with a downtime cap of 3125 ms or more, or auto-converge, or postcopy allowed, or a faster link, or a non-live migration; nothing was touched/,
    );
    expect(run.calls.map((c) => c.effect)).not.toContain('closeDisks');
    expectTruthfulOutcome(run);
    // With a stage that can help, it goes ahead, saying what it predicts.
    const helped = await simulate('migration', {
      spec: busy(400),
      input: { convergence: { downtimeCapMs: 4000 } },
    });
    expect(helped.out.outcome).toBe('migrated');
    expect(feedback(helped.events).join('\n')).toMatch(
      /\* predicted: if the guest rewrites the same pages, converges once its downtime limit is raised/,
    );
  });

  it('without a stage left, aborts and reverts, saying it did not converge and what it tried', async () => {
    // The prediction off: the copy is tried and judged pass by pass.
    const run = await simulate('migration', { spec: busy(400), input: { convergence: { predict: false } } });
    expect(run.out.outcome).toBe('reverted');
    expect(run.out.tried).toEqual([
      'downtime limit 300 → 600 ms',
      'downtime limit 600 → 1200 ms',
      'downtime limit 1200 → 2000 ms',
    ]);
    expect(run.out.error).toMatch(
      /the memory copy did not converge \(3 dirty passes in a row .*\); tried: downtime limit 300 → 600 ms, then .* → 2000 ms; nothing left to try/,
    );
    expect(feedback(run.events)).toContain('Migration does not converge, aborting');
    expectTruthfulOutcome(run);
    // The policy off (the cap at the start): the same end, with nothing tried.
    const off = await simulate('migration', {
      spec: busy(400),
      input: { convergence: { downtimeCapMs: 300, predict: false } },
    });
    expect(off.out.outcome).toBe('reverted');
    expect(off.out.error).toMatch(/did not converge .* tried: nothing \(the policy allows no stage\)/);
    expectTruthfulOutcome(off);
  });

  it('raises the downtime limit stepwise until the working set fits', async () => {
    const run = await simulate('migration', {
      spec: busy(400),
      input: { convergence: { downtimeCapMs: 8000 } },
    });
    expect(run.out.outcome).toBe('migrated');
    expect(run.out.tried).toEqual([
      'downtime limit 300 → 600 ms',
      'downtime limit 600 → 1200 ms',
      'downtime limit 1200 → 2400 ms',
      'downtime limit 2400 → 4800 ms',
    ]);
    const raises = run.calls
      .filter((c) => c.effect === 'setMigrationParameters')
      .map((c) => c.input.downtimeMs);
    expect(raises).toEqual([300, 600, 1200, 2400, 4800]);
    expectTruthfulOutcome(run);
  });

  it('then throttles the guest (auto-converge), prepared before the copy', async () => {
    const run = await simulate('migration', {
      spec: busy(400),
      input: { convergence: { autoConverge: true } },
    });
    expect(run.out.outcome).toBe('migrated');
    expect(run.out.tried?.at(-1)).toBe('auto-converge (guest CPUs throttled)');
    const params = run.calls.filter((c) => c.effect === 'setMigrationParameters').map((c) => c.input);
    expect(params[0]).toMatchObject({
      bandwidthMiBps: 128,
      downtimeMs: 300,
      prepare: { autoConverge: true },
    });
    expect(params.at(-1)).toMatchObject({ throttle: true });
    expectTruthfulOutcome(run);
  });

  it('then switches to postcopy, the point of no return, after enough dirty passes', async () => {
    const run = await simulate('migration', {
      spec: busy(64 * 1024),
      input: { convergence: { autoConverge: true, postcopy: true, postcopyAfterPasses: 12 } },
    });
    expect(run.out.outcome).toBe('migrated');
    expect(run.out.tried?.at(-1)).toBe('postcopy');
    const accept = run.calls.find((c) => c.effect === 'acceptInstance');
    expect(accept?.input.postcopy).toBe(true);
    const postcopy = run.calls.findIndex((c) => c.effect === 'startPostcopy');
    const passes = run.events.flatMap((e) =>
      e.type === 'feedback' && e.message.startsWith('* the copy does not converge') ? [e.message] : [],
    );
    expect(passes.at(-1)).toBe('* the copy does not converge: postcopy');
    expect(postcopy).toBeGreaterThan(0);
    expectTruthfulOutcome(run);
  });

  it('a copy that does not converge on a guest with the policy off for postcopy never switches', async () => {
    const run = await simulate('migration', {
      spec: busy(64 * 1024),
      input: { convergence: { autoConverge: true } },
    });
    expect(run.out.outcome).toBe('reverted');
    expect(run.calls.some((c) => c.effect === 'startPostcopy')).toBe(false);
    expect(run.out.tried).toContain('auto-converge (guest CPUs throttled)');
    expectTruthfulOutcome(run);
  });

  it('a non-live copy pauses the guest: nothing is dirtied, nothing tried', async () => {
    const run = await simulate('migration', { spec: busy(400), input: { mode: 'non-live' } });
    expect(run.out.outcome).toBe('migrated');
    expect(run.out.tried).toBeUndefined();
    expectTruthfulOutcome(run);
  });
});

describe('memory put back after a failed migration (Ganeti forgets to)', () => {
  const tight = {
    nodes: { 'node-a': {}, 'node-b': { memoryMiB: 1536 } },
    instances: [
      { name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048, minMemoryMiB: 1024 },
    ],
  };

  it('balloons the instance back up on the source when the migration is reverted', async () => {
    const run = await simulate('migration', { spec: tight, faults: [fault('acceptInstance', 1)] });
    expect(run.out.outcome).toBe('reverted');
    expect(feedback(run.events)).toContain('* setting instance memory back to 2048 MiB');
    expect(vmOn(run.sim.world, 'node-a', 'web1')?.memoryMiB).toBe(2048);
    expectTruthfulOutcome(run);
  });

  it('says so when the memory cannot be put back, and still ends reverted', async () => {
    const run = await simulate('migration', {
      spec: tight,
      faults: [fault('acceptInstance', 1), fault('balloonMemory', 2)],
    });
    expect(run.out.outcome).toBe('reverted');
    expect(run.out.warnings.join()).toMatch(/Could not put the memory of web1 back to 2048 MiB on node-a/);
    expect(vmOn(run.sim.world, 'node-a', 'web1')?.memoryMiB).toBe(1536);
    expectTruthfulOutcome(run);
  });

  it('puts it back when the copy is given up for not converging', async () => {
    const spec = { ...tight, instances: [{ ...tight.instances[0]!, dirtyMiBps: 400, workingSetMiB: 512 }] };
    const run = await simulate('migration', { spec, input: { convergence: { predict: false } } });
    expect(run.out.outcome).toBe('reverted');
    expect(vmOn(run.sim.world, 'node-a', 'web1')?.memoryMiB).toBe(2048);
  });
});

describe('the policy at the boundaries', () => {
  it('QEMU gets capabilities before the copy and parameters during it', () => {
    expect(
      tuningCommands({
        bandwidthMiBps: 1,
        downtimeMs: 300,
        prepare: { autoConverge: true, postcopy: false },
      }),
    ).toEqual([
      [
        'migrate-set-capabilities',
        {
          capabilities: [
            { capability: 'events', state: true },
            { capability: 'auto-converge', state: true },
            { capability: 'postcopy-ram', state: false },
          ],
        },
      ],
      [
        'migrate-set-parameters',
        { 'cpu-throttle-initial': 1, 'cpu-throttle-increment': 1, 'max-cpu-throttle': 1 },
      ],
      ['migrate-set-parameters', { 'max-bandwidth': 1024 * 1024, 'downtime-limit': 300 }],
    ]);
    expect(tuningCommands({ downtimeMs: 600 })).toEqual([
      ['migrate-set-parameters', { 'downtime-limit': 600 }],
    ]);
    expect(tuningCommands({ throttle: true })).toEqual([
      ['migrate-set-parameters', { 'cpu-throttle-increment': 10, 'max-cpu-throttle': 99 }],
    ]);
  });

  it('the cluster file’s options become the run’s policy; bad values are refused with the key', async () => {
    const file = {
      version: 1,
      nodes: [
        { name: 'a', address: '127.0.0.1', replicationAddress: '127.0.0.1', knownHosts: '/k' },
        { name: 'b', address: '127.0.0.1', replicationAddress: '127.0.0.1', knownHosts: '/k' },
      ],
      instances: [],
      options: { bandwidthMiBps: 64, convergence: { autoConverge: true, downtimeCapMs: 4000 } },
    };
    const cluster = ClusterFile.parse(file);
    expect(inputWithLimits(cluster, { instance: 'web1' }).convergence).toEqual({
      autoConverge: true,
      downtimeCapMs: 4000,
      bandwidthMiBps: 64,
    });
    const bad = { ...file, options: { convergence: { stallPasses: 0, postcopyAfter: 2 } } };
    const refused = ClusterFile.safeParse(bad);
    expect(refused.success).toBe(false);
    expect(issuesText(refused.error?.issues ?? [])).toMatch(
      /options\.convergence: unknown key 'postcopyAfter'|options\.convergence\.stallPasses/,
    );
  });

  it('the library refuses a bad policy before touching a node', async () => {
    const run = await simulate('migration', { input: { convergence: { downtimeCapMs: 3e9 } } as never });
    expect(run.out.outcome).toBe('rejected');
    expect(run.out.error).toMatch(/convergence\.downtimeCapMs: must be at most 2000000 ms/);
    expect(run.calls).toEqual([]);
  });
});
