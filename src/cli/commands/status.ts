import type { Command } from '../command.js';
import { clusterName } from '../distributed.js';
import { UsageError } from '../errors.js';
import { instanceName } from '../input.js';
import { restateEndpoints, restateStatuses } from '../restate.js';

export const status: Command = {
  name: 'status',
  summary: "where an instance's run, or a node's evacuation, on Restate stands",
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: ['cluster', 'world', 'restate', 'restate-admin', 'json'],
  description: `Asks the Restate cluster (--restate URL, its ingress) for the run of INSTANCE under way, or the
last one: its machine, state, latest events and outcome (the shared status handler answers while
the run holds the instance). Given a node, its evacuation: which runs started and how each ended.
Exit 0 when a run is known (under way or ended), 2 when there is none there.`,
  examples: ['drbd-migrate status web1 --world http://127.0.0.1:7000 --restate http://127.0.0.1:8080'],
  async run({ args, values, io }) {
    if (values.restate === undefined)
      throw new UsageError('status needs --restate URL (a local run shows itself)');
    const name = instanceName(args.INSTANCE!);
    const cluster = await clusterName(values);
    const [found, drain] = await restateStatuses(restateEndpoints(values), cluster, name);
    if (found === null && drain === null) {
      throw new UsageError(`Restate knows no run of ${name} in cluster ${cluster}`);
    }
    if (found !== null) {
      if (values.json === true) io.out(JSON.stringify({ type: 'status', ...found }));
      else {
        const where =
          found.output === null
            ? `under way in ${found.state || 'its first step'}`
            : `ended ${found.output.outcome}`;
        io.out(`${found.kind} of ${name} (cluster ${cluster}, run ${found.run ?? '?'}): ${where}`);
        for (const e of found.events.slice(-10)) {
          if (e.type === 'feedback') io.out(`  ${e.level === 'warning' ? 'warning: ' : ''}${e.message}`);
          else if (e.type === 'state') io.out(`  state ${e.value}`);
        }
        if (found.output?.error !== undefined) io.out(`  error: ${found.output.error}`);
      }
    }
    if (drain !== null) {
      if (values.json === true) io.out(JSON.stringify({ type: 'evacuation', ...drain }));
      else {
        const { started, ended } = drain;
        const where = drain.output === null ? 'under way' : `ended ${drain.output.outcome}`;
        io.out(
          `evacuation of ${name} (cluster ${cluster}, run ${drain.run}): ${where}; ${started} runs started, ${ended} ended`,
        );
        for (const n of drain.notices.slice(-10)) {
          const r = n.request;
          io.out(
            n.phase === 'start'
              ? `  ${r.instance}: ${r.operation} to ${r.target} started`
              : `  ${r.instance}: ${n.output?.outcome ?? 'stopped'}`,
          );
        }
      }
    }
    return 0;
  },
};
