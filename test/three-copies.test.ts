import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { choosePlacement } from '../machines/index.js';
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
import type { Fault, SimCluster } from '../src/sim/index.js';
import { outcomeProblems } from '../src/testing/oracle.js';
import { viewOfSim } from '../src/testing/world.js';
import { journaledDrain } from './drain.js';
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

/** What a migration's dualMaster leaves on the node-a/node-c connection: two primaries allowed on both sides. */
function dualMasterTowardsThird(sim: SimCluster) {
  for (const name of ['web1-disk0', 'web1-disk1']) {
    const l = linkBetween(sim.world.resources[name]!, 'node-a', 'node-c')!;
    for (const n of l.ends) l.net[n] = { allowTwoPrimaries: true, discardMyData: false };
  }
}

/** Every call of a failover to the third copy failed once; a run that stops is run again, as its hint says. */
describe('a cleanup after a migration to the third copy whose node lost power inside the window', () => {
  it('finds two primaries still allowed on the source’s side towards the third, and repairs that connection', async () => {
    const sim = createSimCluster(spec);
    // What dualMaster leaves between node-a and node-c; then node-c loses power and boots again,
    // its own side of the connection forgotten.
    dualMasterTowardsThird(sim);
    sim.killNode('node-c');
    sim.reviveNode('node-c');
    const cleanup = await simulate('cleanup', { sim });
    expect([cleanup.out.outcome, cleanup.out.error ?? null]).toEqual(['cleaned', null]);
    expect(sim.world.violations).toEqual([]);
    for (const name of ['web1-disk0', 'web1-disk1']) {
      const l = linkBetween(sim.world.resources[name]!, 'node-a', 'node-c')!;
      expect([name, l.net['node-a']?.allowTwoPrimaries ?? false, l.connection]).toEqual([
        name,
        false,
        { 'node-a': 'Connected', 'node-c': 'Connected' },
      ]);
    }
    expect(sim.world.config.instances.web1).toMatchObject({ primaryNode: 'node-a', thirdCopy: 'node-c' });
    // The cleanup repairs the migration's connection only: node-c's to the secondary, which its
    // reboot dropped, stays down until node-c is rejoined.
    expect(restStateProblems(sim.world, 'web1')).toEqual([
      'web1-disk0 is Connecting on node-b towards node-c',
      'web1-disk0 is StandAlone on node-c towards node-b',
      'web1-disk1 is Connecting on node-b towards node-c',
      'web1-disk1 is StandAlone on node-c towards node-b',
    ]);
    const back = await runRejoin({ instance: 'web1', targetNode: 'node-c' }, sim.effects, {
      clock: sim.clock,
    });
    expect([back.outcome, back.error ?? null]).toEqual(['rejoined', null]);
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    expect(sim.world.violations).toEqual([]);
  });
});

describe('a cleanup after a migration to the third copy whose node then stayed down', () => {
  it('reads the source’s side towards the third: two primaries allowed there, the cleanup works towards node-c, cannot reach it, and ends saying node-a still allows two primaries towards it', async () => {
    const sim = createSimCluster(spec);
    dualMasterTowardsThird(sim);
    sim.killNode('node-c');
    const cleanup = await simulate('cleanup', { sim });
    expectTruthfulOutcome(cleanup);
    expect(cleanup.out.outcome).toBe('failed');
    expect(cleanup.out.error).toMatch(/^Can't contact node: node-c: /);
    expect(cleanup.out.left).toEqual([
      'instance web1 on node-a (running); node-c did not answer',
      'could not read the disk status on node-c',
      'node-a towards node-c: web1-disk0 Primary Connecting UpToDate/DUnknown allow-two-primaries',
      'node-a towards node-c: web1-disk1 Primary Connecting UpToDate/DUnknown allow-two-primaries',
    ]);
    expect(cleanup.out.warnings[0]).toMatch(
      /^Could not read the disks on node-c, the third copy \(.*\); node-a's side of their connection is read instead$/,
    );
    // Not touched: a third copy down with nothing of a migration on the source's side is passed by.
    const quiet = createSimCluster(spec);
    quiet.killNode('node-c');
    const passed = await simulate('cleanup', { sim: quiet });
    expect([passed.out.outcome, passed.out.error ?? null]).toEqual(['cleaned', null]);
    expect(passed.events.map((e) => (e.type === 'feedback' ? e.message : ''))).toContain(
      '* node-a allows no second primary towards node-c, the third copy',
    );
  });
});

describe('the third copy’s node returns (rejoin of a third copy)', () => {
  const threeLinks = (sim: SimCluster) =>
    ['web1-disk0', 'web1-disk1'].map((name) => {
      const r = sim.world.resources[name]!;
      return r.links
        .map(
          (l) =>
            `${[...l.ends].sort().join('/')} ${l.ends.map((e) => l.connection[e]).join('/')} ${l.ends.map((e) => r.local[e]?.diskState).join('/')}`,
        )
        .sort();
    });
  const whole = [
    'node-a/node-b Connected/Connected UpToDate/UpToDate',
    'node-a/node-c Connected/Connected UpToDate/UpToDate',
    'node-b/node-c Connected/Connected UpToDate/UpToDate',
  ];

  it('node-c loses power while web1 writes on; rejoin node-c reconnects it to node-a, then node-b, its side discarded: three copies in sync, nothing of the others overwritten', async () => {
    const dir = tempDir('drbd-migrate-three-');
    try {
      const file = join(dir, 'w.json');
      writeFileSync(file, JSON.stringify(createWorld(spec)));
      expect((await cli('power', 'node-c', 'off', '--world', file)).code).toBe(0);
      expect((await cli('power', 'node-c', 'on', '--world', file)).code).toBe(0);
      const r = await cli('rejoin', 'node-c', '--world', file);
      expect([r.code, r.stderr]).toEqual([0, []]);
      expect(r.stdout).toContain('# web1 (node-c holds its third copy)');
      expect(r.stdout).toContain('Rejoining node-c as the third copy of web1 (primary node-a)');
      expect(r.stdout).toContain('* reconnecting node-c to node-b, the secondary');
      const w = JSON.parse(readFileSync(file, 'utf8'));
      expect(w.violations).toEqual([]);
      const sim = createSimCluster(w);
      expect(threeLinks(sim)).toEqual([whole, whole]);
      expect(w.config.instances.web1).toMatchObject({
        primaryNode: 'node-a',
        secondaryNode: 'node-b',
        thirdCopy: 'node-c',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with the secondary down too: node-c reconnects to the primary only, says why, and the secondary’s own rejoin connects the two', async () => {
    const sim = createSimCluster(spec);
    sim.killNode('node-c');
    sim.killNode('node-b');
    await sim.clock.sleep(5_000);
    sim.reviveNode('node-c');
    const events: string[] = [];
    const back = await runRejoin({ instance: 'web1', targetNode: 'node-c' }, sim.effects, {
      clock: sim.clock,
      onEvent: (e) => {
        if (e.type === 'feedback') events.push(e.message);
      },
    });
    expect([back.outcome, back.error ?? null]).toEqual(['rejoined', null]);
    expect(
      events.some(
        (m) =>
          m.startsWith('Cannot read node-b, the secondary') ||
          m.startsWith('node-b, the secondary, is not in sync'),
      ),
    ).toBe(true);
    expect(sim.world.violations).toEqual([]);
    sim.reviveNode('node-b');
    const secondary = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect([secondary.outcome, secondary.error ?? null]).toEqual(['rejoined', null]);
    expect(threeLinks(sim)).toEqual([whole, whole]);
    expect(sim.world.violations).toEqual([]);
  });
});

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
  it('moves the primary away; no new secondary where only the third copy and the tiebreaker are left; no new third copy either, saying why', async () => {
    const dir = tempDir('drbd-migrate-three-');
    try {
      const file = join(dir, 'w.json');
      writeFileSync(file, JSON.stringify(createWorld(spec)));
      const state = join(dir, 'state');
      const third = await cli('evacuate', 'node-c', '--all', '--world', file, '--state-dir', state);
      expect(third.code).toBe(1);
      expect(third.stdout.join('\n')).toContain(
        "its third copy stays on node-c: no node can hold it: node-d is the tiebreaker of web1's resources",
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
        "its secondary stays on node-a: no node can hold it: node-c holds the third copy of web1; node-d is the tiebreaker of web1's resources",
      );
      expect(w.violations).toEqual([]);
      expect(Object.keys(w.resources['web1-disk0'].local).sort()).toEqual(['node-a', 'node-b', 'node-c']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with two more nodes: a drain of the secondary gives web1 node-e, joined to the primary, the third copy and the tiebreaker; then a drain of the primary moves it and replaces its secondary too', async () => {
    const dir = tempDir('drbd-migrate-three-');
    try {
      const file = join(dir, 'w.json');
      writeFileSync(
        file,
        JSON.stringify(createWorld({ ...spec, nodes: { ...spec.nodes, 'node-e': {}, 'node-f': {} } })),
      );
      const state = join(dir, 'state');
      const world = () => JSON.parse(readFileSync(file, 'utf8'));
      const drained = await cli('evacuate', 'node-b', '--all', '--world', file, '--state-dir', state);
      expect([drained.code, drained.stderr]).toEqual([0, []]);
      expect(world().config.instances.web1).toMatchObject({
        primaryNode: 'node-a',
        secondaryNode: 'node-e',
        thirdCopy: 'node-c',
        formerSecondary: null,
      });
      const pairs = (w: { resources: Record<string, { links: { ends: string[] }[] }> }) =>
        w.resources['web1-disk0']!.links.map((l) => [...l.ends].sort().join('/')).sort();
      expect(pairs(world())).toEqual(['node-a/node-c', 'node-a/node-e', 'node-c/node-e']);
      expect(world().resources['web1-disk0'].tiebreakerPeers.sort()).toEqual(['node-a', 'node-c', 'node-e']);
      expect(world().violations).toEqual([]);
      // node-b is empty and drained now; node-a's drain hands web1 to node-e and gives it node-f.
      const primary = await cli('evacuate', 'node-a', '--all', '--world', file, '--state-dir', state);
      expect([primary.code, primary.stderr]).toEqual([0, []]);
      expect(world().config.instances.web1).toMatchObject({
        primaryNode: 'node-e',
        secondaryNode: 'node-f',
        thirdCopy: 'node-c',
      });
      expect(pairs(world())).toEqual(['node-c/node-e', 'node-c/node-f', 'node-e/node-f']);
      expect(Object.keys(world().resources['web1-disk0'].local).sort()).toEqual([
        'node-c',
        'node-e',
        'node-f',
      ]);
      expect(world().violations).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with a fifth node: replace-third-copy moves node-c’s copy, off, to node-e; its old copies wait, named, until rejoin node-c removes them; a drain of node-e then moves the third copy back to node-c', async () => {
    const dir = tempDir('drbd-migrate-three-');
    try {
      const file = join(dir, 'w.json');
      writeFileSync(file, JSON.stringify(createWorld({ ...spec, nodes: { ...spec.nodes, 'node-e': {} } })));
      const state = join(dir, 'state');
      const world = () => JSON.parse(readFileSync(file, 'utf8'));
      const pairs = () =>
        world()
          .resources['web1-disk0']!.links.map((l: { ends: string[] }) => [...l.ends].sort().join('/'))
          .sort();
      expect((await cli('power', 'node-c', 'off', '--world', file)).code).toBe(0);
      const moved = await cli('replace-third-copy', 'web1', '--world', file, '--state-dir', state);
      expect([moved.code, moved.stderr]).toEqual([0, []]);
      expect(moved.stdout).toContain('# new third copy of web1: node-e');
      expect(moved.stdout).toContain(
        'instance web1 runs on: node-a; the config names node-a, third copy node-e',
      );
      expect(world().config.instances.web1).toMatchObject({
        primaryNode: 'node-a',
        secondaryNode: 'node-b',
        thirdCopy: 'node-e',
        formerThirdCopy: 'node-c',
      });
      expect(pairs()).toEqual(['node-a/node-b', 'node-a/node-e', 'node-b/node-e']);
      expect(world().resources['web1-disk0'].tiebreakerPeers.sort()).toEqual(['node-a', 'node-b', 'node-e']);
      expect((await cli('power', 'node-c', 'on', '--world', file)).code).toBe(0);
      const back = await cli('rejoin', 'node-c', '--world', file, '--state-dir', state);
      expect([back.code, back.stderr]).toEqual([0, []]);
      expect(back.stdout).toContain(
        '# web1: removing its old copies from node-c (its third copy was replaced)',
      );
      expect(world().config.instances.web1.formerThirdCopy).toBeNull();
      expect(Object.keys(world().resources['web1-disk0'].local).sort()).toEqual([
        'node-a',
        'node-b',
        'node-e',
      ]);
      // A drain of the new third copy's node, planned first (touching nothing), then run.
      const planned = await cli('evacuate', 'node-e', '--all', '--world', file, '--dry-run');
      expect(planned.code).toBe(0);
      expect(planned.stdout).toContain('# would give web1 the new third copy node-c');
      expect(world().config.instances.web1.thirdCopy).toBe('node-e');
      const drained = await cli('evacuate', 'node-e', '--all', '--world', file, '--state-dir', state);
      expect([drained.code, drained.stderr]).toEqual([0, []]);
      expect(drained.stdout.join('\n')).toContain(
        'node-e holds no DRBD device and no volume of any instance',
      );
      const table = drained.stdout.join('\n');
      expect(table).toMatch(/INSTANCE +RUN +OUTCOME +PRIMARY +THIRD COPY +WHY/);
      expect(table).toMatch(/web1 +changeSecondary +replaced +node-a +node-c/);
      expect(world().config.instances.web1).toMatchObject({
        primaryNode: 'node-a',
        secondaryNode: 'node-b',
        thirdCopy: 'node-c',
        formerThirdCopy: null,
      });
      expect(pairs()).toEqual(['node-a/node-b', 'node-a/node-c', 'node-b/node-c']);
      expect(world().violations).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('placement passes over the third copy’s node and counts a third copy as a copy the node holds', () => {
    const five = createWorld({ ...spec, nodes: { ...spec.nodes, 'node-e': {}, 'node-f': {} } });
    const web1 = five.config.instances.web1!;
    const other = {
      ...web1,
      name: 'db1',
      primaryNode: 'node-b',
      secondaryNode: 'node-a',
      thirdCopy: 'node-e',
    };
    const facts = (node: string) => ({
      node,
      config: { name: node, drained: false },
      memoryFreeMiB: 1 << 20,
      storage: { volumeGroup: 'xenvg', sizeMiB: 1 << 20, freeMiB: 1 << 20, volumes: [], minors: [] },
    });
    const placed = choosePlacement(web1, [web1, other], ['node-c', 'node-d', 'node-e', 'node-f'].map(facts));
    expect(placed.chosen).toBe('node-f');
    expect(Object.fromEntries(placed.passedOver.map((p) => [p.node, p.why]))).toEqual({
      'node-c': 'node-c holds the third copy of web1',
      'node-d': "node-d is the tiebreaker of web1's resources",
      'node-e': 'holds 1 copies it does not run (secondary or third), node-f 0',
    });
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

const DISKS = ['web1-disk0', 'web1-disk1'];
/** The UpToDate copies of each disk that the primary reaches: itself and its connected peers. */
const copiesInSync = (sim: SimCluster) =>
  DISKS.map((name) => {
    const r = sim.world.resources[name]!;
    const primary = sim.world.config.instances.web1!.primaryNode;
    return Object.keys(r.local).filter(
      (n) =>
        r.local[n]?.diskState === 'UpToDate' &&
        (n === primary ||
          (linkBetween(r, primary, n)?.ends.every(
            (e) => linkBetween(r, primary, n)?.connection[e] === 'Connected',
          ) ??
            false)),
    ).length;
  });
type ReplaceInput = { newSecondary?: string; cleanup?: boolean; replaceCopy?: 'thirdCopy' };
/**
 * A replace of web1's secondary or third copy, watched: what it said and called, the fewest copies
 * in sync at any call, and what the oracle and the simulator found wrong.
 */
async function replaceWatched(sim: SimCluster, input: ReplaceInput) {
  const said: string[] = [];
  const least = [3, 3];
  const before = viewOfSim(sim);
  const out = await runMachine(MACHINES.changeSecondary, { instance: 'web1', ...input }, sim.effects, {
    clock: sim.clock,
    onCall: (call) => {
      said.push(`call ${call.effect} ${JSON.stringify(call.input)}`);
      copiesInSync(sim).forEach((n, i) => {
        least[i] = Math.min(least[i]!, n);
      });
    },
    onEvent: (e) => {
      if (e.type === 'feedback') said.push(`${e.level} ${e.message}`);
    },
  });
  return {
    out,
    said,
    least,
    problems: [...outcomeProblems(out, before, viewOfSim(sim)), ...sim.world.violations],
  };
}
/** Each disk's links, as sorted node pairs, whether every one is connected, and the tiebreaker's peers. */
const linksNow = (sim: SimCluster) =>
  DISKS.map((name) => {
    const r = sim.world.resources[name]!;
    return {
      pairs: r.links.map((l) => [...l.ends].sort().join('/')).sort(),
      connected: r.links.every((l) => l.ends.every((e) => l.connection[e] === 'Connected')),
      upToDate: Object.values(r.local).every((l) => l.diskState === 'UpToDate'),
      tiebreaker: [...r.tiebreakerPeers].sort(),
    };
  });

/**
 * replace-secondary of a three-copy instance (DRBD 9, make-before-break): node-e joins node-a (the
 * primary), node-c (the third copy) and node-d (the tiebreaker), resyncs from both copies, and only
 * after the commit does node-b leave them.
 */
describe('a new secondary for a three-copy instance', () => {
  const five: WorldSpec = { ...spec, nodes: { ...spec.nodes, 'node-e': {} } };
  const replace = (sim: SimCluster, input: ReplaceInput = {}) =>
    replaceWatched(sim, { newSecondary: 'node-e', ...input });
  const replaced = {
    pairs: ['node-a/node-c', 'node-a/node-e', 'node-c/node-e'],
    connected: true,
    upToDate: true,
    tiebreaker: ['node-a', 'node-c', 'node-e'],
  };
  const asFound = {
    pairs: ['node-a/node-b', 'node-a/node-c', 'node-b/node-c'],
    connected: true,
    upToDate: true,
    tiebreaker: ['node-a', 'node-b', 'node-c'],
  };

  it('node-e joins node-a, node-c and the tiebreaker, is in sync with both copies before the commit, and node-b leaves all three after it: three UpToDate copies at every call', async () => {
    const sim = createSimCluster(five);
    const { out, said, least, problems } = await replace(sim);
    expect(out).toMatchObject({ outcome: 'replaced', primaryNode: 'node-a', secondaryNode: 'node-e' });
    expect(problems).toEqual([]);
    expect(least).toEqual([3, 3]);
    expect(sim.world.config.instances.web1).toMatchObject({
      primaryNode: 'node-a',
      secondaryNode: 'node-e',
      thirdCopy: 'node-c',
      formerSecondary: null,
    });
    expect(linksNow(sim)).toEqual([replaced, replaced]);
    expect(Object.keys(sim.world.resources['web1-disk0']!.local).sort()).toEqual([
      'node-a',
      'node-c',
      'node-e',
    ]);
    const at = (line: string) => said.indexOf(line);
    const commit = said.findIndex((l) => l.startsWith('call setSecondaryNode'));
    expect(at('info * adding node-e as a peer of node-c, the third copy')).toBeGreaterThan(-1);
    expect(at('info * adding node-e as a peer of node-c, the third copy')).toBeLessThan(commit);
    // The wait on node-c's link to node-e comes before the commit, and its read-back too.
    const thirdWait = said.findIndex(
      (l) => l.startsWith('call waitSync') && l.includes('"nodes":["node-c","node-e"]'),
    );
    expect(thirdWait).toBeGreaterThan(-1);
    expect(thirdWait).toBeLessThan(commit);
    expect(at('info * removing node-b as a peer of node-c, the third copy')).toBeGreaterThan(commit);
    expect(sim.world.vms['node-a']?.web1?.state).toBe('running');
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    // The new pair migrates both ways, and to the third.
    for (const targetNode of ['node-e', 'node-c', 'node-a']) {
      const moved = await simulate('migration', { sim, input: { targetNode } });
      expect([moved.out.outcome, moved.out.error ?? null]).toEqual(['migrated', null]);
      expectTruthfulOutcome(moved, 'web1', targetNode);
    }
  });

  it('refuses, touching nothing: the third copy as the new secondary, the tiebreaker, a third copy not in sync with the primary', async () => {
    const refusals: Array<[string, (sim: SimCluster) => void, RegExp]> = [
      ['node-c', () => {}, /node-c holds the third copy of web1 already: name a node that holds none/],
      ['node-d', () => {}, /node-d is the tiebreaker of web1's resources/],
      [
        'node-e',
        (sim) => sim.perturb('thirdCopyBehind', 'web1'),
        /node-c, the third copy, is not in sync with node-a \(web1-disk0 .*\): the new node must join it too; bring it back in sync first; nothing was touched/,
      ],
      [
        'node-e',
        (sim) => sim.killNode('node-c'),
        /Cannot read the disks of node-c, the third copy .*: the new node must join it too; nothing was touched/,
      ],
    ];
    for (const [node, disturb, error] of refusals) {
      const sim = createSimCluster(five);
      disturb(sim);
      const { out, said } = await replace(sim, { newSecondary: node });
      expect([node, out.outcome]).toEqual([node, 'rejected']);
      expect(out.error).toMatch(error);
      const reads = ['getInstance', 'listNodes', 'takeoverLoad', 'nodeInfo', 'nodeStorage', 'nodeDiskStatus'];
      expect(said.filter((l) => l.startsWith('call ') && !reads.includes(l.split(' ')[1]!))).toEqual([]);
    }
  });

  it('a third copy the new node cannot join undoes the replace: node-e leaves node-a, nothing is left there, node-b never left', async () => {
    const sim = createSimCluster(five, { faults: [{ effect: 'attachNet', call: 2, kind: 'error' }] });
    const { out, least, problems } = await replace(sim);
    expect(out.outcome).toBe('reverted');
    expect(out.error).toMatch(/Cannot add node-e as a peer of node-c, the third copy/);
    expect(problems).toEqual([]);
    expect(least).toEqual([3, 3]);
    expect(linksNow(sim)).toEqual([asFound, asFound]);
    expect(sim.world.resources['web1-disk0']!.local['node-e']).toBeUndefined();
  });

  it('the repair after a commit whose removal of node-b from the third copy failed finishes it', async () => {
    const sim = createSimCluster(five, { faults: [{ effect: 'removePeer', call: 2, kind: 'error' }] });
    const first = await replace(sim);
    expect(first.out.outcome).toBe('needsCleanup');
    expect(first.out.error).toMatch(
      /Cannot remove node-b as a peer of node-c, the third copy .*the config names node-e, UpToDate; run 'drbd-migrate replace-secondary web1 --cleanup'/,
    );
    expect(first.problems).toEqual([]);
    sim.faults = [];
    const repair = await replace(sim, { cleanup: true, newSecondary: undefined as never });
    expect([repair.out.outcome, repair.out.error ?? null]).toEqual(['cleaned', null]);
    expect(repair.problems).toEqual([]);
    expect(repair.least).toEqual([3, 3]);
    expect(linksNow(sim)).toEqual([replaced, replaced]);
  });

  describe('a failure at every effect call, then the repair the run asks for', async () => {
    const happy = createSimCluster(five);
    await replace(happy);
    const points = EFFECT_NAMES.flatMap((effect: EffectName) =>
      Array.from({ length: happy.calls[effect] }, (_, i) => ({ effect, call: i + 1 })),
    );
    it('has calls to fail', () => {
      expect(points.length).toBeGreaterThan(25);
    });
    it.each(points.flatMap((p) => (['error', 'lost'] as const).map((kind) => ({ ...p, kind }))))(
      '$kind in $effect call $call: no rule broken, never fewer than three copies in sync, and the end is the three copies as found or as replaced',
      async (p) => {
        const sim = createSimCluster(five, {
          faults: [{ effect: p.effect, call: p.call, kind: p.kind } as Fault],
        });
        const first = await replace(sim);
        expect(first.problems).toEqual([]);
        expect(first.least).toEqual([3, 3]);
        sim.faults = [];
        // A replace may also end done but for the old copies (their node did not answer): the
        // config keeps naming it, and the repair removes them.
        const committed = sim.world.config.instances.web1?.formerSecondary !== null;
        if (first.out.outcome === 'needsCleanup' || committed) {
          const repair = await replace(
            sim,
            committed ? { cleanup: true, newSecondary: undefined as never } : { cleanup: true },
          );
          expect([repair.out.outcome, repair.out.error ?? null]).toEqual(['cleaned', null]);
          expect(repair.problems).toEqual([]);
          expect(repair.least).toEqual([3, 3]);
        }
        const secondary = sim.world.config.instances.web1?.secondaryNode;
        expect(linksNow(sim)).toEqual(secondary === 'node-e' ? [replaced, replaced] : [asFound, asFound]);
        expect(sim.world.config.instances.web1).toMatchObject({ thirdCopy: 'node-c', formerSecondary: null });
        expect(restStateProblems(sim.world, 'web1')).toEqual([]);
      },
    );
  });
});

/**
 * replace-third-copy (DRBD 9): node-c's third copy moves to node-e, make-before-break. node-e joins
 * node-a (the primary), node-b (the secondary) and the tiebreaker, resyncs from both, the config names
 * it the third copy, and only then does node-c leave them. A drain of node-c runs the same.
 */
describe('the third copy moved to another node', () => {
  const five: WorldSpec = { ...spec, nodes: { ...spec.nodes, 'node-e': {} } };
  const moveThird = (sim: SimCluster, input: Omit<ReplaceInput, 'replaceCopy'> = {}) =>
    replaceWatched(sim, { newSecondary: 'node-e', replaceCopy: 'thirdCopy', ...input });
  const moved = {
    pairs: ['node-a/node-b', 'node-a/node-e', 'node-b/node-e'],
    connected: true,
    upToDate: true,
    tiebreaker: ['node-a', 'node-b', 'node-e'],
  };
  const asFound = {
    pairs: ['node-a/node-b', 'node-a/node-c', 'node-b/node-c'],
    connected: true,
    upToDate: true,
    tiebreaker: ['node-a', 'node-b', 'node-c'],
  };

  it('node-e joins node-a, node-b and the tiebreaker, is in sync with both before the commit names it the third copy, and node-c leaves all three after it: three UpToDate copies at every call', async () => {
    const sim = createSimCluster(five);
    const { out, said, least, problems } = await moveThird(sim);
    expect(out).toMatchObject({ outcome: 'replaced', primaryNode: 'node-a', thirdCopy: 'node-e' });
    expect(out.secondaryNode).toBeUndefined();
    expect(problems).toEqual([]);
    expect(least).toEqual([3, 3]);
    expect(sim.world.config.instances.web1).toMatchObject({
      primaryNode: 'node-a',
      secondaryNode: 'node-b',
      thirdCopy: 'node-e',
      formerThirdCopy: null,
      formerSecondary: null,
    });
    expect(linksNow(sim)).toEqual([moved, moved]);
    expect(Object.keys(sim.world.resources['web1-disk0']!.local).sort()).toEqual([
      'node-a',
      'node-b',
      'node-e',
    ]);
    expect(said).toContain('info Replacing the third copy of web1: node-c by node-e (primary node-a)');
    expect(said).toContain(
      'info * adding node-e as a peer of node-a beside node-c (DRBD 9: web1 keeps its three copies throughout)',
    );
    const at = (line: string) => said.indexOf(line);
    const commit = said.findIndex((l) => l.startsWith('call setThirdCopyNode'));
    expect(commit).toBeGreaterThan(-1);
    expect(said.some((l) => l.startsWith('call setSecondaryNode'))).toBe(false);
    expect(at('info * adding node-e as a peer of node-b, the secondary')).toBeGreaterThan(-1);
    expect(at('info * adding node-e as a peer of node-b, the secondary')).toBeLessThan(commit);
    const otherWait = said.findIndex(
      (l) => l.startsWith('call waitSync') && l.includes('"nodes":["node-b","node-e"]'),
    );
    expect(otherWait).toBeGreaterThan(-1);
    expect(otherWait).toBeLessThan(commit);
    expect(at('info * removing node-c as a peer of node-a')).toBeGreaterThan(commit);
    expect(at('info * removing node-c as a peer of node-b, the secondary')).toBeGreaterThan(commit);
    expect(sim.world.vms['node-a']?.web1?.state).toBe('running');
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    // The new third copy takes a migration, and hands it back.
    for (const targetNode of ['node-e', 'node-a']) {
      const run = await simulate('migration', { sim, input: { targetNode } });
      expect([run.out.outcome, run.out.error ?? null]).toEqual(['migrated', null]);
      expectTruthfulOutcome(run, 'web1', targetNode);
    }
  });

  it('refuses, touching nothing: the secondary, the primary or the tiebreaker as the new third copy, a secondary not in sync, a secondary that cannot be read, an instance without a third copy', async () => {
    const refusals: Array<[string, (sim: SimCluster) => void, RegExp]> = [
      ['node-b', () => {}, /node-b holds the secondary of web1 already: name a node that holds none/],
      ['node-a', () => {}, /node-a is the primary of web1/],
      ['node-c', () => {}, /node-c is already the third copy of web1/],
      ['node-d', () => {}, /node-d is the tiebreaker of web1's resources/],
      [
        'node-e',
        (sim) => sim.perturb('resyncPending', 'web1'),
        /Cannot make node-e the third copy of web1: node-b, the secondary, is not in sync with node-a \(web1-disk0 .*\): the new node must join it too; bring it back in sync first; nothing was touched/,
      ],
      [
        'node-e',
        (sim) => sim.killNode('node-b'),
        /Cannot read the disks of node-b, the secondary .*: the new node must join it too; nothing was touched/,
      ],
      [
        'node-e',
        (sim) => {
          sim.world.config.instances.web1!.thirdCopy = null;
        },
        /Instance web1 has no third copy \(a DRBD 9 third replica the config names\): 'drbd-migrate replace-secondary web1' moves its secondary/,
      ],
    ];
    for (const [node, disturb, error] of refusals) {
      const sim = createSimCluster(five);
      disturb(sim);
      const { out, said } = await moveThird(sim, { newSecondary: node });
      expect([node, out.outcome]).toEqual([node, 'rejected']);
      expect(out.error).toMatch(error);
      const reads = ['getInstance', 'listNodes', 'takeoverLoad', 'nodeInfo', 'nodeStorage', 'nodeDiskStatus'];
      expect(said.filter((l) => l.startsWith('call ') && !reads.includes(l.split(' ')[1]!))).toEqual([]);
    }
  });

  it('a secondary the new node cannot join undoes the move: node-e leaves node-a, nothing is left there, node-c never left', async () => {
    const sim = createSimCluster(five, { faults: [{ effect: 'attachNet', call: 2, kind: 'error' }] });
    const { out, least, problems } = await moveThird(sim);
    expect(out.outcome).toBe('reverted');
    expect(out.error).toMatch(/Cannot add node-e as a peer of node-b, the secondary/);
    expect(problems).toEqual([]);
    expect(least).toEqual([3, 3]);
    expect(linksNow(sim)).toEqual([asFound, asFound]);
    expect(sim.world.resources['web1-disk0']!.local['node-e']).toBeUndefined();
    expect(sim.world.config.instances.web1).toMatchObject({ thirdCopy: 'node-c', formerThirdCopy: null });
  });

  it('the repair after a commit whose removal of node-c from the secondary failed finishes it', async () => {
    const sim = createSimCluster(five, { faults: [{ effect: 'removePeer', call: 2, kind: 'error' }] });
    const first = await moveThird(sim);
    expect(first.out).toMatchObject({
      outcome: 'needsCleanup',
      thirdCopy: 'node-e',
      formerThirdCopy: 'node-c',
    });
    expect(first.out.error).toMatch(
      /Cannot remove node-c as a peer of node-b, the secondary .*the config names node-e, UpToDate; run 'drbd-migrate replace-third-copy web1 --cleanup'/,
    );
    expect(first.problems).toEqual([]);
    expect(sim.world.config.instances.web1).toMatchObject({ thirdCopy: 'node-e', formerThirdCopy: 'node-c' });
    sim.faults = [];
    const repair = await moveThird(sim, { cleanup: true, newSecondary: undefined as never });
    expect([repair.out.outcome, repair.out.error ?? null]).toEqual(['cleaned', null]);
    expect(repair.problems).toEqual([]);
    expect(repair.least).toEqual([3, 3]);
    expect(linksNow(sim)).toEqual([moved, moved]);
    expect(sim.world.config.instances.web1).toMatchObject({ thirdCopy: 'node-e', formerThirdCopy: null });
  });

  it('node-c dead: the copy moves to node-e from the two live ones; node-c keeps its old copies, named formerThirdCopy, until it returns and its rejoin removes them', async () => {
    const sim = createSimCluster(five);
    sim.killNode('node-c');
    const first = await moveThird(sim);
    expect(first.out).toMatchObject({ outcome: 'replaced', thirdCopy: 'node-e', formerThirdCopy: 'node-c' });
    expect(first.out.warnings.join('\n')).toMatch(
      /Could not remove the old copies of web1 on node-c .*the config keeps node-c as their node: run 'drbd-migrate replace-third-copy web1 --cleanup' once it answers/,
    );
    expect(first.problems).toEqual([]);
    expect(first.least).toEqual([2, 2]);
    sim.reviveNode('node-c');
    const repair = await moveThird(sim, { cleanup: true, newSecondary: undefined as never });
    expect([repair.out.outcome, repair.out.error ?? null]).toEqual(['cleaned', null]);
    expect(repair.problems).toEqual([]);
    expect(sim.world.config.instances.web1).toMatchObject({ thirdCopy: 'node-e', formerThirdCopy: null });
    expect(Object.keys(sim.world.resources['web1-disk0']!.local).sort()).toEqual([
      'node-a',
      'node-b',
      'node-e',
    ]);
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
  });

  describe('a failure at every effect call, then the repair the run asks for', async () => {
    const happy = createSimCluster(five);
    await moveThird(happy);
    const points = EFFECT_NAMES.flatMap((effect: EffectName) =>
      Array.from({ length: happy.calls[effect] }, (_, i) => ({ effect, call: i + 1 })),
    );
    it('has calls to fail', () => {
      expect(points.length).toBeGreaterThan(25);
    });
    it.each(points.flatMap((p) => (['error', 'lost'] as const).map((kind) => ({ ...p, kind }))))(
      '$kind in $effect call $call: no rule broken, never fewer than three copies in sync, and the end is the three copies as found or as moved',
      async (p) => {
        const sim = createSimCluster(five, {
          faults: [{ effect: p.effect, call: p.call, kind: p.kind } as Fault],
        });
        const first = await moveThird(sim);
        expect(first.problems).toEqual([]);
        expect(first.least).toEqual([3, 3]);
        sim.faults = [];
        const committed = sim.world.config.instances.web1?.formerThirdCopy !== null;
        if (first.out.outcome === 'needsCleanup' || committed) {
          const repair = await moveThird(
            sim,
            committed ? { cleanup: true, newSecondary: undefined as never } : { cleanup: true },
          );
          expect([repair.out.outcome, repair.out.error ?? null]).toEqual(['cleaned', null]);
          expect(repair.problems).toEqual([]);
          expect(repair.least).toEqual([3, 3]);
        }
        const third = sim.world.config.instances.web1?.thirdCopy;
        expect(linksNow(sim)).toEqual(third === 'node-e' ? [moved, moved] : [asFound, asFound]);
        expect(sim.world.config.instances.web1).toMatchObject({
          secondaryNode: 'node-b',
          formerThirdCopy: null,
          formerSecondary: null,
        });
        expect(restStateProblems(sim.world, 'web1')).toEqual([]);
      },
    );
  });
});

/**
 * A drain of a node that holds every role of three-copy instances (primaries, secondaries, third
 * copies), journaled, its orchestrator stopped with runs under way and resumed: the in-flight moves of
 * third copies are taken up as such.
 */
describe('a journaled drain of a node holding three-copy instances’ primaries, secondaries and third copies, stopped and resumed', () => {
  const nodes = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e', 'node-f'];
  const roles: [string, string, string][] = [
    ['node-a', 'node-b', 'node-c'],
    ['node-d', 'node-e', 'node-c'],
    ['node-b', 'node-d', 'node-c'],
    ['node-e', 'node-a', 'node-c'],
    ['node-a', 'node-c', 'node-d'],
    ['node-c', 'node-b', 'node-e'],
    ['node-d', 'node-f', 'node-b'],
  ];
  const six: WorldSpec = {
    nodes: Object.fromEntries(nodes.map((n) => [n, {}])),
    instances: roles.map(([primary, secondary, thirdCopy], i) => ({
      name: `vm${i}`,
      primary,
      secondary,
      thirdCopy,
      memoryMiB: 512,
      disksMiB: [2048],
    })),
  };

  // Stopped at several points: runs under way past their commit, and before it (the resumed drain's
  // journal repair undoes those, and the drain begins them again).
  for (const stopAfter of [null, 1, 2, 3, 5]) {
    it(`${stopAfter === null ? 'runs to its end' : `stopped after ${stopAfter} runs ended`}: node-c holds nothing, every instance three copies in sync, no former copy named`, async () => {
      const sim = createSimCluster(six);
      const dir = tempDir('drbd-migrate-three-drain-');
      try {
        const { out, watch } = await journaledDrain(
          sim,
          dir,
          { node: 'node-c', secondaries: true, drain: true },
          stopAfter,
        );
        expect(watch.problems).toEqual([]);
        expect(out.outcome).toBe('evacuated');
        expect(Object.fromEntries(out.results.map((r) => [r.instance, r.outcome]))).toEqual({
          vm0: 'replaced',
          vm1: 'replaced',
          vm2: 'replaced',
          vm3: 'replaced',
          vm4: 'replaced',
          vm5: 'replaced',
        });
        if (stopAfter === null)
          expect(
            out.results
              .filter((r) => r.thirdCopy !== undefined)
              .map((r) => r.instance)
              .sort(),
          ).toEqual(['vm0', 'vm1', 'vm2', 'vm3']);
        for (const [name, c] of Object.entries(sim.world.config.instances)) {
          expect([name, [c.primaryNode, c.secondaryNode, c.thirdCopy].includes('node-c')]).toEqual([
            name,
            false,
          ]);
          expect([name, c.formerSecondary, c.formerThirdCopy]).toEqual([name, null, null]);
          expect([name, restStateProblems(sim.world, name)]).toEqual([name, []]);
          const local = sim.world.resources[`${name}-disk0`]!.local;
          expect([name, Object.keys(local).sort()]).toEqual([
            name,
            [c.primaryNode, c.secondaryNode!, c.thirdCopy!].sort(),
          ]);
          expect([name, Object.values(local).every((l) => l.diskState === 'UpToDate')]).toEqual([name, true]);
        }
        expect(Object.values(sim.world.resources).some((r) => r.local['node-c'] !== undefined)).toBe(false);
        expect(sim.world.violations).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, 120_000);
  }
});
