import { createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSimCluster,
  EvacuationJournal,
  FileJournal,
  FileLocks,
  journalRuntime,
  remoteEffects,
  restStateProblems,
  runEvacuation,
  runtimeRunner,
  type SimCluster,
  type WorldSpec,
} from '../src/index.js';
import { type ServedCall, type ServedEffects, serveEffects } from '../src/remote/serve.js';
import {
  type Balancer,
  cancelRun,
  followRun,
  newIdentityKey,
  type RestateServer,
  registerDeployment,
  restateRuntime,
  runOnRestate,
  startBalancer,
  startRestateServer,
  submitRun,
} from '../src/restate/index.js';
import { cli, startWorker, type WorkerProcess } from './processes.js';
import { tempDir } from './tmp.js';

/**
 * The Restate runtime against a real Restate server (from its npm package), two workers as separate
 * processes (the built CLI's `worker`) behind one balancer, and a simulated cluster served to both:
 * a worker is SIGKILLed with a node command in flight and the other finishes the run.
 */

const pidOf = (call: ServedCall) => Number(call.worker?.split(':').pop());

interface Distributed {
  server: RestateServer;
  sim: SimCluster;
  served: ServedEffects;
  balancer: Balancer;
  workers: WorkerProcess[];
}

/**
 * A Restate server (of `nodes` nodes), a simulated cluster served to two worker processes behind a
 * balancer, registered: what every test here runs against. `hooks` see each call before it acts and
 * after it acted (before its answer leaves).
 */
async function startDistributed(options: {
  spec?: WorldSpec;
  cluster: string;
  nodes?: number;
  workerArgs?: string[];
  /** The server signs its requests; one worker is given its key by name, the other as a PEM file. */
  signed?: boolean;
  before?: (call: ServedCall) => Promise<void> | void;
  after?: (call: ServedCall) => Promise<void> | void;
}): Promise<Distributed> {
  const dir = tempDir('drbd-migrate-restate-');
  const identityKeyFile = join(dir, 'identity.pem');
  const signing: string[][] = [[], []];
  if (options.signed) {
    const kid = newIdentityKey(identityKeyFile);
    const publicFile = join(dir, 'identity.pub');
    writeFileSync(
      publicFile,
      createPublicKey(readFileSync(identityKeyFile)).export({ type: 'spki', format: 'pem' }).toString(),
    );
    signing.splice(0, 2, ['--identity-key', kid], ['--identity-key', publicFile]);
  }
  const server = await startRestateServer({
    dir,
    nodes: options.nodes ?? 1,
    ...(options.signed ? { identityKeyFile } : {}),
  });
  const sim = createSimCluster(options.spec);
  const served = await serveEffects(sim.effects, {
    cluster: options.cluster,
    clock: sim.clock,
    onCall: (call) => options.before?.(call),
    afterCall: (call) => options.after?.(call),
  });
  const workers = [];
  for (const keys of signing) {
    workers.push(await startWorker(['--world', served.url, ...(options.workerArgs ?? []), ...keys]));
  }
  const balancer = await startBalancer(workers.map((w) => ({ port: w.port })));
  await registerDeployment(server.admin, balancer.url);
  return { server, sim, served, balancer, workers };
}

/** The CLI's options that run against a distributed setup. */
const onRestate = (d: { served: ServedEffects; server: RestateServer }) => [
  '--world',
  d.served.url,
  '--restate',
  d.server.ingress,
  '--restate-admin',
  d.server.admin,
];

async function stopDistributed(d: Distributed | undefined) {
  if (d === undefined) return;
  for (const w of d.workers) w.child.kill('SIGKILL');
  await Promise.all(d.workers.map((w) => w.exited));
  await d.balancer.close();
  await d.served.close();
  await d.server.stop();
}

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

describe('an evacuation on Restate', () => {
  let before: ((call: ServedCall) => Promise<void> | void) | undefined;
  let server: RestateServer;
  let sim: SimCluster;
  let served: ServedEffects;
  let balancer: Balancer;
  const workers: WorkerProcess[] = [];

  let env: Distributed | undefined;
  beforeAll(async () => {
    const sizes = [4096, 1024, 3072, 2048, 512, 1536];
    env = await startDistributed({
      spec: {
        nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} },
        instances: sizes.map((memoryMiB, i) => ({
          name: `vm${i + 1}`,
          primary: 'node-a',
          secondary: i % 2 === 0 ? 'node-b' : 'node-c',
          memoryMiB,
          disksMiB: [2048],
        })),
      },
      cluster: 'fleet',
      workerArgs: ['--per-node', '2'],
      before: (call) => before?.(call),
    });
    ({ server, sim, served, balancer } = env);
    workers.push(...env.workers);
    env.workers = workers;
  }, 120_000);

  afterAll(() => stopDistributed(env));

  it('drains a node, never more runs on a node at once than its slots, though the worker running the drain dies: it goes on on another', async () => {
    // The worker that read the plan runs the drain itself: killed once a dozen more calls came, its
    // drain and its runs go on on the other worker (and on a fresh one in its place).
    let planner: number | null = null;
    let killedAt: number | null = null;
    before = async (call) => {
      if (call.effect === 'listInstances' && planner === null) planner = pidOf(call);
      if (planner === null || killedAt !== null || served.calls.length < 40) return;
      killedAt = served.calls.length;
      const w = workers.find((x) => x.pid === planner)!;
      w.child.kill('SIGKILL');
      await w.exited;
      const fresh = await startWorker(['--world', served.url, '--per-node', '2']);
      workers.splice(workers.indexOf(w), 1, fresh);
      balancer.targets.splice(0, balancer.targets.length, ...workers.map((x) => ({ port: x.port })));
    };
    const drained = await cli([
      'evacuate',
      'node-a',
      ...onRestate({ served, server }),
      '--concurrency',
      '6',
      '--per-node',
      '6',
      '--json',
    ]);
    before = undefined;
    expect(drained.code, drained.stderr).toBe(0);
    expect(killedAt).not.toBeNull();
    const result = JSON.parse(drained.stdout.trim().split('\n').at(-1)!) as {
      outcome: string;
      results: { outcome: string }[];
    };
    expect(result.outcome).toBe('evacuated');
    expect(result.results.map((r) => r.outcome)).toEqual(Array(6).fill('migrated'));
    for (let i = 1; i <= 6; i++) expect(restStateProblems(sim.current(), `vm${i}`)).toEqual([]);

    // Each run's calls, from its first after taking its slots to its last: never three at once on node-a.
    const runs = new Map<string, { first: number; last: number; worker: number }>();
    served.calls.forEach((c, i) => {
      if (c.run === null || Number(c.step?.split(' ')[0]) < 2) return;
      const r = runs.get(c.run);
      if (r === undefined) runs.set(c.run, { first: i, last: i, worker: pidOf(c) });
      else r.last = i;
    });
    // Six instance runs (the evacuation's own listing is a step of its own run).
    const instanceRuns = [...runs.values()].filter((r) => r.last > r.first);
    expect(instanceRuns.length).toBe(6);
    let most = 0;
    for (let i = 0; i < served.calls.length; i++) {
      most = Math.max(most, instanceRuns.filter((r) => r.first <= i && i <= r.last).length);
    }
    expect(most).toBeLessThanOrEqual(2);
    expect(new Set(served.calls.map(pidOf)).size).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('goes on when the client that submitted the drain dies; resume follows it to its end', async () => {
    const restate = onRestate({ served, server });
    // The drain's runs wait (in a step with a long deadline) until the resumed client shows them.
    let open: () => void = () => {};
    const shown = new Promise<void>((resolve) => {
      open = resolve;
    });
    before = (call) => (call.effect === 'attachNet' ? shown : undefined);
    const submitted = await cli(
      ['evacuate', 'node-b', ...restate, '--json'],
      [['"type":"run"', (kill) => kill('SIGKILL')]],
    );
    expect(submitted.signal).toBe('SIGKILL');
    const followed = await cli(['resume', 'node-b', ...restate, '--json'], [['"type":"run"', () => open()]]);
    before = undefined;
    expect(followed.code, followed.stderr).toBe(0);
    const result = JSON.parse(followed.stdout.trim().split('\n').at(-1)!) as {
      outcome: string;
      results: { instance: string; outcome: string }[];
    };
    expect(result.outcome).toBe('evacuated');
    expect(result.results.map((r) => r.instance).sort()).toEqual(['vm1', 'vm3', 'vm5']);
    const told = await cli(['status', 'node-b', ...restate]);
    expect(told.code).toBe(0);
    expect(told.stdout).toMatch(
      /^evacuation of node-b \(cluster fleet, run inv_\w+\): ended evacuated; 3 runs started, 3 ended/,
    );
    for (const name of ['vm1', 'vm3', 'vm5']) {
      expect(sim.current().config.instances[name]?.primaryNode).toBe('node-a');
      expect(restStateProblems(sim.current(), name)).toEqual([]);
    }
  }, 120_000);
});

describe('a drain on Restate, both workers alive, requests signed', () => {
  let env: Distributed | undefined;
  beforeAll(async () => {
    env = await startDistributed({
      spec: {
        nodes: { 'node-a': {}, 'node-b': {} },
        instances: [1, 2, 3, 4].map((i) => ({
          name: `vm${i}`,
          primary: 'node-a',
          secondary: 'node-b',
          memoryMiB: 1024 * i,
          disksMiB: [2048],
        })),
      },
      cluster: 'fleet',
      signed: true,
    });
  }, 120_000);

  afterAll(() => stopDistributed(env));

  it('refuses a request that Restate did not sign', async () => {
    for (const w of env!.workers) {
      const session = connect(`http://127.0.0.1:${w.port}`);
      try {
        const asked = session.request({ ':method': 'GET', ':path': '/discover' }, { endStream: true });
        const [headers] = (await once(asked, 'response')) as [Record<string, unknown>];
        asked.resume();
        expect(headers[':status']).toBe(401);
      } finally {
        session.close();
      }
    }
  });

  it("spreads the drain's runs over both workers", async () => {
    // Restate puts its invocations on few HTTP/2 connections to the deployment: spread only if the
    // balancer in front of the workers balances streams, not connections.
    const { server, served, sim, workers } = env!;
    const drained = await cli([
      'evacuate',
      'node-a',
      ...onRestate({ served, server }),
      '--concurrency',
      '4',
      '--per-node',
      '4',
      '--json',
    ]);
    expect(drained.code, drained.stderr).toBe(0);
    const runs = new Map<string, Set<number>>();
    for (const c of served.calls) {
      if (c.run === null || c.effect === 'listInstances') continue;
      runs.set(c.run, (runs.get(c.run) ?? new Set()).add(pidOf(c)));
    }
    expect(runs.size).toBe(4);
    const ranOn = new Set([...runs.values()].flatMap((pids) => [...pids]));
    expect(ranOn).toEqual(new Set(workers.map((w) => w.pid)));
    for (let i = 1; i <= 4; i++) {
      expect(sim.current().config.instances[`vm${i}`]?.primaryNode).toBe('node-b');
      expect(restStateProblems(sim.current(), `vm${i}`)).toEqual([]);
    }
  }, 120_000);
});

describe('a three-node Restate cluster', () => {
  let before: ((call: ServedCall) => Promise<void> | void) | undefined;
  let server: RestateServer;
  let sim: SimCluster;
  let env: Distributed | undefined;
  beforeAll(async () => {
    env = await startDistributed({ cluster: 'demo', nodes: 3, before: (call) => before?.(call) });
    ({ server, sim } = env);
  }, 120_000);

  afterAll(() => stopDistributed(env));

  it('finishes a run when the node it was submitted to dies during the copy; its result is read through another', async () => {
    const [first, second] = server.nodes;
    let killed = false;
    before = (call) => {
      if (call.effect === 'migrateInstance' && !killed) {
        killed = true;
        first!.kill();
      }
    };
    const id = await submitRun(first!, 'demo', 'migration', { instance: 'web1' });
    const output = await followRun(second!, 'demo', 'web1', id);
    before = undefined;
    expect(killed).toBe(true);
    expect(output).toMatchObject({ outcome: 'migrated', primaryNode: 'node-b' });
    expect(restStateProblems(sim.current(), 'web1')).toEqual([]);
  }, 120_000);
});
