import type { Command } from '../command.js';
import { loadRestate, portOf, untilInterrupted } from '../distributed.js';
import { UsageError } from '../errors.js';

export const balance: Command = {
  name: 'balance',
  summary: 'a loopback HTTP/2 balancer in front of workers, to try the Restate runtime on one machine',
  args: [],
  options: ['port', 'to', 'register'],
  description: `Restate keeps a run on the deployment (address) it started on, so several workers must sit
behind one address that outlives each of them: in production an HTTP/2-aware load balancer; on one
machine, this. Restate puts every invocation on few HTTP/2 connections, so this balances streams,
not connections: each goes to the --to worker with the fewest streams open through it, skipping one
that refuses the connection; a worker that dies mid-run resets its streams, and Restate retries them
through here on another. --register ADMIN_URL registers the balancer with Restate as the deployment.
Runs until Ctrl-C or SIGTERM.`,
  examples: ['drbd-migrate balance --port 9080 --to 9081 --to 9082 --register http://127.0.0.1:9070'],
  async run({ values, io }) {
    const to = (values.to ?? []).map(portOf);
    if (to.length === 0) throw new UsageError('balance needs at least one --to PORT (a worker)');
    const { startBalancer, registerDeployment } = await loadRestate();
    const balancer = await startBalancer(
      to.map((port) => ({ port })),
      values.port === undefined ? 0 : portOf(values.port),
    );
    if (values.register !== undefined) {
      await registerDeployment(values.register, balancer.url);
      io.out(`registered ${balancer.url} with the Restate server at ${values.register}`);
    }
    io.out(`balancing ${balancer.url} over ${to.map((p) => `127.0.0.1:${p}`).join(', ')}`);
    await untilInterrupted(io.onInterrupt);
    await balancer.close();
    return 0;
  },
};
