import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSimCluster, type SimCluster, type WorldSpec } from '../src/index.js';
import { type ServedCall, type ServedEffects, serveEffects } from '../src/remote/serve.js';
import {
  type Balancer,
  newIdentityKey,
  type RestateServer,
  registerDeployment,
  startBalancer,
  startRestateServer,
} from '../src/restate/index.js';
import { startWorker, type WorkerProcess } from './processes.js';
import { tempDir } from './tmp.js';

/**
 * The Restate runtime against a real Restate server (from its npm package), two workers as separate
 * processes (the built CLI's `worker`) behind one balancer, and a simulated cluster served to both:
 * a worker is SIGKILLed with a node command in flight and the other finishes the run.
 */

export const pidOf = (call: ServedCall) => Number(call.worker?.split(':').pop());

export interface Distributed {
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
export async function startDistributed(options: {
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
export const onRestate = (d: { served: ServedEffects; server: RestateServer }) => [
  '--world',
  d.served.url,
  '--restate',
  d.server.ingress,
  '--restate-admin',
  d.server.admin,
];

export async function stopDistributed(d: Distributed | undefined) {
  if (d === undefined) return;
  for (const w of d.workers) w.child.kill('SIGKILL');
  await Promise.all(d.workers.map((w) => w.exited));
  await d.balancer.close();
  await d.served.close();
  await d.server.stop();
}
