import fc from 'fast-check';
import {
  type EffectName,
  type EvacuationInput,
  EvacuationJournal,
  type EvacuationOutput,
  type Fault,
  FileJournal,
  FileLocks,
  type InstanceRequest,
  RunInterrupted,
  restStateProblems,
  runEvacuationJournaled,
  type SimCluster,
  type World,
  type WorldSpec,
} from '../src/index.js';

/** What the drain tests share: small worlds to drain, a watch on the limits, and the truth of a summary. */

export type Spec = NonNullable<WorldSpec['instances']>[number];

export function cluster(instances: Spec[], nodes = ['node-a', 'node-b', 'node-c', 'node-d']): WorldSpec {
  return {
    nodes: Object.fromEntries(nodes.map((n) => [n, { memoryMiB: 1e9 }])),
    instances,
    settings: { stepMs: 50 },
  };
}

export const vm = (
  name: string,
  primary: string,
  secondary: string | null,
  extra: Partial<Spec> = {},
): Spec => ({
  name,
  primary,
  secondary,
  memoryMiB: 512,
  disksMiB: [256],
  ...extra,
});

/** Runs in flight per node, checked at every start against the limits. */
export function limitWatch(limits: { concurrency: number; perNode: number }) {
  const load = new Map<string, number>();
  let running = 0;
  const problems: string[] = [];
  const order: string[] = [];
  return {
    problems,
    order,
    onRun: (n: { phase: 'start' | 'end'; request: InstanceRequest }) => {
      const d = n.phase === 'start' ? 1 : -1;
      running += d;
      if (n.phase === 'start') order.push(n.request.instance);
      for (const node of new Set([n.request.source, n.request.target]))
        load.set(node, (load.get(node) ?? 0) + d);
      if (running > limits.concurrency)
        problems.push(`${running} runs at once (limit ${limits.concurrency})`);
      for (const [node, l] of load)
        if (l > limits.perNode) problems.push(`${l} runs on ${node} at once (limit ${limits.perNode})`);
    },
  };
}

/** The outcome must tell the truth about the world, instance by instance. */
export function summaryProblems(out: EvacuationOutput, before: World, world: World): string[] {
  const problems = [...world.violations];
  for (const r of out.results) {
    const was = before.config.instances[r.instance]!;
    const now = world.config.instances[r.instance]!;
    const at = (what: string) => `${r.instance} (${r.outcome}): ${what}`;
    switch (r.outcome) {
      case 'migrated':
      case 'failedOver':
        if (now.primaryNode !== was.secondaryNode) problems.push(at(`config names ${now.primaryNode}`));
        if (now.adminState === 'up') problems.push(...restStateProblems(world, r.instance).map(at));
        break;
      // rejected: a prerequisite failed and nothing was touched.
      case 'rejected':
      case 'reverted':
      case 'skipped':
      case 'notStarted':
        if (now.primaryNode !== was.primaryNode) problems.push(at(`config names ${now.primaryNode}`));
        if (now.adminState === 'up' && was.secondaryNode !== null && ['drbd'].includes(was.diskTemplate))
          problems.push(...restStateProblems(world, r.instance).map(at));
        break;
      default:
        problems.push(at(`ended ${r.outcome}: ${r.error ?? ''}`));
    }
  }
  return problems;
}

/**
 * A journaled drain on the simulator with limits of 4 in all and 2 per node, watched; with
 * `stopAfter` its orchestrator dies after that many runs ended (its runs stopped with it), and the
 * drain is resumed from its journal.
 */
export async function journaledDrain(
  sim: SimCluster,
  dir: string,
  input: EvacuationInput,
  stopAfter: number | null,
) {
  const watch = limitWatch({ concurrency: 4, perNode: 2 });
  const stop = new AbortController();
  let ended = 0;
  let live = 0;
  let allEnded = () => {};
  const options = {
    clock: sim.clock,
    store: new FileJournal(dir),
    locks: new FileLocks(dir),
    evacuations: new EvacuationJournal(dir),
    onRun: (n: Parameters<typeof watch.onRun>[0]) => {
      watch.onRun(n);
      live += n.phase === 'start' ? 1 : -1;
      if (live === 0) allEnded();
      if (n.phase === 'end' && ++ended === stopAfter) stop.abort();
    },
    signal: stop.signal,
  };
  const asked = { concurrency: 4, perNode: 2, ...input };
  const first = await runEvacuationJournaled(asked, sim.effects, options).catch((e: unknown) => e);
  if (!(first instanceof RunInterrupted)) return { out: first as EvacuationOutput, watch };
  // The dead orchestrator's runs are stopped with it; their ends are told as they unwind.
  if (live > 0) await new Promise<void>((resolve) => (allEnded = resolve));
  const resumed = await runEvacuationJournaled(asked, sim.effects, { ...options, signal: undefined }, true);
  return { out: resumed, watch };
}

/** 80 faults of every kind at calls 1 to 1,500 of the given effects, the same for the same seed. */
export function randomFaults(effects: EffectName[], seed: number): Fault[] {
  return fc.sample(
    fc.record({
      effect: fc.constantFrom<EffectName>(...effects),
      call: fc.integer({ min: 1, max: 1500 }),
      kind: fc.constantFrom<Fault['kind']>('error', 'hang', 'lost'),
    }),
    { seed, numRuns: 80 },
  );
}
