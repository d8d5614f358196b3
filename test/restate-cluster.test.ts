import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restStateProblems, type SimCluster } from '../src/index.js';
import type { ServedCall } from '../src/remote/serve.js';
import { followRun, type RestateServer, submitRun } from '../src/restate/index.js';
import { type Distributed, startDistributed, stopDistributed } from './distributed.js';

/** A three-node Restate cluster losing the node a run was submitted to. */

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
