import { once } from 'node:events';
import { connect } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restStateProblems, type SimCluster } from '../src/index.js';
import type { ServedCall, ServedEffects } from '../src/remote/serve.js';
import type { Balancer, RestateServer } from '../src/restate/index.js';
import { type Distributed, onRestate, pidOf, startDistributed, stopDistributed } from './distributed.js';
import { cli, startWorker, type WorkerProcess } from './processes.js';

/** Drains on Restate: node slots across workers, a worker or a client dying mid-drain, signed requests. */

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
    expect(result.outcome, drained.stdout).toBe('evacuated');
    expect(result.results.map((r) => r.outcome)).toEqual(Array(6).fill('migrated'));
    // Each run's own steps, as a local drain shows them (read from its instance's status).
    const stepped = new Set(
      drained.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type?: string; instance?: string })
        .filter((e) => e.type === 'state' && e.instance !== undefined)
        .map((e) => e.instance),
    );
    console.log(`steps seen of ${stepped.size} of the 6 runs`);
    expect(stepped.size).toBeGreaterThanOrEqual(3);
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
    expect(result.outcome, followed.stdout).toBe('evacuated');
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
