import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createSimCluster,
  DEMO_SPEC,
  EFFECT_NAMES,
  type Fault,
  NEEDS_A_PERSON,
  type ProtocolOutput,
  RunInterrupted,
  runCleanup,
  runMigration,
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
