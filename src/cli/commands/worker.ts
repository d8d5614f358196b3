import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Command } from '../command.js';
import { loadRestate, portOf, untilInterrupted, workerWorld } from '../distributed.js';
import { UsageError } from '../errors.js';

export const worker: Command = {
  name: 'worker',
  summary: 'serve the runs of a cluster to a Restate server (runs that outlive any one host)',
  args: [],
  oneOf: ['cluster', 'world'],
  options: ['cluster', 'world', 'port', 'listen', 'identity-key', 'register', 'per-node'],
  description: `Serves the handlers of the Restate runtime (docs/restate.md) over HTTP/2: each run of an instance
is one invocation of a virtual object keyed CLUSTER/INSTANCE, each effect call one step of its
journal. A worker keeps nothing of its own; any number may serve one cluster, behind one address
registered with Restate, and a run whose worker dies goes on on another from its last step.

--cluster FILE acts on real nodes over SSH (the cluster file is the config store: workers on several
hosts must share it); --world URL on a served simulated cluster (drbd-migrate serve); --world FILE
on a world file of this worker's own. --register ADMIN_URL registers this worker with Restate.
--per-node N: at most N runs touch any one node at once, across every worker that says the same
(slots held in Restate; every worker of a cluster should be given the same N).

A worker runs what it is asked: it listens on 127.0.0.1 unless --listen says otherwise, and one
that listens where others reach it must be given --identity-key, Restate's public key (the server
signs with the private half, its request-identity-private-key-pem-file), so that it refuses any
request Restate did not sign.
Runs until Ctrl-C or SIGTERM.`,
  examples: [
    'drbd-migrate worker --world http://127.0.0.1:7000 --port 9081',
    'drbd-migrate worker --cluster cluster.yaml --listen 10.0.0.5 --port 9080 --identity-key restate.pub',
  ],
  async run({ values, io }) {
    // The SDK first: without it, nothing else is worth reading.
    const { serveWorker, registerDeployment, restateIdentityKey, IDENTITY_KEY } = await loadRestate();
    const identityKeys = (values['identity-key'] ?? []).map((given) => {
      if (IDENTITY_KEY.test(given)) return given;
      try {
        return restateIdentityKey(readFileSync(given, 'utf8'));
      } catch (error) {
        throw new UsageError(
          `bad --identity-key '${given}': expected publickeyv1_… or a PEM file of an ed25519 key (${(error as Error).message})`,
        );
      }
    });
    const host = values.listen ?? '127.0.0.1';
    if (isIP(host) === 0) throw new UsageError(`bad --listen '${host}': expected an IP address`);
    if (!isLoopback(host) && identityKeys.length === 0) {
      throw new UsageError(
        `a worker listening on ${host} would run any request that reaches it: give --identity-key (docs/restate.md, "Workers")`,
      );
    }
    const world = await workerWorld(values);
    const served = await serveWorker({
      cluster: world.cluster,
      effects: world.effects,
      ...(world.leases === undefined ? {} : { leases: world.leases }),
      prepare: world.prepare,
      prepareEvacuation: world.prepareEvacuation,
      ...(world.graceMs === undefined ? {} : { graceMs: world.graceMs }),
      ...(values['per-node'] === undefined ? {} : { perNode: slotCount(values['per-node']) }),
      ...(values.port === undefined ? {} : { port: portOf(values.port) }),
      host,
      identityKeys,
    });
    if (values.register !== undefined) await registerDeployment(values.register, served.url);
    const signed = identityKeys.length > 0 ? ', serving requests Restate signed only' : '';
    io.out(`worker for cluster ${world.cluster} at ${served.url} (pid ${process.pid})${signed}`);
    await untilInterrupted(io.onInterrupt);
    await served.close();
    world.close();
    return 0;
  },
};

const isLoopback = (host: string) => host === '::1' || host.startsWith('127.');

function slotCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1024) {
    throw new UsageError(`bad --per-node '${text}': expected a whole number from 1 to 1024`);
  }
  return n;
}
