import { runStatus } from '../../restate/client.js';
import type { Command } from '../command.js';
import { clusterName } from '../distributed.js';
import { UsageError } from '../errors.js';
import { restateEndpoints } from '../restate.js';
import { instanceName } from '../session.js';

export const status: Command = {
  name: 'status',
  summary: "where an instance's run on Restate stands: its machine, state, latest events, outcome",
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: ['cluster', 'world', 'restate', 'restate-admin', 'json'],
  description: `Asks the Restate cluster (--restate URL, its ingress) for the run of INSTANCE under way, or the
last one: the shared status handler answers while the run holds the instance. Exit 0 when a run is
known (under way or ended), 2 when the instance has none there.`,
  examples: ['drbd-migrate status web1 --world http://127.0.0.1:7000 --restate http://127.0.0.1:8080'],
  async run({ args, values, io }) {
    if (values.restate === undefined)
      throw new UsageError('status needs --restate URL (a local run shows itself)');
    const instance = instanceName(args.INSTANCE!);
    const cluster = await clusterName(values);
    const found = await runStatus(restateEndpoints(values), cluster, instance).catch((error: unknown) => {
      throw new UsageError((error as Error).message);
    });
    if (found === null) throw new UsageError(`Restate knows no run of ${instance} in cluster ${cluster}`);
    if (values.json === true) {
      io.out(JSON.stringify({ type: 'status', ...found }));
      return 0;
    }
    const where =
      found.output === null
        ? `under way in ${found.state || 'its first step'}`
        : `ended ${found.output.outcome}`;
    io.out(`${found.kind} of ${instance} (cluster ${cluster}, run ${found.run ?? '?'}): ${where}`);
    for (const e of found.events.slice(-10)) {
      if (e.type === 'feedback') io.out(`  ${e.level === 'warning' ? 'warning: ' : ''}${e.message}`);
      else if (e.type === 'state') io.out(`  state ${e.value}`);
    }
    if (found.output?.error !== undefined) io.out(`  error: ${found.output.error}`);
    return 0;
  },
};
