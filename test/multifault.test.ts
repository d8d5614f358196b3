import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createSimCluster,
  DEMO_SPEC,
  EFFECT_NAMES,
  type Fault,
  MACHINES,
  NEEDS_A_PERSON,
  type ProtocolInput,
  type ProtocolOutput,
  RunInterrupted,
  runCleanup,
  runFailover,
  runMachine,
  runMigration,
  runRejoin,
} from '../src/index.js';
import { outcomeProblems, primaryNodeProblems, restProblems, viewOfSim } from '../src/testing/index.js';

/**
 * Several faults in one run (errors, hangs, lost answers, at random calls or on every call), an
 * operator who may abort, and an orchestrator that may die at a random transition; then a cleanup
 * with no faults. After every run: no safety rule broken at any step, every outcome truthful, and
 * the output's primaryNode what the config store says. Seeded, so a failure replays exactly
 * (fast-check prints the seed and the shrunk case).
 */

const faultArb: fc.Arbitrary<Fault> = fc.record({
  effect: fc.constantFrom(...EFFECT_NAMES),
  // Most migrations make under 20 calls of one effect; null hits every call.
  call: fc.option(fc.integer({ min: 1, max: 20 }), { nil: null, freq: 6 }),
  kind: fc.constantFrom('error', 'hang', 'lost'),
});

const caseArb = fc.record({
  faults: fc.array(faultArb, { minLength: 2, maxLength: 5 }),
  /** Die after this many transitions (null: run to the end). */
  crashAfter: fc.option(fc.integer({ min: 1, max: 60 }), { nil: null, freq: 2 }),
  /** The operator aborts after this many transitions. */
  abortAfter: fc.option(fc.integer({ min: 1, max: 40 }), { nil: null, freq: 4 }),
  nonLive: fc.boolean(),
  storage: fc.constantFrom('drbd' as const, 'blockdev' as const),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

async function check(c: Case): Promise<string[]> {
  const sim = createSimCluster({
    instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, diskTemplate: c.storage })),
  });
  sim.faults = c.faults;
  const problems: string[] = [];
  const before = viewOfSim(sim);
  const stop = new AbortController();
  const operator = new AbortController();
  let transitions = 0;
  let output: ProtocolOutput | null = null;
  try {
    output = await runMigration(
      { instance: 'web1', ...(c.nonLive ? { mode: 'non-live' } : {}) },
      sim.effects,
      {
        clock: sim.clock,
        signal: stop.signal,
        abort: operator.signal,
        onEvent: (e) => {
          if (e.type !== 'state') return;
          transitions++;
          if (transitions === c.abortAfter) operator.abort();
          if (transitions === c.crashAfter) queueMicrotask(() => stop.abort());
        },
      },
    );
  } catch (error) {
    if (!(error instanceof RunInterrupted)) throw error;
  }
  if (output !== null) {
    for (const p of outcomeProblems(output, before, viewOfSim(sim))) problems.push(`migration: ${p}`);
  }
  // The cleanup finds the world as the run (or its death) left it, with no faults now.
  sim.faults = [];
  const cleanup = await runCleanup({ instance: 'web1' }, sim.effects, { clock: sim.clock });
  const after = viewOfSim(sim);
  for (const p of primaryNodeProblems(cleanup, after)) problems.push(`cleanup: ${p}`);
  if (cleanup.outcome === 'cleaned') {
    for (const p of restProblems(after)) problems.push(`cleanup: cleaned but ${p}`);
  } else if (!(cleanup.outcome === 'failed' && NEEDS_A_PERSON.has(cleanup.verdict))) {
    problems.push(`cleanup ended ${cleanup.outcome}: ${cleanup.error ?? ''}`);
  }
  for (const v of sim.world.violations) problems.push(v);
  return problems;
}

const RUNS = Number(process.env.MULTIFAULT_RUNS ?? 2000);

describe('several faults per run, random crashes and aborts, then a cleanup', () => {
  it(`holds every safety rule and tells the truth in ${RUNS} seeded cases`, async () => {
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        cases++;
        expect(await check(c)).toEqual([]);
      }),
      { numRuns: RUNS, seed: Number(process.env.MULTIFAULT_SEED ?? 20261130), endOnFailure: false },
    );
    expect(cases).toBeGreaterThanOrEqual(RUNS);
  }, 600_000);
});

/**
 * The failover and its repairs, as the held-out check runs them: the source stopped, dead, or dead
 * after writing alone; several faults in the failover, a crash at a random transition; then, with no
 * faults, the repair the CLI advises (the failover again before its commit, `failover --cleanup`
 * after it), and the dead node's rejoin once it boots. It must end with the instance running once,
 * where the config names, the disks connected and in sync, and no safety rule broken on the way.
 */
const FAILOVER_EFFECTS = [
  'getInstance',
  'probeNode',
  'instanceList',
  'diskStatus',
  'nodeDiskStatus',
  'nodeInfo',
  'shutdownInstance',
  'closeDisks',
  'setPrimaryNode',
  'openDisks',
  'startInstance',
] as const;

const failoverCaseArb = fc.record({
  source: fc.constantFrom('stopped' as const, 'dies' as const, 'diesWritingAlone' as const),
  faults: fc.array(
    fc.record({
      effect: fc.constantFrom(...FAILOVER_EFFECTS),
      call: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 6 }),
      kind: fc.constantFrom('error' as const, 'hang' as const, 'lost' as const),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  crashAfter: fc.option(fc.integer({ min: 1, max: 14 }), { nil: null, freq: 2 }),
  /** Faults in the first rejoin too; a second one, without, must finish what it left. */
  rejoinFaults: fc.array(
    fc.record({
      effect: fc.constantFrom(
        'probeNode',
        'diskStatus',
        'closeDisks',
        'disconnectNet',
        'attachNet',
        'waitSync',
        'shutdownInstance',
      ),
      call: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 4 }),
      kind: fc.constantFrom('error' as const, 'hang' as const, 'lost' as const),
    }),
    { maxLength: 2 },
  ),
});

/** Runs a machine that dies (as its orchestrator would) after `crashAfter` transitions; null if it died. */
async function runUntilCrash(
  machine: keyof typeof MACHINES,
  input: ProtocolInput,
  sim: ReturnType<typeof createSimCluster>,
  crashAfter: number | null,
): Promise<ProtocolOutput | null> {
  const stop = new AbortController();
  let transitions = 0;
  try {
    return await runMachine(MACHINES[machine], input, sim.effects, {
      clock: sim.clock,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'state' && ++transitions === crashAfter) queueMicrotask(() => stop.abort());
      },
    });
  } catch (error) {
    if (!(error instanceof RunInterrupted)) throw error;
    return null;
  }
}

type FailoverCase = typeof failoverCaseArb extends fc.Arbitrary<infer T> ? T : never;

async function checkFailover(c: FailoverCase): Promise<string[]> {
  const sim = createSimCluster();
  const problems: string[] = [];
  const dead = c.source !== 'stopped';
  if (dead) sim.killNode('node-a', { wroteAlone: c.source === 'diesWritingAlone' });
  const word = dead ? { sourceIsDown: true } : {};
  const before = viewOfSim(sim);
  sim.faults = c.faults;
  const output = await runUntilCrash('failover', { instance: 'web1', ...word }, sim, c.crashAfter);
  if (output !== null)
    for (const p of outcomeProblems(output, before, viewOfSim(sim))) problems.push(`failover: ${p}`);
  sim.faults = [];
  if (output?.outcome !== 'failedOver') {
    // The advice: before the commit, the failover again; after it, its repair.
    const committed = sim.world.config.instances.web1?.primaryNode === 'node-b';
    const repair = await runFailover(
      { instance: 'web1', ...word, ...(committed ? { cleanup: true } : {}) },
      sim.effects,
      {
        clock: sim.clock,
      },
    );
    for (const p of primaryNodeProblems(repair, viewOfSim(sim))) problems.push(`repair: ${p}`);
    if (repair.outcome !== 'failedOver')
      problems.push(`repair ended ${repair.outcome}: ${repair.error ?? ''}`);
  }
  if (dead) {
    sim.reviveNode('node-a');
    sim.faults = c.rejoinFaults;
    const first = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    for (const p of primaryNodeProblems(first, viewOfSim(sim))) problems.push(`rejoin: ${p}`);
    sim.faults = [];
    if (first.outcome !== 'rejoined') {
      const back = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
      if (back.outcome !== 'rejoined') problems.push(`rejoin ended ${back.outcome}: ${back.error ?? ''}`);
    }
  }
  const after = viewOfSim(sim);
  if (after.configPrimary !== 'node-b') problems.push(`the config names ${after.configPrimary}, not node-b`);
  for (const p of restProblems(after)) problems.push(`at the end: ${p}`);
  for (const v of sim.world.violations) problems.push(v);
  return problems;
}

describe('failovers with several faults and crashes, then the advised repair and the rejoin', () => {
  const runs = Math.max(100, Math.floor(RUNS / 4));
  it(`ends running once, in sync, every safety rule held, in ${runs} seeded cases`, async () => {
    await fc.assert(
      fc.asyncProperty(failoverCaseArb, async (c) => {
        expect(await checkFailover(c)).toEqual([]);
      }),
      { numRuns: runs, seed: Number(process.env.MULTIFAULT_SEED ?? 20261204) },
    );
  }, 600_000);
});

/**
 * Replaces of a secondary with several faults and a random crash: the old secondary alive, or lost
 * (powered off before the replace); then the repair the run names (replace-secondary --cleanup, with
 * the new node until the commit), and, for a lost one that comes back, that repair again. At the end:
 * the instance runs on its primary, untouched; its disks single-master, connected, in sync on the two
 * nodes the config names; nothing of it left on a third node; no safety rule broken at any step;
 * every outcome truthful (rule 8's count of copies among them).
 */
const replaceCaseArb = fc.record({
  oldSecondary: fc.constantFrom('alive' as const, 'lost' as const),
  crashAfter: fc.option(fc.integer({ min: 1, max: 30 }), { nil: null, freq: 2 }),
  faults: fc.array(
    fc.record({
      effect: fc.constantFrom(
        'createDisks' as const,
        'removeDisks' as const,
        'disconnectNet' as const,
        'attachNet' as const,
        'waitSync' as const,
        'setSecondaryNode' as const,
        'forgetFormerSecondary' as const,
        'getInstance' as const,
        'nodeStorage' as const,
      ),
      call: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 4 }),
      kind: fc.constantFrom('error' as const, 'hang' as const, 'lost' as const),
    }),
    { minLength: 1, maxLength: 4 },
  ),
});

type ReplaceCase = typeof replaceCaseArb extends fc.Arbitrary<infer T> ? T : never;

const THREE = {
  nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} },
  instances: [
    { name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048, disksMiB: [1024, 512] },
  ],
  // A guest that writes fast: a replace or an undo that does not wait for the resync is seen.
  settings: { guestWriteKiBps: 100 * 1024 },
};

async function checkReplace(c: ReplaceCase): Promise<string[]> {
  const sim = createSimCluster(THREE);
  const problems: string[] = [];
  const lost = c.oldSecondary === 'lost';
  if (lost) sim.killNode('node-b');
  const before = viewOfSim(sim);
  const uptime = () => sim.snapshot().vms['node-a']?.web1?.state;
  sim.faults = c.faults;
  const output = await runUntilCrash(
    'changeSecondary',
    { instance: 'web1', newSecondary: 'node-c' },
    sim,
    c.crashAfter,
  );
  if (output !== null)
    for (const p of outcomeProblems(output, before, viewOfSim(sim))) problems.push(`replace: ${p}`);
  sim.faults = [];
  const repair = async (when: string) => {
    const config = sim.world.config.instances.web1!;
    // The repair the CLI names: past the commit the config says what to finish; before it, node-c.
    const input =
      config.formerSecondary !== null
        ? { instance: 'web1', cleanup: true }
        : { instance: 'web1', cleanup: true, newSecondary: 'node-c' };
    const out = await runMachine(MACHINES.changeSecondary, input, sim.effects, { clock: sim.clock });
    if (out.outcome !== 'cleaned')
      problems.push(`${when}: the repair ended ${out.outcome}: ${out.error ?? ''}`);
  };
  const config = () => sim.world.config.instances.web1!;
  const leftOnC = () =>
    config().secondaryNode !== 'node-c' && sim.world.resources['web1-disk0']?.local['node-c'] !== undefined;
  // What the world asks for (a crash leaves no outcome to read): a replace past its commit that did
  // not finish, or what one before it left on node-c.
  if (output?.outcome === 'needsCleanup' || leftOnC() || (!lost && config().formerSecondary !== null))
    await repair('after the replace');
  if (lost) {
    // Undone while node-b is still lost: the replace is run again (its advice), with nothing failing.
    if (config().secondaryNode === 'node-b') {
      const again = await runMachine(
        MACHINES.changeSecondary,
        { instance: 'web1', newSecondary: 'node-c' },
        sim.effects,
        { clock: sim.clock },
      );
      if (again.outcome !== 'replaced')
        problems.push(`the replace again ended ${again.outcome}: ${again.error ?? ''}`);
    }
    sim.reviveNode('node-b');
    if (config().formerSecondary === 'node-b') await repair('once node-b is back');
  }
  const after = viewOfSim(sim);
  if (uptime() !== 'running') problems.push(`web1 is ${uptime()} on node-a`);
  if (after.configPrimary !== 'node-a') problems.push(`the config names ${after.configPrimary} as primary`);
  // Where the old secondary was lost, the replace must have gone through: it is the one way back to two copies.
  if (lost && after.configSecondary !== 'node-c')
    problems.push(`the secondary is ${after.configSecondary}, node-b being lost`);
  for (const p of restProblems(after)) problems.push(`at the end: ${p}`);
  if (after.configFormerSecondary !== null)
    problems.push(`the config still names ${after.configFormerSecondary} as holding old copies`);
  if ((after.copies ?? []).some((n) => n < 2)) problems.push(`copies at the end: ${after.copies?.join('/')}`);
  for (const v of sim.world.violations) problems.push(v);
  return problems;
}

describe('replaces of a secondary with several faults and crashes, then the repair they name', () => {
  const runs = Math.max(100, Math.floor(RUNS / 4));
  it(`ends with two copies on the nodes the config names and nothing elsewhere, in ${runs} seeded cases`, async () => {
    await fc.assert(
      fc.asyncProperty(replaceCaseArb, async (c) => {
        expect(await checkReplace(c)).toEqual([]);
      }),
      { numRuns: runs, seed: Number(process.env.MULTIFAULT_SEED ?? 20261204) },
    );
  }, 600_000);
});

/**
 * replace-third-copy with several faults and a random crash, the old third copy alive or lost (powered
 * off before the move); then the repair the run names, and for a lost one that comes back, that repair
 * again. At the end: web1 runs on its primary, the secondary is the secondary still, three copies in
 * sync on the nodes the config names (node-e where node-c was lost), nothing elsewhere, no rule broken.
 */
const thirdCaseArb = fc.record({
  oldThird: fc.constantFrom('alive' as const, 'lost' as const),
  crashAfter: fc.option(fc.integer({ min: 1, max: 40 }), { nil: null, freq: 2 }),
  faults: fc.array(
    fc.record({
      effect: fc.constantFrom(
        'createDisks' as const,
        'removeDisks' as const,
        'attachNet' as const,
        'removePeer' as const,
        'waitSync' as const,
        'diskStatus' as const,
        'nodeDiskStatus' as const,
        'setThirdCopyNode' as const,
        'forgetFormerThirdCopy' as const,
        'getInstance' as const,
      ),
      call: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 4 }),
      kind: fc.constantFrom('error' as const, 'hang' as const, 'lost' as const),
    }),
    { minLength: 1, maxLength: 4 },
  ),
});

type ThirdCase = typeof thirdCaseArb extends fc.Arbitrary<infer T> ? T : never;

const THREE_COPIES = {
  nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {}, 'node-e': {} },
  instances: [
    {
      name: 'web1',
      primary: 'node-a',
      secondary: 'node-b',
      thirdCopy: 'node-c',
      memoryMiB: 2048,
      disksMiB: [1024, 512],
    },
  ],
  settings: { guestWriteKiBps: 100 * 1024 },
};

async function checkThirdMove(c: ThirdCase): Promise<string[]> {
  const sim = createSimCluster(THREE_COPIES);
  const problems: string[] = [];
  const lost = c.oldThird === 'lost';
  if (lost) sim.killNode('node-c');
  const before = viewOfSim(sim);
  const move = { instance: 'web1', replaceCopy: 'thirdCopy' as const };
  sim.faults = c.faults;
  const output = await runUntilCrash(
    'changeSecondary',
    { ...move, newSecondary: 'node-e' },
    sim,
    c.crashAfter,
  );
  if (output !== null)
    for (const p of outcomeProblems(output, before, viewOfSim(sim))) problems.push(`move: ${p}`);
  sim.faults = [];
  const config = () => sim.world.config.instances.web1!;
  const repair = async (when: string) => {
    // The repair the CLI names: past the commit the config says what to finish; before it, node-e.
    const input =
      config().formerThirdCopy !== null
        ? { ...move, cleanup: true }
        : { ...move, cleanup: true, newSecondary: 'node-e' };
    const out = await runMachine(MACHINES.changeSecondary, input, sim.effects, { clock: sim.clock });
    if (out.outcome !== 'cleaned')
      problems.push(`${when}: the repair ended ${out.outcome}: ${out.error ?? ''}`);
  };
  const leftOnE = () =>
    config().thirdCopy !== 'node-e' && sim.world.resources['web1-disk0']?.local['node-e'] !== undefined;
  if (output?.outcome === 'needsCleanup' || leftOnE() || (!lost && config().formerThirdCopy !== null))
    await repair('after the move');
  if (lost) {
    if (config().thirdCopy === 'node-c') {
      const again = await runMachine(
        MACHINES.changeSecondary,
        { ...move, newSecondary: 'node-e' },
        sim.effects,
        {
          clock: sim.clock,
        },
      );
      if (again.outcome !== 'replaced')
        problems.push(`the move again ended ${again.outcome}: ${again.error ?? ''}`);
    }
    sim.reviveNode('node-c');
    if (config().formerThirdCopy === 'node-c') await repair('once node-c is back');
  }
  const after = viewOfSim(sim);
  if (sim.snapshot().vms['node-a']?.web1?.state !== 'running')
    problems.push('web1 stopped running on node-a');
  if (after.configPrimary !== 'node-a' || after.configSecondary !== 'node-b')
    problems.push(`the config names ${after.configPrimary} and ${after.configSecondary}`);
  if (lost && after.configThirdCopy !== 'node-e')
    problems.push(`the third copy is ${after.configThirdCopy}, node-c being lost`);
  for (const p of restProblems(after)) problems.push(`at the end: ${p}`);
  if (after.configFormerThirdCopy !== null)
    problems.push(`the config still names ${after.configFormerThirdCopy} as holding old copies`);
  if ((after.copies ?? []).some((n) => n < 3)) problems.push(`copies at the end: ${after.copies?.join('/')}`);
  for (const v of sim.world.violations) problems.push(v);
  return problems;
}

describe('moves of a third copy with several faults and crashes, then the repair they name', () => {
  const runs = Math.max(100, Math.floor(RUNS / 4));
  it(`ends with three copies on the nodes the config names and nothing elsewhere, in ${runs} seeded cases`, async () => {
    await fc.assert(
      fc.asyncProperty(thirdCaseArb, async (c) => {
        expect(await checkThirdMove(c)).toEqual([]);
      }),
      { numRuns: runs, seed: Number(process.env.MULTIFAULT_SEED ?? 20261206) },
    );
  }, 600_000);
});
