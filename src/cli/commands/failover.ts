import type { Command } from '../command.js';
import { inputOf } from '../input.js';
import { RUN_CONFLICTS, RUN_OPTIONS } from '../options.js';
import { runOnInstance } from '../runs.js';

export const failover: Command = {
  name: 'failover',
  summary: 'bring an instance up on its secondary: its primary is stopped, or proven down',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: [...RUN_OPTIONS, 'source-is-down', 'ignore-consistency', 'target', 'cleanup'],
  conflicts: [
    {
      option: 'cleanup',
      with: ['ignore-consistency', 'fail', 'hang', 'lose'],
      why: 'the repair promotes only disks in sync (or the survivor of a node proven down), and takes no faults',
    },
    ...RUN_CONFLICTS,
  ],
  description: `Ganeti's failover: shut the instance down on its primary, make the disks Secondary there,
commit the secondary as the new primary, make its disks Primary, start the instance there. The
instance is down in between (a migration moves it running).

When the primary node is dead, say so with --source-is-down. The failover still looks: the node must
not answer, and the secondary's DRBD must have lost its connection to it; a node that answers and
runs the instance, or a secondary still connected to it, refuses the run before anything is
touched. The secondary's disks must be UpToDate. Without --source-is-down, a primary that does not
answer refuses the run. On shared storage nothing but the silence could tell, so a dead primary is
never taken for down: power it off, then fail over once it answers, or start the instance by hand.

When the dead node comes back, 'drbd-migrate rejoin NODE' makes it the secondary again.

A failover that stopped halfway is repaired with --cleanup: the instance is brought up on the node
the config names now (after the commit, the former secondary; before it, the former primary), once
the other node is proven stopped or down exactly as above (--source-is-down then speaks of that
other node). The repair never reconnects the disks: a node that wrote alone is taken back with
'drbd-migrate rejoin NODE', which resyncs from the newer data and says which; the repair refuses to
promote disks that are not in sync with a node that answers, and says to rejoin it first.`,
  examples: [
    'drbd-migrate failover web1 --cluster cluster.yaml --source-is-down --dry-run',
    'drbd-migrate failover web1 --cluster cluster.yaml --source-is-down',
    'drbd-migrate failover web1 --world /tmp/w.json',
    'drbd-migrate failover web1 --cluster cluster.yaml --cleanup --source-is-down',
  ],
  run: (call) => {
    const input = inputOf(call.args.INSTANCE!, call.values);
    if (call.values['source-is-down'] === true) input.sourceIsDown = true;
    if (call.values['ignore-consistency'] === true) input.ignoreConsistency = true;
    if (call.values.cleanup === true) input.cleanup = true;
    return runOnInstance(call, 'failover', input);
  },
};
