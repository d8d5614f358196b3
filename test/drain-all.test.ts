import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EFFECT_NAMES, type EvacuationOutput, type Fault, type World } from '../src/index.js';
import { runEvacuation, runMigration } from '../src/runner/index.js';
import {
  clusterSpec,
  createSimCluster,
  createWorld,
  type SimCluster,
  type WorldSpec,
} from '../src/sim/index.js';
import { viewOfSim } from '../src/testing/world.js';
import { journaledDrain, randomFaults, type Spec, vm } from './drain.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/**
 * Issue 20's full drain: after `evacuate NODE --all` the node holds no primary, no secondary, no
 * volume and no DRBD device of any instance, and every instance has two UpToDate copies; or the
 * instance is listed with why not.
 */

const MOVED = new Set(['migrated', 'failedOver', 'cleaned']);

/** What `node` still holds of each instance: its primary, its secondary, old copies, volumes, devices. */
function heldOn(world: World, node: string): Map<string, string[]> {
  const held = new Map<string, string[]>();
  const add = (instance: string, what: string) => held.set(instance, [...(held.get(instance) ?? []), what]);
  for (const [name, c] of Object.entries(world.config.instances)) {
    if (c.primaryNode === node) add(name, 'its primary');
    if (c.secondaryNode === node) add(name, 'its secondary');
    if (c.formerSecondary === node) add(name, 'old copies the config names');
    for (const d of c.disks) {
      if (world.resources[d.resource]?.local[node] !== undefined) add(name, `DRBD device ${d.resource}`);
      for (const v of [`${d.resource}_data`, `${d.resource}_meta`])
        if (world.storage[node]?.volumes[v] !== undefined) add(name, `volume ${v}`);
    }
  }
  return held;
}

/**
 * The drain's truth: what the node still holds belongs to an instance the summary lists as not done,
 * with why; every instance the summary calls replaced has two UpToDate copies on the two nodes the
 * config names, none on the drained one; no safety rule broken.
 */
/**
 * What a replace that names the node as its former secondary says is left there: the config's mark,
 * and the instance's own devices and volumes that could not be removed.
 */
const oldCopies = (what: string, instance: string) =>
  what.startsWith('old copies') ||
  what.startsWith(`DRBD device ${instance}-disk`) ||
  what.startsWith(`volume ${instance}-disk`);

function drainProblems(
  sim: SimCluster,
  out: EvacuationOutput,
  node: string,
  options: { primariesStay?: boolean } = {},
): string[] {
  const world = sim.snapshot();
  const problems = [...world.violations];
  const result = new Map(out.results.map((r) => [r.instance, r]));
  for (const [instance, what] of heldOn(world, node)) {
    // A drain of the secondaries alone leaves the node its primaries (and their copies).
    if (options.primariesStay && world.config.instances[instance]?.primaryNode === node) continue;
    const r = result.get(instance);
    // A copy the config does not place there belongs to no result: the drain's read of the node says it.
    if (r === undefined) {
      const read = out.stillHolds;
      const said =
        out.outcome === 'incomplete' &&
        read !== undefined &&
        !('unread' in read) &&
        what.every(
          (w) =>
            (w.startsWith('volume ') && read.volumes.includes(w.slice('volume '.length))) ||
            (w.startsWith('DRBD device ') &&
              read.minors.includes(world.resources[w.slice('DRBD device '.length)]?.minor ?? -1)),
        );
      if (!said)
        problems.push(`${instance}: ${node} holds ${what.join(', ')}, and the summary does not list it`);
    }
    // A move or a replace that ended well must not leave anything there unsaid; an outcome that
    // says the instance stayed (reverted, refused, skipped, left to repair) is the why.
    // A replace that could not clear the config's mark (its copies gone) says so in its result.
    else if (
      (r.outcome === 'replaced' &&
        !(r.formerSecondary === node && what.every((w) => oldCopies(w, instance)))) ||
      (MOVED.has(r.outcome) && r.error === undefined)
    )
      problems.push(`${instance} (${r.outcome}): ${node} holds ${what.join(', ')}, unsaid`);
  }
  // What the drain says the node holds is what it holds, and an evacuated node holds nothing.
  const held = out.stillHolds;
  if (held !== undefined && !('unread' in held)) {
    const minors = Object.values(world.resources)
      .filter((r) => r.local[node] !== undefined)
      .map((r) => r.minor)
      .sort((a, b) => a - b);
    if (JSON.stringify(held.minors) !== JSON.stringify(minors))
      problems.push(`the drain says ${node} holds minors ${held.minors}, it holds ${minors}`);
  }
  if (
    out.outcome === 'evacuated' &&
    !options.primariesStay &&
    (heldOn(world, node).size > 0 || held === undefined)
  )
    problems.push(
      `evacuated, with ${node} holding ${[...heldOn(world, node).keys()]} (read: ${JSON.stringify(held)})`,
    );
  for (const r of out.results) {
    if (r.outcome !== 'replaced') continue;
    const config = world.config.instances[r.instance]!;
    if (config.secondaryNode !== r.secondaryNode || config.primaryNode !== r.primaryNode)
      problems.push(
        `${r.instance}: replaced onto ${r.primaryNode}/${r.secondaryNode}, the config names ${config.primaryNode}/${config.secondaryNode}`,
      );
    const copies = viewOfSim(sim, r.instance).copies ?? [];
    if (copies.some((n) => n < 2))
      problems.push(`${r.instance}: replaced, with ${copies.join('/')} UpToDate copies`);
  }
  return problems;
}

describe('evacuate --all on the simulated cluster', () => {
  it('empties node-b of three nodes: no primary, secondary, volume or device left, two copies each', async () => {
    const sim = createSimCluster(clusterSpec({ nodes: 3, instances: 9, seed: 4 }));
    const out = await runEvacuation(
      { node: 'node-b', secondaries: true, drain: true, allowFailover: true },
      sim.effects,
      { clock: sim.clock },
    );
    expect(out.outcome).toBe('evacuated');
    expect(drainProblems(sim, out, 'node-b')).toEqual([]);
    expect(heldOn(sim.snapshot(), 'node-b').size).toBe(0);
    expect(sim.world.nodes['node-b']?.drained).toBe(true);
    // Instances that had their primary on node-b were moved, then given a new secondary.
    expect(out.results.every((r) => r.outcome === 'replaced' && r.secondaryNode !== 'node-b')).toBe(true);
  });

  it('a node that is an instance’s tiebreaker is not empty of it: that instance is listed with why, nothing moved', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} },
      instances: [
        {
          name: 'web1',
          primary: 'node-a',
          secondary: 'node-b',
          memoryMiB: 1024,
          drbd: '9',
          quorum: true,
          tiebreaker: 'node-c',
        },
      ],
    });
    const out = await runEvacuation(
      { node: 'node-c', secondaries: true, drain: true, allowFailover: true },
      sim.effects,
      { clock: sim.clock },
    );
    expect(out.outcome).toBe('incomplete');
    expect(out.results).toMatchObject([
      {
        instance: 'web1',
        outcome: 'skipped',
        error: expect.stringMatching(
          /^node-c is the tiebreaker of web1's resources \(diskless, the third vote\): a drain does not move a tiebreaker/,
        ),
      },
    ]);
    expect(sim.world.config.instances.web1).toMatchObject({ primaryNode: 'node-a', secondaryNode: 'node-b' });
    expect(sim.world.violations).toEqual([]);
  });

  it('a copy the config does not place on the node (a third one, made outside it) keeps the drain incomplete: said, and kept', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} },
      instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 1024, drbd: '9' }],
    });
    const disks = sim.world.config.instances.web1!.disks;
    await sim.effects.createDisks(
      { instance: 'web1', node: 'node-c', disks, timeoutMs: 10_000 },
      new AbortController().signal,
    );
    const out = await runEvacuation(
      { node: 'node-c', secondaries: true, drain: true, allowFailover: true },
      sim.effects,
      { clock: sim.clock },
    );
    expect(out).toMatchObject({
      outcome: 'incomplete',
      results: [],
      stillHolds: { minors: [0], volumes: ['web1-disk0_data', 'web1-disk0_meta'] },
    });
    expect(out.error).toBe(
      'node-c still holds DRBD minor 0 and volumes web1-disk0_data, web1-disk0_meta, which no instance the config places there accounts for: a copy the cluster file does not name (a third one) or a leftover, so the node is not empty; look at it there (drbdsetup status, lvs) before anything is removed',
    );
    expect(sim.world.resources['web1-disk0']?.local['node-c']).toBeDefined();
    expect(sim.world.storage['node-c']?.volumes['web1-disk0_data']).toBeDefined();
    expect(drainProblems(sim, out, 'node-c')).toEqual([]);
    // The oracle can fail: a drain that did not read the node, or read it and still called it empty.
    const { stillHolds: _, error: __, ...unread } = out;
    expect(drainProblems(sim, { ...unread, outcome: 'evacuated' }, 'node-c')).toEqual([
      'web1: node-c holds DRBD device web1-disk0, volume web1-disk0_data, volume web1-disk0_meta, and the summary does not list it',
      'evacuated, with node-c holding web1 (read: undefined)',
    ]);
    expect(drainProblems(sim, { ...out, outcome: 'evacuated' }, 'node-c')).toContain(
      'web1: node-c holds DRBD device web1-disk0, volume web1-disk0_data, volume web1-disk0_meta, and the summary does not list it',
    );
  });

  it('a node with no room for new secondaries: each instance that keeps a copy there is listed with why', async () => {
    // node-c's volume group has 16 GiB left: room for one new copy, not for all.
    const world = createWorld(clusterSpec({ nodes: 3, instances: 6, seed: 4 }));
    const vg = world.storage['node-c']!;
    vg.sizeMiB = Object.values(vg.volumes).reduce((a, b) => a + b, 0) + 16 * 1024;
    const sim = createSimCluster(world);
    const out = await runEvacuation({ node: 'node-b', secondaries: true, primaries: false }, sim.effects, {
      clock: sim.clock,
    });
    expect(out.outcome).toBe('incomplete');
    const skipped = out.results.filter((r) => r.outcome === 'skipped');
    expect(skipped.length).toBeGreaterThan(0);
    expect(drainProblems(sim, out, 'node-b', { primariesStay: true })).toEqual([]);
    for (const r of skipped)
      expect(r.error).toMatch(
        /its secondary stays on node-b: no node can hold it: node-c has \d+ MiB free in volume group xenvg/,
      );
  });
});

/**
 * The scale test: 1,000 instances over six nodes, random faults of every kind on every effect a full
 * drain calls (a replace's included), limits of 4 in all and 2 per node; then the same stopped dead
 * halfway and resumed from its journal.
 */
describe('a full drain of 1,000 instances with random faults', () => {
  const nodes = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
  function world(seed: number): WorldSpec {
    const rnd = fc.sample(fc.integer({ min: 0, max: 99 }), { seed, numRuns: 1000 });
    const instances = rnd.map((r, i): Spec => {
      const primary = nodes[i % 6]!;
      const secondary = nodes[(i + 1 + (r % 5)) % 6]!;
      if (r < 4) return vm(`vm${i}`, primary, null, { diskTemplate: 'plain', memoryMiB: 256 });
      if (r < 10)
        return vm(`vm${i}`, primary, secondary, { running: false, adminState: 'down', memoryMiB: 256 });
      return vm(`vm${i}`, primary, secondary, { memoryMiB: 256 + (r % 4) * 128 });
    });
    return {
      nodes: Object.fromEntries(nodes.map((n) => [n, { memoryMiB: 1e9, diskMiB: 1e9 }])),
      instances,
      settings: { stepMs: 50 },
    };
  }
  function faults(seed: number): Fault[] {
    return randomFaults(
      EFFECT_NAMES.filter((e) => e !== 'listInstances' && e !== 'listNodes'),
      seed,
    );
  }

  for (const [name, stopAfter] of [
    ['runs to its end', null],
    ['killed after 150 runs and resumed', 150],
  ] as const) {
    it(`${name}: n0 holds nothing of any instance that is not listed with why, every replaced one has two copies`, async () => {
      const sim = createSimCluster(world(3), { faults: faults(5) });
      const dir = tempDir('drbd-migrate-drain-all-');
      const { out: result, watch } = await journaledDrain(
        sim,
        dir,
        { node: 'n0', allowFailover: true, secondaries: true, drain: true },
        stopAfter,
      );
      expect(watch.problems).toEqual([]);
      const problems = drainProblems(sim, result, 'n0');
      if (problems.length > 0)
        console.log(
          JSON.stringify(
            result.results.filter((r) => problems.some((p) => p.startsWith(`${r.instance} `))).slice(0, 3),
          ),
        );
      expect(problems).toEqual([]);
      // Most of the node was emptied, and the faults did hit.
      const replaced = result.results.filter((r) => r.outcome === 'replaced').length;
      console.log(
        `${name}: ${replaced} of ${result.results.length} instances replaced off n0; ${heldOn(sim.snapshot(), 'n0').size} still hold something there, each listed`,
      );
      expect(replaced).toBeGreaterThan(result.results.length / 2);
      expect(result.results.some((r) => r.outcome !== 'replaced' && r.outcome !== 'skipped')).toBe(true);
    }, 600_000);
  }
});

describe('a drain with a deadline', () => {
  it('starts nothing new after it: the runs under way end, the rest is listed as not started', async () => {
    const sim = createSimCluster(clusterSpec({ nodes: 3, instances: 12, seed: 4 }));
    const starts: number[] = [];
    // About two replaces' time (each resyncs its disks at the simulator's 40 MiB/s).
    const deadlineMs = 600_000;
    const out = await runEvacuation(
      { node: 'node-b', secondaries: true, drain: true, allowFailover: true, concurrency: 1, deadlineMs },
      sim.effects,
      { clock: sim.clock, onRun: (n) => n.phase === 'start' && starts.push(sim.clock.now()) },
    );
    expect(out.outcome).toBe('incomplete');
    const notStarted = out.results.filter((r) => r.outcome === 'notStarted');
    expect(notStarted.length).toBeGreaterThan(0);
    for (const r of notStarted) expect(r.error).toBe('not started: the drain’s deadline had passed');
    // Every start came before the deadline; what ran ended well.
    expect(Math.max(...starts)).toBeLessThan(deadlineMs);
    expect(out.results.filter((r) => r.outcome !== 'notStarted').every((r) => r.outcome === 'replaced')).toBe(
      true,
    );
    expect(drainProblems(sim, out, 'node-b')).toEqual([]);
  });
});

describe('a drain with a deadline, journaled (the CLI on a world file)', () => {
  it('counts the deadline in the world’s time, however long the journal’s writes take', async () => {
    const dir = tempDir();
    process.env.DRBD_MIGRATE_STATE_DIR = `${dir}/state`;
    const file = `${dir}/w.json`;
    await cli('init', '--world', file, '--nodes', '3', '--instances', '8', '--seed', '2');
    const r = await cli(
      'evacuate',
      'node-b',
      '--world',
      file,
      '--all',
      '--allow-failover',
      '--deadline',
      '8m',
      '--json',
    );
    expect(r.code).toBe(1);
    const result = r.json().find((e: { type: string }) => e.type === 'result') as EvacuationOutput;
    // Started before the deadline: replaced; after it: listed. (A simulated clock that ran on while
    // the journal wrote jumped to the deadline at the first write, and nothing but the first two moves ran.)
    expect(result.results.filter((x) => x.outcome === 'replaced').length).toBeGreaterThanOrEqual(3);
    expect(result.results.filter((x) => x.outcome === 'notStarted').length).toBeGreaterThan(0);
  });
});

describe('a drained node is no target', () => {
  it('a migration to it is refused before anything is touched, naming the way back', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': {}, 'node-b': { drained: true } },
      instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b' }],
    });
    const before = JSON.stringify(sim.snapshot().resources);
    const out = await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(out.outcome).toBe('rejected');
    expect(out.error).toBe(
      "Node node-b is drained: no instance moves to it (take the mark back with 'drbd-migrate undrain node-b')",
    );
    expect(JSON.stringify(sim.snapshot().resources)).toBe(before);
  });
});

describe('evacuate --all through the CLI, and undrain', () => {
  it('empties the node, says each instance’s new secondary, and takes the mark back', async () => {
    const dir = tempDir();
    process.env.DRBD_MIGRATE_STATE_DIR = `${dir}/state`;
    const file = `${dir}/w.json`;
    await cli('init', '--world', file, '--nodes', '3', '--instances', '6', '--seed', '2');
    const r = await cli('evacuate', 'node-b', '--world', file, '--all', '--allow-failover', '--quiet');
    expect(r.code, r.stderr.join('\n')).toBe(0);
    expect(r.stdout).toContainEqual(expect.stringMatching(/^INSTANCE +RUN +OUTCOME +PRIMARY +SECONDARY/));
    expect(r.stdout.at(-1)).toMatch(/^evacuated: node-b: \d+ moved, 0 not moved/);
    const { loadWorld } = await import('../src/cli/worldFile.js');
    const w = await loadWorld(file);
    expect([...heldOn(w, 'node-b').keys()]).toEqual([]);
    expect(w.nodes['node-b']?.drained).toBe(true);
    // A drained node is passed over by the placement.
    const placed = await cli('replace-secondary', 'web1', '--world', file, '--dry-run');
    expect(placed.stdout.join('\n')).not.toMatch(/new secondary of web1: node-b/);
    expect((await cli('undrain', 'node-b', '--world', file)).stdout).toEqual(['node-b is no longer drained']);
    expect((await loadWorld(file)).nodes['node-b']?.drained).toBe(false);
  });
});
