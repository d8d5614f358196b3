import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EvacuationView } from '../src/cli/evacuationView.js';
import { saveWorld } from '../src/cli/worldFile.js';
import {
  createSimCluster,
  createWorld,
  EFFECT_NAMES,
  type EffectName,
  EvacuationJournal,
  type EvacuationOutput,
  type Fault,
  FileJournal,
  FileLocks,
  type InstanceRequest,
  RunInterrupted,
  restStateProblems,
  runEvacuation,
  runEvacuationJournaled,
  type SimCluster,
  type Verdict,
  type World,
  type WorldSpec,
} from '../src/index.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/**
 * Draining a node (issue 12): every primary instance of the node moves to its secondary, each by its
 * own run, under a limit in all and per node, past individual failures; the outcome lists each.
 */

type Spec = NonNullable<WorldSpec['instances']>[number];

function cluster(instances: Spec[], nodes = ['node-a', 'node-b', 'node-c', 'node-d']): WorldSpec {
  return {
    nodes: Object.fromEntries(nodes.map((n) => [n, { memoryMiB: 1e9 }])),
    instances,
    settings: { stepMs: 50 },
  };
}

const vm = (name: string, primary: string, secondary: string | null, extra: Partial<Spec> = {}): Spec => ({
  name,
  primary,
  secondary,
  memoryMiB: 512,
  disksMiB: [256],
  ...extra,
});

/** Runs in flight per node, checked at every start against the limits. */
function limitWatch(limits: { concurrency: number; perNode: number }) {
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
function summaryProblems(out: EvacuationOutput, before: World, world: World): string[] {
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

describe('evacuating a node on the simulated cluster', () => {
  const mixed = () =>
    cluster([
      vm('big', 'node-a', 'node-b', { memoryMiB: 4096 }),
      vm('small', 'node-a', 'node-c', { memoryMiB: 256 }),
      vm('medium', 'node-a', 'node-d', { memoryMiB: 1024 }),
      vm('stopped', 'node-a', 'node-b', { running: false, adminState: 'down' }),
      vm('local', 'node-a', null, { diskTemplate: 'plain' }),
      vm('elsewhere', 'node-b', 'node-a'),
    ]);

  it('moves every primary instance of the node, largest first, and lists those it cannot with why', async () => {
    const sim = createSimCluster(mixed());
    const before = sim.snapshot();
    const watch = limitWatch({ concurrency: 2, perNode: 2 });
    const out = await runEvacuation({ node: 'node-a' }, sim.effects, {
      clock: sim.clock,
      onRun: watch.onRun,
    });
    expect(out.outcome).toBe('incomplete');
    expect(out.results.map((r) => [r.instance, r.outcome])).toEqual([
      ['local', 'skipped'],
      ['stopped', 'skipped'],
      ['big', 'migrated'],
      ['medium', 'migrated'],
      ['small', 'migrated'],
    ]);
    expect(out.results.find((r) => r.instance === 'stopped')?.error).toMatch(/it is down.*allow failover/);
    expect(out.results.find((r) => r.instance === 'local')?.error).toMatch(/plain disks have no second node/);
    expect(watch.order).toEqual(['big', 'medium', 'small']);
    expect(out.counts).toEqual({ moved: 3, failed: 0, skipped: 2, notStarted: 0 });
    expect(watch.problems).toEqual([]);
    expect(summaryProblems(out, before, sim.world)).toEqual([]);
    // Not its primary: untouched.
    expect(sim.world.config.instances.elsewhere?.primaryNode).toBe('node-b');
  });

  it('fails over instances that are down when allowed, first (they copy nothing)', async () => {
    const sim = createSimCluster(mixed());
    const watch = limitWatch({ concurrency: 2, perNode: 2 });
    const out = await runEvacuation({ node: 'node-a', allowFailover: true }, sim.effects, {
      clock: sim.clock,
      onRun: watch.onRun,
    });
    expect(watch.order[0]).toBe('stopped');
    expect(out.results.find((r) => r.instance === 'stopped')).toMatchObject({
      operation: 'failover',
      outcome: 'failedOver',
      primaryNode: 'node-b',
    });
    expect(out.counts.moved).toBe(4);
  });

  it('goes on past a failed run, and follows a run left half-done with the cleanup', async () => {
    const instances = ['v1', 'v2', 'v3', 'v4'].map((n, i) => vm(n, 'node-a', ['node-b', 'node-c'][i % 2]!));
    // The first acceptInstance fails (that copy is reverted); the first source finalize fails (the
    // run ends needsCleanup, and the evacuation's cleanup finds the instance on its target).
    const faults: Fault[] = [
      { effect: 'acceptInstance', call: 1, kind: 'error' },
      { effect: 'finalizeMigrationSource', call: 2, kind: 'error' },
    ];
    const sim = createSimCluster(cluster(instances), { faults });
    const before = sim.snapshot();
    const out = await runEvacuation({ node: 'node-a', concurrency: 1 }, sim.effects, { clock: sim.clock });
    const outcomes = out.results.map((r) => `${r.instance}:${r.operation}:${r.outcome}`);
    expect(outcomes).toContain('v1:migration:reverted');
    expect(outcomes.filter((o) => o.endsWith(':migrated')).length).toBe(3);
    expect(outcomes.some((o) => o.includes(':cleanup:migrated'))).toBe(true);
    expect(out.outcome).toBe('incomplete');
    expect(summaryProblems(out, before, sim.world)).toEqual([]);
  });

  it('an operator abort starts nothing more; the runs under way stop at their safe point', async () => {
    const instances = Array.from({ length: 6 }, (_, i) => vm(`v${i}`, 'node-a', 'node-b'));
    const sim = createSimCluster(cluster(instances));
    const before = sim.snapshot();
    const abort = new AbortController();
    const out = await runEvacuation({ node: 'node-a', concurrency: 2 }, sim.effects, {
      clock: sim.clock,
      abort: abort.signal,
      onRun: (n) => {
        if (n.phase === 'start' && n.request.instance === 'v1') abort.abort();
      },
    });
    expect(out.outcome).toBe('aborted');
    const started = out.results.filter((r) => r.outcome !== 'notStarted');
    expect(started.map((r) => r.instance).sort()).toEqual(['v0', 'v1']);
    for (const r of started) expect(['reverted', 'migrated']).toContain(r.outcome);
    expect(out.results.filter((r) => r.outcome === 'notStarted').map((r) => r.instance)).toEqual([
      'v2',
      'v3',
      'v4',
      'v5',
    ]);
    expect(out.counts.notStarted).toBe(4);
    expect(summaryProblems(out, before, sim.world)).toEqual([]);
  });

  it('resumed after its process died in a handover, tells the cleanup that finished the move as such', async () => {
    const sim = createSimCluster(cluster([vm('v0', 'node-a', 'node-b')]));
    const before = sim.snapshot();
    const dir = tempDir('drbd-migrate-evac-');
    const stop = new AbortController();
    const options = {
      clock: sim.clock,
      store: new FileJournal(dir),
      locks: new FileLocks(dir),
      evacuations: new EvacuationJournal(dir),
      // Dies while QEMU copies: the resumed run must look where the instance runs, not go on blind.
      onInstanceEvent: (_: string, e: { type: string; kind?: string }) => {
        if (e.type === 'progress' && e.kind === 'memory') stop.abort();
      },
      signal: stop.signal,
    };
    const first = await runEvacuationJournaled({ node: 'node-a' }, sim.effects, options).catch(
      (e: unknown) => e,
    );
    expect(first).toBeInstanceOf(RunInterrupted);
    const out = await runEvacuationJournaled(
      { node: 'node-a' },
      sim.effects,
      { ...options, onInstanceEvent: () => {}, signal: undefined },
      true,
    );
    expect(out.results).toEqual([
      expect.objectContaining({
        instance: 'v0',
        operation: 'cleanup',
        outcome: expect.stringMatching(/migrated|reverted/),
      }),
    ]);
    expect(summaryProblems(out, before, sim.world)).toEqual([]);
  });

  it('refuses bad input before reading anything', async () => {
    const sim = createSimCluster(mixed());
    const out = await runEvacuation({ node: 'node-a', concurrency: 0 } as never, sim.effects, {
      clock: sim.clock,
    });
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(/concurrency: must be at least 1/);
    expect(sim.calls.listInstances).toBe(0);
  });
});

/**
 * The scale test of the issue: 1,000 instances over five nodes, a fifth of them on the drained node
 * not movable or stopped, random faults of every kind on every effect, limits of 4 in all and 2 per
 * node. Killed mid-way, the journaled evacuation is resumed and must end the same way.
 */
describe('evacuating 1,000 instances with random faults', () => {
  const nodes = ['n0', 'n1', 'n2', 'n3', 'n4'];
  function world(seed: number) {
    const rnd = fc.sample(fc.integer({ min: 0, max: 99 }), { seed, numRuns: 1000 });
    const instances = rnd.map((r, i): Spec => {
      const onDrained = i % 2 === 0;
      const other = nodes[1 + (i % 4)]!;
      const [primary, secondary] = onDrained ? ['n0', other] : [other, 'n0'];
      if (r < 4) return vm(`vm${i}`, primary, null, { diskTemplate: 'plain', memoryMiB: 256 });
      if (r < 10)
        return vm(`vm${i}`, primary, secondary, { running: false, adminState: 'down', memoryMiB: 256 });
      return vm(`vm${i}`, primary, secondary, { memoryMiB: 256 + (r % 8) * 128 });
    });
    return cluster(instances, nodes);
  }
  function faults(seed: number): Fault[] {
    const effects = EFFECT_NAMES.filter((e) => e !== 'listInstances');
    return fc.sample(
      fc.record({
        effect: fc.constantFrom<EffectName>(...effects),
        call: fc.integer({ min: 1, max: 1500 }),
        kind: fc.constantFrom<Fault['kind']>('error', 'hang', 'lost'),
      }),
      { seed, numRuns: 80 },
    );
  }

  async function drain(sim: SimCluster, dir: string, stopAfter: number | null) {
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
    const input = { node: 'n0', concurrency: 4, perNode: 2, allowFailover: true };
    const first = await runEvacuationJournaled(input, sim.effects, options).catch((e: unknown) => e);
    if (!(first instanceof RunInterrupted)) return { out: first as EvacuationOutput, watch };
    // The dead orchestrator's runs are stopped with it; their ends are told as they unwind.
    if (live > 0) await new Promise<void>((resolve) => (allEnded = resolve));
    const resumed = await runEvacuationJournaled(input, sim.effects, { ...options, signal: undefined }, true);
    return { out: resumed, watch };
  }

  for (const [name, stopAfter] of [
    ['runs to its end', null],
    ['killed after 150 runs and resumed', 150],
  ] as const) {
    it(`${name}: every instance migrated, failed over, or reverted; limits and safety rules held`, async () => {
      const sim = createSimCluster(world(7), { faults: faults(11) });
      const before = sim.snapshot();
      const { out, watch } = await drain(sim, tempDir('drbd-migrate-evac-'), stopAfter);
      expect(watch.problems).toEqual([]);
      expect(summaryProblems(out, before, sim.world)).toEqual([]);
      const concerned = Object.values(before.config.instances).filter((c) => c.primaryNode === 'n0');
      expect(out.results.map((r) => r.instance).sort()).toEqual(concerned.map((c) => c.name).sort());
      expect(out.counts.skipped).toBe(concerned.filter((c) => c.secondaryNode === null).length);
      expect(out.counts.moved + out.counts.skipped + out.counts.failed).toBe(concerned.length);
      // The faults did hit: some runs were refused or undone, some half-done ones cleaned up.
      expect(out.results.some((r) => r.outcome === 'reverted' || r.outcome === 'rejected')).toBe(true);
      expect(out.results.some((r) => r.operation === 'cleanup')).toBe(true);
    }, 300_000);
  }
});

describe('drbd-migrate evacuate', () => {
  const world = (file: string) =>
    saveWorld(
      file,
      createWorld(
        cluster([
          ...Array.from({ length: 6 }, (_, i) => vm(`v${i}`, 'node-a', ['node-b', 'node-c'][i % 2]!)),
          vm('stopped', 'node-a', 'node-b', { running: false, adminState: 'down' }),
        ]),
      ),
    );
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as World;

  it('drains the node: a summary table, exit 1 while a stopped instance stays, 0 with --allow-failover', async () => {
    const dir = tempDir('drbd-migrate-evac-cli-');
    const file = join(dir, 'w.json');
    await world(file);
    const state = ['--state-dir', join(dir, 'state')];
    const first = await cli('evacuate', 'node-a', '--world', file, '--concurrency', '3', ...state);
    expect(first.code).toBe(1);
    expect(first.stdout).toContain('v0: migration to node-b');
    expect(first.stdout.some((l) => /^stopped\s+-\s+skipped\s+node-a\s+it is down/.test(l))).toBe(true);
    expect(first.stdout.at(-1)).toBe('incomplete: node-a: 6 moved, 0 not moved, 1 skipped, 0 not started');
    expect(first.stderr[0]).toMatch(/^drbd-migrate: incomplete: 1 instance\(s\) not moved: stopped skipped/);
    const second = await cli('evacuate', 'node-a', '--world', file, '--allow-failover', '--quiet', ...state);
    expect(second.code).toBe(0);
    expect(second.stdout.at(-1)).toBe('evacuated: node-a: 1 moved, 0 not moved, 0 skipped, 0 not started');
    const after = read(file);
    expect(after.violations).toEqual([]);
    expect(Object.values(after.config.instances).every((i) => i.primaryNode !== 'node-a')).toBe(true);
  });

  it('--dry-run plans on a copy; bad limits are refused before anything runs', async () => {
    const dir = tempDir('drbd-migrate-evac-cli-');
    const file = join(dir, 'w.json');
    await world(file);
    const before = readFileSync(file, 'utf8');
    const plan = await cli('evacuate', 'node-a', '--world', file, '--dry-run');
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('# would migrate v0 to node-b');
    expect(readFileSync(file, 'utf8')).toBe(before);
    const bad = await cli('evacuate', 'node-a', '--world', file, '--per-node', '0');
    expect(bad.code).toBe(2);
    expect(bad.stderr[0]).toMatch(/bad --per-node '0': expected a whole number from 1 to 1024/);
    const unknown = await cli('evacuate', 'node-z', '--world', file);
    expect(unknown.stderr[0]).toMatch(/node node-z is not in world file/);
  });

  it('killed mid-way, resume NODE takes the drain up and ends it', async () => {
    const dir = tempDir('drbd-migrate-evac-cli-');
    const file = join(dir, 'w.json');
    await world(file);
    const state = join(dir, 'state');
    // The built CLI, killed as soon as its first run has ended (the rest under way or waiting).
    const child = spawn(
      process.execPath,
      [
        'dist/src/cli/main.js',
        'evacuate',
        'node-a',
        '--world',
        file,
        '--concurrency',
        '1',
        '--json',
        '--state-dir',
        state,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const killed = await new Promise<NodeJS.Signals | null>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('"phase":"end"')) child.kill('SIGKILL');
      });
      child.on('exit', (_, signal) => resolve(signal));
    });
    expect(killed).toBe('SIGKILL');
    const resumed = await cli('resume', 'node-a', '--world', file, '--state-dir', state, '--quiet');
    expect(resumed.stdout.at(-1)).toBe('incomplete: node-a: 6 moved, 0 not moved, 1 skipped, 0 not started');
    expect(resumed.code).toBe(1);
    const after = read(file);
    expect(after.violations).toEqual([]);
    for (const name of Object.keys(after.config.instances)) {
      if (name !== 'stopped') expect(restStateProblems(after, name)).toEqual([]);
    }
    // Nothing left to resume.
    const again = await cli('resume', 'node-a', '--world', file, '--state-dir', state);
    expect(again.code).toBe(2);
  });
});

/**
 * The scheduler alone, generated: random nodes, instances, limits, run outcomes (ends in any order,
 * half-done ones followed up) and operator aborts, against a runner that only answers. Whatever
 * happens, the limits hold, nothing starts after an abort, every concerned instance is listed once,
 * and the outcome is what the list says.
 */
describe('the evacuation scheduler, on generated runs', () => {
  const outcomes = ['migrated', 'reverted', 'rejected', 'needsCleanup', 'failed', 'failedOver', 'cleaned'];
  it('holds its limits and lists every instance once, whatever the runs answer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 14 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 0, max: outcomes.length - 1 }), { minLength: 40, maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 40, maxLength: 40 }),
        fc.option(fc.integer({ min: 0, max: 12 })),
        fc.boolean(),
        async (count, concurrency, perNode, answers, delays, abortAt, allowFailover) => {
          const nodes = ['n0', 'n1', 'n2', 'n3'];
          const instances = Array.from({ length: count }, (_, i) =>
            vm(`v${i}`, i % 3 === 2 ? nodes[1 + (i % 3)]! : 'n0', i % 7 === 6 ? null : nodes[1 + (i % 3)]!, {
              memoryMiB: 256 * (1 + (answers[i] ?? 0)),
              ...(i % 5 === 4 ? { running: false, adminState: 'down' as const } : {}),
              ...(i % 7 === 6 ? { diskTemplate: 'plain' as const } : {}),
            }),
          );
          const sim = createSimCluster(cluster(instances, nodes));
          const watch = limitWatch({ concurrency, perNode });
          const abort = new AbortController();
          let runs = 0;
          let ends = 0;
          let startedAfterAbort = false;
          const out = await runEvacuation({ node: 'n0', concurrency, perNode, allowFailover }, sim.effects, {
            clock: sim.clock,
            abort: abort.signal,
            onRun: (n) => {
              watch.onRun(n);
              if (n.phase === 'start' && abort.signal.aborted) startedAfterAbort = true;
              // The operator aborts as a run ends (not amid the starts of one decision).
              if (n.phase === 'end' && abortAt !== null && ++ends === abortAt + 1) abort.abort();
            },
            runner: async (request) => {
              const k = runs++;
              for (let i = 0; i < (delays[k % 40] ?? 0); i++) await Promise.resolve();
              const outcome = outcomes[answers[k % 40]!]! as never;
              return {
                outcome,
                verdict: outcome === 'migrated' || outcome === 'failedOver' ? 'done' : 'stepFailed',
                instance: request.instance,
                primaryNode:
                  outcome === 'migrated' || outcome === 'failedOver' ? request.target : request.source,
                live: true,
                warnings: [],
              };
            },
          });
          expect(watch.problems).toEqual([]);
          expect(startedAfterAbort).toBe(false);
          const concerned = instances.filter((i) => i.primary === 'n0').map((i) => i.name);
          expect(out.results.map((r) => r.instance).sort()).toEqual([...concerned].sort());
          const moved = out.results.filter(
            (r) => r.outcome === 'migrated' || r.outcome === 'failedOver',
          ).length;
          expect(out.counts.moved).toBe(moved);
          if (out.outcome === 'evacuated') expect(moved).toBe(concerned.length);
          if (abort.signal.aborted) expect(out.outcome).toBe('aborted');
          for (const r of out.results) {
            if (r.outcome === 'skipped') expect(r.operation).toBeNull();
            if (r.outcome === 'notStarted') expect(abort.signal.aborted).toBe(true);
          }
        },
      ),
      { numRuns: 300, seed: 12 },
    );
  });
});

describe('the evacuation decides by verdicts, not by messages', () => {
  /** A drain of one instance whose migration ends needsCleanup and whose cleanups end as `cleanup` says. */
  async function drain(cleanup: { verdict: Verdict; error: string }) {
    const sim = createSimCluster(cluster([vm('v1', 'node-a', 'node-b')]));
    const operations: string[] = [];
    await runEvacuation({ node: 'node-a' }, sim.effects, {
      clock: sim.clock,
      runner: async (request) => {
        operations.push(request.operation);
        const migration = request.operation === 'migration';
        return {
          outcome: migration ? 'needsCleanup' : 'failed',
          verdict: migration ? 'stepFailed' : cleanup.verdict,
          instance: request.instance,
          primaryNode: request.source,
          live: true,
          error: migration ? 'the revert failed' : cleanup.error,
          warnings: [],
        };
      },
    });
    return operations;
  }

  it('runs no second cleanup after a verdict no cleanup changes, whatever its message says', async () => {
    for (const verdict of ['onBothNodes', 'runsNowhere', 'onlyLeftovers'] as const) {
      expect(await drain({ verdict, error: 'worded otherwise' })).toEqual(['migration', 'cleanup']);
    }
  });

  it('runs the second cleanup after a failed step, even worded like a verdict', async () => {
    const error = 'Instance seems to be running on two nodes, or the hypervisor is confused';
    expect(await drain({ verdict: 'stepFailed', error })).toEqual(['migration', 'cleanup', 'cleanup']);
  });
});

/** A line as the terminal shows it: cursor and colour escapes take no room. */
const visible = (line: string) =>
  line
    .split(String.fromCharCode(27))
    .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*[A-Za-z]/, '')))
    .join('');

describe('the evacuation view on a terminal', () => {
  it('shows every run in flight with its step and progress in a block redrawn under the scrolling lines', async () => {
    const written: string[] = [];
    const screen = { tty: true, color: false, columns: 80, write: (t: string) => written.push(t) };
    const view = new EvacuationView(screen, 'node-a', () => 3);
    const request = (instance: string) => ({
      instance,
      operation: 'migration' as const,
      source: 'node-a',
      target: 'node-b',
      resumed: false,
      input: { instance },
    });
    view.onRun({ phase: 'start', request: request('v1') });
    view.onRun({ phase: 'start', request: request('v2') });
    view.onInstanceEvent('v1', { type: 'state', value: 'dualMaster.syncing.polling', at: 0 });
    view.onInstanceEvent('v1', { type: 'progress', kind: 'sync', percent: 42, at: 1 });
    view.onInstanceEvent('v2', {
      type: 'progress',
      kind: 'memory',
      percent: 7,
      transferredMiB: 7,
      totalMiB: 100,
      status: 'active',
      at: 1,
    });
    const block = written.at(-1)!.split('\n');
    expect(block[0]).toBe('evacuating node-a: 2 running, 0 moved, 0 not moved, 1 waiting');
    expect(block[1]).toBe('  v1 → node-b  dualMaster.syncing.polling  resync 42%');
    expect(block[2]).toBe('  v2 → node-b    memory 7%');
    // Every line fits the terminal, so the block can be drawn again in place.
    for (const l of written.join('').split('\n')) expect(visible(l).length).toBeLessThan(80);
    view.onRun({
      phase: 'end',
      request: request('v1'),
      output: {
        outcome: 'migrated',
        verdict: 'done',
        instance: 'v1',
        primaryNode: 'node-b',
        live: true,
        warnings: [],
      },
    });
    expect(written.at(-1)!.split('\n')[0]).toBe(
      'evacuating node-a: 1 running, 1 moved, 0 not moved, 1 waiting',
    );
  });
});
