import type { Command } from '../command.js';
import { inputOf } from '../input.js';
import { RUN_CONFLICTS, RUN_OPTIONS } from '../options.js';
import { runOnInstance } from '../runs.js';

export const failover: Command = {
  name: 'failover',
  summary: 'bring an instance up on its secondary: its primary is stopped, or proven down',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: [...RUN_OPTIONS, 'source-is-down', 'ignore-consistency', 'target'],
  conflicts: [...RUN_CONFLICTS],
  description: `Ganeti's failover: shut the instance down on its primary, make the disks Secondary there,
commit the secondary as the new primary, make its disks Primary, start the instance there. The
instance is down in between (a migration moves it running).

When the primary node is dead, say so with --source-is-down. The failover still looks: the node must
not answer, and the secondary's DRBD must have lost its connection to it; a node that answers and
runs the instance, or a secondary still connected to it, refuses the run before anything is
touched. The secondary's disks must be UpToDate. Without --source-is-down, a primary that does not
answer refuses the run. On shared storage nothing but the silence could tell, so a dead primary is
never taken for down: power it off, then fail over once it answers, or start the instance by hand.

When the dead node comes back, 'drbd-migrate rejoin NODE' makes it the secondary again.`,
  examples: [
    'drbd-migrate failover web1 --cluster cluster.yaml --source-is-down --dry-run',
    'drbd-migrate failover web1 --cluster cluster.yaml --source-is-down',
    'drbd-migrate failover web1 --world /tmp/w.json',
  ],
  run: (call) => {
    const input = inputOf(call.args.INSTANCE!, call.values);
    if (call.values['source-is-down'] === true) input.sourceIsDown = true;
    if (call.values['ignore-consistency'] === true) input.ignoreConsistency = true;
    return runOnInstance(call, 'failover', input);
  },
};
