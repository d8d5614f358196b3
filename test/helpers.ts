import { expect } from 'vitest';
import { runCli } from '../src/cli/cli.js';
import {
  createSimCluster,
  type EffectCall,
  type EffectName,
  type Fault,
  type FaultKind,
  type ProtocolInput,
  type ProtocolOutput,
  type RunEvent,
  restStateProblems,
  runCleanup,
  runMigration,
  type SimCluster,
  type World,
  type WorldSpec,
} from '../src/index.js';

export interface SimRun {
  out: ProtocolOutput;
  sim: SimCluster;
  events: RunEvent[];
  /** Effects in the order they were started, with their inputs. */
  calls: { effect: EffectName; input: Record<string, unknown> }[];
  before: World;
}

export async function simulate(
  what: 'migration' | 'cleanup',
  options: {
    spec?: WorldSpec | World;
    sim?: SimCluster;
    faults?: Fault[];
    input?: Partial<ProtocolInput>;
  } = {},
): Promise<SimRun> {
  const sim = options.sim ?? createSimCluster(options.spec ?? {}, { faults: options.faults ?? [] });
  if (options.sim !== undefined) sim.faults = options.faults ?? [];
  const before = sim.snapshot();
  const events: RunEvent[] = [];
  const calls: SimRun['calls'] = [];
  const run = what === 'migration' ? runMigration : runCleanup;
  const out = await run({ instance: 'web1', ...options.input }, sim.effects, {
    clock: sim.clock,
    onEvent: (e) => events.push(e),
    onCall: (c: EffectCall) => {
      if (c.phase === 'start') calls.push({ effect: c.effect, input: c.input as Record<string, unknown> });
    },
  });
  return { out, sim, events, calls, before };
}

export const fault = (effect: EffectName, call: number | null, kind: FaultKind = 'error'): Fault => ({
  effect,
  call,
  kind,
});

export const feedback = (events: RunEvent[]) =>
  events.flatMap((e) =>
    e.type === 'feedback' ? [e.level === 'warning' ? `WARNING ${e.message}` : e.message] : [],
  );

/**
 * The outcome must tell the truth about the world (and no safety rule may ever have been broken):
 * migrated and reverted and cleaned leave the instance at rest where the config says; rejected
 * leaves everything as it was; needsCleanup and failed say what is left.
 */
export function expectTruthfulOutcome(run: SimRun, instance = 'web1', towards?: string) {
  const { out, sim, before } = run;
  const world = sim.world;
  expect(world.violations, 'safety rules broken').toEqual([]);
  const source = before.config.instances[instance]?.primaryNode;
  // A migration goes to the secondary unless it was sent to the third copy.
  const target = towards ?? before.config.instances[instance]?.secondaryNode;
  switch (out.outcome) {
    case 'migrated':
      expect(restStateProblems(world, instance)).toEqual([]);
      expect(world.config.instances[instance]?.primaryNode).toBe(target);
      expect(out.primaryNode).toBe(target);
      break;
    case 'reverted':
      expect(restStateProblems(world, instance)).toEqual([]);
      expect(world.config.instances[instance]?.primaryNode).toBe(source);
      expect(out.primaryNode).toBe(source);
      expect(out.error).toBeTruthy();
      break;
    case 'cleaned':
      expect(restStateProblems(world, instance)).toEqual([]);
      expect(out.primaryNode).toBe(world.config.instances[instance]?.primaryNode);
      break;
    case 'rejected':
      expect(shape(world)).toEqual(shape(before));
      expect(out.error).toBeTruthy();
      break;
    case 'needsCleanup':
    case 'failed':
      expect(out.error).toBeTruthy();
      expect(out.left?.length).toBeGreaterThan(0);
      // The config's own word, or null where the run could not read it back.
      if (out.primaryNode !== null)
        expect(out.primaryNode).toBe(world.config.instances[instance]?.primaryNode);
      break;
  }
}

/** What a step can change in a world, leaving out what time alone changes (clock, guest uptime). */
export function shape(world: World) {
  return {
    resources: world.resources,
    config: world.config,
    commits: world.commits,
    vms: Object.fromEntries(
      Object.entries(world.vms).map(([n, vms]) => [
        n,
        Object.fromEntries(
          Object.entries(vms).map(([i, vm]) => [i, { state: vm.state, memoryMiB: vm.memoryMiB }]),
        ),
      ]),
    ),
  };
}

/** Runs one CLI invocation in-process, capturing its lines. */
export async function cli(...argv: string[]) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCli(argv, { out: (l) => stdout.push(l), err: (l) => stderr.push(l) });
  return { code, stdout, stderr, json: () => stdout.map((l) => JSON.parse(l)) };
}

/** Two roomy nodes and one guest of `memoryMiB` that dirties `dirtyMiBps` over all of its memory (a stream). */
export const streamingGuest = (memoryMiB: number, dirtyMiBps: number): WorldSpec => ({
  nodes: { 'node-a': { memoryMiB: 65_536 }, 'node-b': { memoryMiB: 65_536 } },
  instances: [
    { name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB, dirtyMiBps, workingSetMiB: memoryMiB },
  ],
});
