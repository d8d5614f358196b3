import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createSimCluster,
  createWorld,
  EFFECT_NAMES,
  type EffectName,
  linkBetween,
  MACHINES,
  restStateProblems,
  runFailover,
  runMachine,
  runRejoin,
  type WorldSpec,
} from '../src/index.js';
import { linksOf } from '../src/sim/drbd.js';
import { cli, expectTruthfulOutcome, fault, simulate } from './helpers.js';
import { tempDir } from './tmp.js';

/**
 * Issue 21, item 3 in the model: web1's disks have three diskful copies (DRBD 9), node-a primary,
 * node-b secondary, node-c the third copy, node-d the diskless tiebreaker. A migration may go to
 * either of the others; the third's connections never allow two primaries.
 */
const spec: WorldSpec = {
  nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {}, 'node-d': {} },
  instances: [
    {
      name: 'web1',
      primary: 'node-a',
      secondary: 'node-b',
      thirdCopy: 'node-c',
      tiebreaker: 'node-d',
      quorum: true,
      memoryMiB: 2048,
      disksMiB: [10240, 4096],
    },
  ],
};

describe('three diskful copies on the simulated cluster (DRBD 9)', () => {
  it('migrates to the third copy: one commit makes node-c primary, node-a secondary and node-b the third; two primaries were allowed on the node-a/node-c connection only', async () => {
    const sim = createSimCluster(spec);
    const allowed = new Set<string>();
    sim.onStep = () => {
      for (const r of Object.values(sim.world.resources))
        for (const l of r.links)
          if (l.ends.some((n) => l.net[n]?.allowTwoPrimaries)) allowed.add([...l.ends].sort().join('/'));
    };
    const run = await simulate('migration', { sim, input: { targetNode: 'node-c' } });
    expect(run.out).toMatchObject({ outcome: 'migrated', primaryNode: 'node-c' });
    expectTruthfulOutcome(run, 'web1', 'node-c');
    expect(sim.world.config.instances.web1).toMatchObject({
      primaryNode: 'node-c',
      secondaryNode: 'node-a',
      thirdCopy: 'node-b',
    });
    expect(sim.world.commits.web1).toBe(1);
    expect([...allowed]).toEqual(['node-a/node-c']);
    // Every copy connected to each other, UpToDate, single-master.
    for (const r of Object.values(sim.world.resources)) {
      expect(r.links).toHaveLength(3);
      for (const l of r.links) expect(Object.values(l.connection)).toEqual(['Connected', 'Connected']);
      expect(Object.values(r.local).map((l) => l.diskState)).toEqual(['UpToDate', 'UpToDate', 'UpToDate']);
    }
    // And back to the node-a through the pair the commit made.
    const back = await simulate('migration', { sim });
    expect(back.out).toMatchObject({ outcome: 'migrated', primaryNode: 'node-a' });
    expect(sim.world.config.instances.web1).toMatchObject({
      primaryNode: 'node-a',
      secondaryNode: 'node-c',
      thirdCopy: 'node-b',
    });
  });

  it('migrates to the secondary with the third left as it is: connected to both, UpToDate, named third', async () => {
    const run = await simulate('migration', { spec });
    expectTruthfulOutcome(run);
    expect(run.sim.world.config.instances.web1).toMatchObject({
      primaryNode: 'node-b',
      secondaryNode: 'node-a',
      thirdCopy: 'node-c',
    });
  });

  it('refuses a target that holds no copy, naming the secondary and the third', async () => {
    const run = await simulate('migration', { spec, input: { targetNode: 'node-d' } });
    expect(run.out.outcome).toBe('rejected');
    expect(run.out.error).toBe(
      'Instances with disk types drbd cannot be migrated to arbitrary nodes: node-d is not the secondary node of web1 (node-b) nor its third copy (node-c)',
    );
    expectTruthfulOutcome(run);
  });

  it('refuses a replace-secondary, which would connect the new copy to one peer only, before touching anything', async () => {
    const sim = createSimCluster(spec);
    const before = JSON.stringify(sim.snapshot().resources);
    const replace = await runMachine(
      MACHINES.changeSecondary,
      { instance: 'web1', newSecondary: 'node-d' },
      sim.effects,
      { clock: sim.clock },
    );
    expect(replace.outcome).toBe('rejected');
    expect(replace.error).toMatch(/web1 has a third copy on node-c: replace-secondary would not connect/);
    expect(JSON.stringify(sim.snapshot().resources)).toBe(before);
  });

  it('fails over to the secondary when the primary dies; the third stays UpToDate and follows the new primary', async () => {
    const sim = createSimCluster(spec);
    sim.killNode('node-a');
    const out = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(out).toMatchObject({ outcome: 'failedOver', primaryNode: 'node-b' });
    expect(sim.world.violations).toEqual([]);
    const r = sim.world.resources['web1-disk0']!;
    expect(r.local['node-c']).toEqual({ role: 'Secondary', diskState: 'UpToDate' });
    expect(linkBetween(r, 'node-b', 'node-c')?.connection).toEqual({
      'node-b': 'Connected',
      'node-c': 'Connected',
    });
    // node-c received node-b's writes since: on its link to the dead node-a it is the one ahead.
    await sim.clock.sleep(5_000);
    const disks = sim.world.config.instances.web1!.disks;
    await sim.effects.nodeDiskStatus(
      { instance: 'web1', node: 'node-c', disks, timeoutMs: 1000 },
      new AbortController().signal,
    );
    expect(linkBetween(r, 'node-a', 'node-c')?.dirtyKiB['node-c'] ?? 0).toBeGreaterThan(0);
    expect(linksOf(r, 'node-c')).toHaveLength(2);
  });

  it('fails over to the third copy when asked (--target): one commit makes it primary, the dead node secondary, the secondary the third; the rejoin brings the dead node back to both', async () => {
    const sim = createSimCluster(spec);
    sim.killNode('node-a');
    const out = await runFailover(
      { instance: 'web1', sourceIsDown: true, targetNode: 'node-c' },
      sim.effects,
      {
        clock: sim.clock,
      },
    );
    expect(out).toMatchObject({ outcome: 'failedOver', primaryNode: 'node-c' });
    expect(sim.world.violations).toEqual([]);
    expect(sim.world.config.instances.web1).toMatchObject({
      primaryNode: 'node-c',
      secondaryNode: 'node-a',
      thirdCopy: 'node-b',
    });
    expect(Object.keys(sim.world.vms).filter((n) => sim.world.vms[n]?.web1 !== undefined)).toEqual([
      'node-c',
    ]);
    sim.reviveNode('node-a');
    const back = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(back.outcome).toBe('rejoined');
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    expect(sim.world.violations).toEqual([]);
  });

  it.each([false, true])(
    'a rejoin of the dead primary (wrote alone before it died: %s) reconnects it to the survivor and to the third copy, discarding its side on both: three copies in sync, nothing of theirs overwritten',
    async (wroteAlone) => {
      const sim = createSimCluster(spec);
      sim.killNode('node-a', { wroteAlone });
      const out = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
        clock: sim.clock,
      });
      expect(out.outcome).toBe('failedOver');
      await sim.clock.sleep(5_000);
      sim.reviveNode('node-a');
      const said: string[] = [];
      const back = await runRejoin({ instance: 'web1' }, sim.effects, {
        clock: sim.clock,
        onEvent: (e) => {
          if (e.type === 'feedback') said.push(e.message);
        },
      });
      expect(back.error ?? null).toBeNull();
      expect(back.outcome).toBe('rejoined');
      expect(said).toContain('* reconnecting node-a to node-c, the third copy');
      expect(sim.world.violations).toEqual([]);
      expect(restStateProblems(sim.world, 'web1')).toEqual([]);
      for (const r of Object.values(sim.world.resources))
        for (const l of r.links) expect(l.dirtyKiB).toEqual({});
      // Run again: nothing to do, all three still connected.
      const again = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
      expect(again.outcome).toBe('rejoined');
      expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    },
  );
});

/** Every call of a failover to the third copy failed once; a run that stops is run again, as its hint says. */
describe('a failure at every effect call of a failover to the third copy', async () => {
  const dead = () => {
    const sim = createSimCluster(spec);
    sim.killNode('node-a');
    return sim;
  };
  const input = { instance: 'web1', sourceIsDown: true, targetNode: 'node-c' } as const;
  const happy = dead();
  await runFailover(input, happy.effects, { clock: happy.clock });
  const points = EFFECT_NAMES.flatMap((effect: EffectName) =>
    Array.from({ length: happy.calls[effect] }, (_, i) => ({ effect, call: i + 1 })),
  );

  it.each(points)(
    'error in $effect call $call: no rule broken, and the instance ends on one node, the one the config names',
    async (p) => {
      const sim = dead();
      sim.faults = [fault(p.effect, p.call)];
      const out = await runFailover(input, sim.effects, { clock: sim.clock });
      expect(sim.world.violations).toEqual([]);
      sim.faults = [];
      if (out.outcome !== 'failedOver') {
        const committed = sim.world.config.instances.web1?.primaryNode === 'node-c';
        const again = await runFailover(
          committed ? { ...input, cleanup: true, targetNode: undefined } : input,
          sim.effects,
          {
            clock: sim.clock,
          },
        );
        expect([again.outcome, again.error ?? null]).toEqual(['failedOver', null]);
      }
      expect(sim.world.violations).toEqual([]);
      expect(sim.world.config.instances.web1).toMatchObject({
        primaryNode: 'node-c',
        secondaryNode: 'node-a',
        thirdCopy: 'node-b',
      });
      const running = Object.keys(sim.world.vms).filter((n) => sim.world.vms[n]?.web1?.state === 'running');
      expect(running).toEqual(['node-c']);
    },
  );
});

describe('three copies from the command line (a saved simulated cluster)', () => {
  it('migrate --target names the third copy; the file rotates the three nodes; a cleanup of the three changes nothing', async () => {
    const dir = tempDir('drbd-migrate-three-');
    try {
      const file = join(dir, 'w.json');
      writeFileSync(file, JSON.stringify(createWorld(spec)));
      const moved = await cli('migrate', 'web1', '--world', file, '--target', 'node-c', '--quiet');
      expect([moved.code, moved.stderr]).toEqual([0, []]);
      const world = () => JSON.parse(readFileSync(file, 'utf8'));
      expect(world().config.instances.web1).toMatchObject({
        primaryNode: 'node-c',
        secondaryNode: 'node-a',
        thirdCopy: 'node-b',
      });
      const cleaned = await cli('migrate', 'web1', '--world', file, '--cleanup');
      expect([cleaned.code, cleaned.stderr]).toEqual([0, []]);
      expect(cleaned.stdout).toContain('* nothing of a migration on node-b, the third copy');
      expect(world().violations).toEqual([]);
      // A failover to the third stopped before its commit: the hint runs it again, to the same node.
      expect((await cli('power', 'node-c', 'off', '--world', file)).code).toBe(0);
      const stopped = await cli(
        'failover',
        'web1',
        '--world',
        file,
        '--source-is-down',
        '--target',
        'node-b',
        '--fail',
        'setPrimaryNode',
      );
      expect(stopped.code).not.toBe(0);
      expect([...stopped.stdout, ...stopped.stderr].join('\n')).toContain(
        `drbd-migrate failover web1 --world ${file} --target node-b --source-is-down`,
      );
      const over = await cli(
        'failover',
        'web1',
        '--world',
        file,
        '--source-is-down',
        '--target',
        'node-b',
        '--quiet',
      );
      expect([over.code, over.stderr]).toEqual([0, []]);
      expect(world().config.instances.web1).toMatchObject({
        primaryNode: 'node-b',
        secondaryNode: 'node-c',
        thirdCopy: 'node-a',
      });
      const wrong = await cli('migrate', 'web1', '--world', file, '--target', 'node-d');
      expect(wrong.code).toBe(2);
      expect(wrong.stderr.join('\n')).toContain(
        'node-d is not the secondary node of web1 (node-c) nor its third copy (node-a)',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a drain of a node holding one of three copies', () => {
  it('moves the primary away, lists the copies it does not move with why, ends incomplete and keeps them', async () => {
    const dir = tempDir('drbd-migrate-three-');
    try {
      const file = join(dir, 'w.json');
      writeFileSync(file, JSON.stringify(createWorld(spec)));
      const state = join(dir, 'state');
      const third = await cli('evacuate', 'node-c', '--all', '--world', file, '--state-dir', state);
      expect(third.code).toBe(1);
      expect(third.stdout.join('\n')).toContain(
        'node-c holds the third copy of web1, which has three: a drain does not move copies of a three-copy instance',
      );
      const primary = await cli('evacuate', 'node-a', '--all', '--world', file, '--state-dir', state);
      expect(primary.code).toBe(1);
      const w = JSON.parse(readFileSync(file, 'utf8'));
      expect(w.config.instances.web1).toMatchObject({
        primaryNode: 'node-b',
        secondaryNode: 'node-a',
        thirdCopy: 'node-c',
      });
      expect(primary.stdout.join('\n')).toContain(
        'its secondary stays on node-a: web1 has three copies (the third on node-c): a drain does not move copies of a three-copy instance',
      );
      expect(w.violations).toEqual([]);
      expect(Object.keys(w.resources['web1-disk0'].local).sort()).toEqual(['node-a', 'node-b', 'node-c']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Every call a migration to the third copy makes, each failed once; then the cleanup, told nothing. */
describe('a failure at every effect call of a migration to the third copy, then a cleanup that finds it', async () => {
  const happy = await simulate('migration', { spec, input: { targetNode: 'node-c' } });
  const points = EFFECT_NAMES.flatMap((effect: EffectName) =>
    Array.from({ length: happy.sim.calls[effect] }, (_, i) => ({ effect, call: i + 1 })),
  );

  it('has calls to fail', () => {
    expect(points.length).toBeGreaterThan(20);
  });

  it.each(points)(
    'error in $effect call $call: the outcome tells the truth, the cleanup repairs',
    async (p) => {
      const run = await simulate('migration', {
        spec,
        faults: [fault(p.effect, p.call)],
        input: { targetNode: 'node-c' },
      });
      expectTruthfulOutcome(run, 'web1', 'node-c');
      if (run.out.outcome === 'needsCleanup' || run.out.outcome === 'failed') {
        const cleanup = await simulate('cleanup', { sim: run.sim });
        expect(cleanup.out.outcome).toBe('cleaned');
        expectTruthfulOutcome(cleanup);
        expect(restStateProblems(run.sim.world, 'web1')).toEqual([]);
      }
    },
  );

  it.each(points)(
    'lost answer of $effect call $call: the outcome tells the truth, the cleanup repairs',
    async (p) => {
      const run = await simulate('migration', {
        spec,
        faults: [fault(p.effect, p.call, 'lost')],
        input: { targetNode: 'node-c' },
      });
      expectTruthfulOutcome(run, 'web1', 'node-c');
      if (run.out.outcome === 'needsCleanup' || run.out.outcome === 'failed') {
        const cleanup = await simulate('cleanup', { sim: run.sim });
        expect(cleanup.out.outcome).toBe('cleaned');
        expectTruthfulOutcome(cleanup);
      }
    },
  );
});
