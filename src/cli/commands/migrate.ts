import type { MachineName } from '../../../machines/index.js';
import type { Command, Invocation } from '../command.js';
import { inputOf } from '../input.js';
import { RUN_CONFLICTS, RUN_OPTIONS } from '../options.js';
import { runOnInstance } from '../runs.js';

export const migrate: Command = {
  name: 'migrate',
  summary: 'migrate (or with --cleanup repair) an instance, on real nodes or a simulated cluster',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: [...RUN_OPTIONS, 'cleanup', 'target', 'non-live', 'no-runtime-changes', 'allow-failover'],
  conflicts: [
    {
      option: 'cleanup',
      with: ['target', 'non-live', 'no-runtime-changes', 'allow-failover', 'fail', 'hang', 'lose'],
      why: 'the cleanup only repairs; it moves nothing and takes no faults',
    },
    ...RUN_CONFLICTS,
  ],
  description: `With --cluster FILE the instance moves between real nodes over SSH: the nodes, keys and
instances come from the cluster file (docs/cluster.md), and the commit point rewrites it. With
--world FILE the same machine runs on a saved simulated cluster, saved back after every step so a
later cleanup finds it as the run left it (a rejected run leaves it untouched).

--dry-run drives the machine on a simulated copy and prints each step and what each node would do
(with --cluster, the exact commands); nothing is touched, not even the state directory.

Every transition is journaled under --state-dir, and the instance and its two nodes are locked for
the run. If the process dies, 'drbd-migrate resume INSTANCE' with the same --cluster or --world
continues it.

Ctrl-C (or SIGTERM) aborts at the next safe point, once the step in flight has finished: before the
handover the run reverts; after the point of no return it finishes forward and says so. A second
Ctrl-C only says what is in flight and how long it may take; the process is never killed mid-step.`,
  examples: [
    'drbd-migrate migrate web1 --cluster cluster.yaml --dry-run',
    'drbd-migrate migrate web1 --cluster cluster.yaml',
    'drbd-migrate init --world /tmp/w.json && drbd-migrate migrate web1 --world /tmp/w.json --non-live',
    'drbd-migrate migrate web1 --world /tmp/w.json --cleanup',
  ],
  run: (call) => {
    const input = inputOf(call.args.INSTANCE!, call.values);
    if (call.values['allow-failover'] === true) input.allowFailover = true;
    return runOnInstance(call, kindOf(call), input);
  },
};

const kindOf = (call: Invocation): MachineName => (call.values.cleanup === true ? 'cleanup' : 'migration');
