import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EvacuationJournal,
  FileJournal,
  FileLocks,
  journalRuntime,
  remoteEffects,
  remoteLeases,
  restStateProblems,
  runEvacuation,
  runtimeRunner,
  type SimCluster,
} from '../src/index.js';
import type { ServedCall, ServedEffects } from '../src/remote/serve.js';
import {
  type Balancer,
  cancelRun,
  followRun,
  type RestateServer,
  restateRuntime,
  runOnRestate,
  submitRun,
} from '../src/restate/index.js';
import { nodesTouched } from '../src/restate/object.js';
import { type Distributed, onRestate, pidOf, startDistributed, stopDistributed } from './distributed.js';
import { cli, startWorker, type WorkerProcess } from './processes.js';
import { tempDir } from './tmp.js';

/**
 * Runs on Restate (a real server from its npm package, two worker processes behind a balancer, a
 * simulated cluster served to both): a worker SIGKILLed with a node command in flight, two runs on
 * one instance, cancel, the CLI, and the Runtime interface beside the file journal.
 */

describe('the node slots a run takes', () => {
  it('a replace holds its new node too: the full copy goes over its link', () => {
    const config = { primaryNode: 'node-a', secondaryNode: 'node-b' };
    expect(nodesTouched(config, {})).toEqual(['node-a', 'node-b']);
    expect(nodesTouched(config, { newSecondary: 'node-c' })).toEqual(['node-a', 'node-b', 'node-c']);
    expect(nodesTouched({ primaryNode: 'node-a', secondaryNode: null }, {})).toEqual(['node-a']);
  });
});

describe('the Restate runtime', () => {
  let server: RestateServer;
  let sim: SimCluster;
  let served: ServedEffects;
  let balancer: Balancer;
  const workers: WorkerProcess[] = [];
  // Set by a test: acts on each call before it acts, or after it acted and before its answer leaves.
  let before: ((call: ServedCall) => Promise<void> | void) | undefined;
  let after: ((call: ServedCall) => Promise<void> | void) | undefined;

  let env: Distributed | undefined;
  beforeAll(async () => {
    env = await startDistributed({
      spec: {
        nodes: { 'node-a': {}, 'node-b': {} },
        instances: [
          { name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048, disksMiB: [4096] },
          { name: 'web2', primary: 'node-b', secondary: 'node-a', memoryMiB: 1024, disksMiB: [2048] },
        ],
      },
      cluster: 'demo',
      before: (call) => before?.(call),
      after: (call) => after?.(call),
    });
    ({ server, sim, served, balancer } = env);
    workers.push(...env.workers);
    env.workers = workers;
  }, 120_000);

  afterAll(() => stopDistributed(env));

  it('finishes a migration on the other worker when the one running it is killed with a node command in flight', async () => {
    const from = served.calls.length;
    let killed: number | null = null;
    // The copy has started on the nodes when its worker dies; the answer never reaches the journal.
    after = async (call) => {
      if (call.effect !== 'migrateInstance' || killed !== null) return;
      killed = pidOf(call);
      await kill(call);
    };
    const output = await runOnRestate(server, 'demo', 'migration', { instance: 'web1' }).finally(() => {
      after = undefined;
      if (killed !== null) return replaceWorker(killed);
    });
    expect(output).toMatchObject({ outcome: 'migrated', primaryNode: 'node-b' });
    expect(restStateProblems(sim.current(), 'web1')).toEqual([]);

    const calls = served.calls.slice(from);
    // Two workers served the run: the killed one up to the copy, the other from the copy on.
    const byWorker = new Set(calls.map(pidOf));
    expect(byWorker.size).toBe(2);
    expect(killed).not.toBeNull();
    // Every step ran once, but the one in flight at the kill, asked again (and answered) once.
    const steps = new Map<string, ServedCall[]>();
    for (const c of calls) steps.set(c.step!, [...(steps.get(c.step!) ?? []), c]);
    const again = [...steps.entries()].filter(([, cs]) => cs.length > 1);
    expect(again.map(([step, cs]) => [step, cs.map((c) => c.end)])).toEqual([
      [expect.stringMatching(/ migrateInstance node-a$/), ['gone', 'answered']],
    ]);
  }, 40_000);

  /** SIGKILLs the worker that sent the call, and waits until the call's connection is seen gone. */
  async function kill(call: ServedCall) {
    const w = workers.find((x) => x.pid === pidOf(call))!;
    w.child.kill('SIGKILL');
    await Promise.all([w.exited, call.hungUp]);
  }

  /** A killed worker's place taken by a fresh one behind the balancer. */
  async function replaceWorker(pid: number) {
    const i = workers.findIndex((w) => w.pid === pid);
    const fresh = await startWorker(['--world', served.url]);
    workers.splice(i, 1, fresh);
    balancer.targets.splice(0, balancer.targets.length, ...workers.map((w) => ({ port: w.port })));
  }

  it('asks the node command again when its worker dies before it acted, and finishes the run', async () => {
    const from = served.calls.length;
    let killed: number | null = null;
    before = async (call) => {
      if (call.effect !== 'attachNet' || killed !== null) return;
      killed = pidOf(call);
      await kill(call);
    };
    const output = await runOnRestate(server, 'demo', 'migration', { instance: 'web2' }).finally(() => {
      before = undefined;
      if (killed !== null) return replaceWorker(killed);
    });
    expect(output).toMatchObject({ outcome: 'migrated', primaryNode: 'node-a' });
    expect(restStateProblems(sim.current(), 'web2')).toEqual([]);
    const calls = served.calls.slice(from);
    const gone = calls.filter((c) => c.end === 'gone');
    expect(gone.map((c) => c.effect)).toEqual(['attachNet']);
    expect(calls.filter((c) => c.step === gone[0]!.step).map((c) => c.end)).toEqual(['gone', 'answered']);
    expect(new Set(calls.map((c) => c.step)).size).toBe(calls.length - 1);
  }, 40_000);

  it('runs two requests for one instance one after the other, whichever workers take them', async () => {
    const from = served.calls.length;
    // Both submitted before either starts: Restate queues the second behind the first on the key.
    const [first, second] = await Promise.all([
      submitRun(server, 'demo', 'migration', { instance: 'web1' }),
      submitRun(server, 'demo', 'migration', { instance: 'web1' }),
    ]);
    const outputs = await Promise.all([
      followRun(server, 'demo', 'web1', first),
      followRun(server, 'demo', 'web1', second),
    ]);
    // web1 went to node-a and back (or back and to): each run moved it from where the last left it.
    expect(outputs.map((o) => o.outcome)).toEqual(['migrated', 'migrated']);
    expect(new Set(outputs.map((o) => o.primaryNode))).toEqual(new Set(['node-a', 'node-b']));
    const runs = served.calls.slice(from).map((c) => c.run);
    const firstRun = runs[0];
    const switched = runs.findIndex((r) => r !== firstRun);
    expect(switched).toBeGreaterThan(0);
    // No call of the first run after the second began: never two runs on the instance at once.
    expect(runs.slice(switched).every((r) => r !== firstRun)).toBe(true);
  }, 40_000);

  it('refuses a queued request whose instance another run moved meanwhile (no ping-pong)', async () => {
    const from = sim.current().config.instances.web1!.primaryNode;
    // Both asked while web1 was on `from`: each carries that intent.
    const [first, second] = await Promise.all([
      submitRun(server, 'demo', 'migration', { instance: 'web1', expectedSource: from }),
      submitRun(server, 'demo', 'migration', { instance: 'web1', expectedSource: from }),
    ]);
    const outputs = await Promise.all([
      followRun(server, 'demo', 'web1', first),
      followRun(server, 'demo', 'web1', second),
    ]);
    const outcomes = outputs.map((o) => o.outcome).sort();
    expect(outcomes).toEqual(['migrated', 'rejected']);
    const refused = outputs.find((o) => o.outcome === 'rejected')!;
    expect(refused.error).toMatch(
      new RegExp(`web1 is no longer on ${from}, where it was when this request was made`),
    );
    expect(sim.current().config.instances.web1!.primaryNode).not.toBe(from);
    expect(restStateProblems(sim.current(), 'web1')).toEqual([]);
  }, 40_000);

  it('takes a cancel in Restate as an operator abort: the run reverts at its next safe point', async () => {
    let id: string | null = null;
    let cancelled = false;
    before = async (call) => {
      if (call.effect !== 'disconnectNet' || cancelled || id === null) return;
      cancelled = true;
      await cancelRun(server, id);
    };
    id = await submitRun(server, 'demo', 'migration', { instance: 'web2' });
    const events: string[] = [];
    const output = await followRun(server, 'demo', 'web2', id, {
      onEvent: (e) => {
        if (e.type === 'feedback') events.push(e.message);
      },
    });
    before = undefined;
    expect(cancelled).toBe(true);
    expect(output.outcome).toBe('reverted');
    expect(output.error).toMatch(/abort/i);
    expect(events.some((m) => /Cancelled in Restate/.test(m))).toBe(true);
    expect(restStateProblems(sim.current(), 'web2')).toEqual([]);
  }, 40_000);

  it('hurries the long poll in flight when cancelled, over HTTP to the served world, and reverts', async () => {
    // The copy's progress poll is held until the cancel's hurry reaches it: it then answers at once,
    // and the abort takes effect at the next safe point (a poll waited out would not need the hurry).
    let id: string | null = null;
    let hurried = false;
    before = async (call) => {
      if (call.effect !== 'migrationStatus' || id === null || hurried) return;
      await cancelRun(server, id);
      await call.hurried;
      hurried = true;
    };
    id = await submitRun(server, 'demo', 'migration', { instance: 'web2' });
    const output = await followRun(server, 'demo', 'web2', id);
    before = undefined;
    expect(hurried).toBe(true);
    expect(output.outcome).toBe('reverted');
    expect(output.error).toMatch(/abort/i);
    expect(restStateProblems(sim.current(), 'web2')).toEqual([]);
  }, 40_000);

  it('runs from the CLI with --restate: the same JSON lines and exit codes as a local run, status, and Ctrl-C as a cancel', async () => {
    const restate = onRestate({ served, server });
    const moved = await cli(['migrate', 'web1', ...restate, '--json']);
    expect(moved.code).toBe(0);
    const lines = moved.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; value?: string });
    expect(lines.some((l) => l.type === 'state' && l.value === 'migrating.transferring.polling')).toBe(true);
    expect(lines.at(-1)).toMatchObject({ type: 'result', outcome: 'migrated', instance: 'web1' });

    const shown = await cli(['status', 'web1', ...restate]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^migration of web1 \(cluster demo, run inv_\w+\): ended migrated/);
    // A client that died after the end: resume reports the run as it ended, with its exit code.
    const again = await cli(['resume', 'web1', ...restate]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/The migration of web1 had already ended/);
    expect(again.stdout).toMatch(/outcome: migrated/);

    // Ctrl-C while the disks go standalone (held there until the CLI shows the run: a step with a
    // long deadline): cancelled in Restate, reverted at the next safe point, exit 1.
    let ctrlC: (signal?: NodeJS.Signals) => void = () => {};
    let shows: () => void = () => {};
    const showing = new Promise<void>((resolve) => {
      shows = resolve;
    });
    let interrupted = false;
    before = async (call) => {
      if (call.effect !== 'disconnectNet' || interrupted) return;
      interrupted = true;
      await showing;
      ctrlC('SIGINT');
    };
    const aborted = await cli(
      ['migrate', 'web1', ...restate],
      [
        [
          'checking disk consistency',
          (kill) => {
            ctrlC = kill;
            shows();
          },
        ],
      ],
    );
    before = undefined;
    expect(aborted, aborted.stdout + aborted.stderr).toMatchObject({ code: 1 });
    expect(aborted.stderr).toMatch(/reverted: .*abort/i);

    const none = await cli(['status', 'web9', ...restate]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/knows no run of web9 in cluster demo/);
  }, 60_000);

  it('excludes a local run and a Restate run of one instance from each other, by the lease where they meet (20 races)', async () => {
    const dir = tempDir('drbd-migrate-lease-');
    const local = journalRuntime({
      effects: remoteEffects(served.url),
      store: new FileJournal(dir),
      locks: new FileLocks(dir),
      nodesOf: () => ['node-a', 'node-b'],
      lease: { store: remoteLeases(served.url), holder: `journal in ${dir}` },
    });
    const onRestate = restateRuntime(server, 'demo');
    let refusals = 0;
    for (let race = 0; race < 20; race++) {
      const from = served.calls.length;
      const outputs = await Promise.all([
        onRestate.run('migration', { instance: 'web1' }),
        local.run('migration', { instance: 'web1' }),
      ]);
      for (const out of outputs) {
        expect(['migrated', 'rejected']).toContain(out.outcome);
        if (out.outcome === 'rejected') {
          refusals++;
          expect(out.error).toMatch(
            /^another run holds web1 \(.+, its lease until .+\): one run at a time per instance/,
          );
        }
      }
      expect(outputs.some((o) => o.outcome === 'migrated')).toBe(true);
      // Restate's calls carry their invocation, the local run's none: one run's calls, then the other's.
      const owners = served.calls
        .slice(from)
        .map((c) => (c.run === null ? 'local' : 'restate'))
        .filter((o, i, all) => i === 0 || all[i - 1] !== o);
      expect(owners.length, `race ${race}: ${owners.join(' → ')}`).toBeLessThanOrEqual(2);
      expect(restStateProblems(sim.current(), 'web1')).toEqual([]);
      expect(sim.current().violations).toEqual([]);
    }
    // Started together, one is mostly refused (the other may also come after the first has ended).
    expect(refusals).toBeGreaterThan(0);
  }, 240_000);

  it('runs behind one Runtime interface: the file journal and Restate move an instance alike, and carry an evacuation', async () => {
    const dir = tempDir('drbd-migrate-runtime-');
    const effects = remoteEffects(served.url);
    const journal = journalRuntime({
      effects,
      store: new FileJournal(dir),
      locks: new FileLocks(dir),
      evacuations: new EvacuationJournal(dir),
      nodesOf: () => ['node-a', 'node-b'],
    });
    const onRestate = restateRuntime(server, 'demo');
    for (const runtime of [journal, onRestate]) {
      const from = sim.current().config.instances.web2!.primaryNode;
      const out = await runtime.run('migration', { instance: 'web2' });
      expect(out.outcome, runtime.name).toBe('migrated');
      expect(out.primaryNode).not.toBe(from);
      expect(restStateProblems(sim.current(), 'web2')).toEqual([]);
      // Nothing half-done to take up.
      expect(await runtime.resume('web2')).toBeNull();
    }
    // The journal closes with its run; Restate keeps the last run's status.
    expect(await journal.status('web2')).toBeNull();
    expect((await onRestate.status('web2'))?.output?.outcome).toBe('migrated');

    // A local evacuation whose runs are Restate's (runtimeRunner).
    const node = sim.current().config.instances.web2!.primaryNode;
    const drained = await runEvacuation({ node }, effects, { runner: runtimeRunner(onRestate) });
    expect(drained.outcome).toBe('evacuated');
    expect(Object.values(sim.current().config.instances).filter((i) => i.primaryNode === node)).toEqual([]);

    // A drain through each runtime itself (the CLI's way): journaled here, or a durable invocation.
    for (const runtime of [journal, onRestate]) {
      const from = sim.current().config.instances.web2!.primaryNode;
      const ends: string[] = [];
      const out = await runtime.evacuate({ node: from }, { onRun: (n) => ends.push(n.phase) });
      expect(out.outcome, runtime.name).toBe('evacuated');
      expect(ends).toContain('end');
      const left = Object.values(sim.current().config.instances).filter((i) => i.primaryNode === from);
      expect(left).toEqual([]);
      expect(await runtime.resumeEvacuation(from)).toBeNull();
    }
  }, 60_000);
});
