import { placeSecondary } from '../../runner/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { inputOf, nodeName } from '../input.js';
import { RUN_CONFLICTS, RUN_OPTIONS } from '../options.js';
import { readEffects } from '../reads.js';
import { runOnInstance } from '../runs.js';

export const replaceSecondary: Command = {
  name: 'replace-secondary',
  summary: 'give an instance a new secondary (its old one is gone, or its node is to be emptied)',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: [...RUN_OPTIONS, 'new-secondary', 'cleanup'],
  conflicts: [
    { option: 'cleanup', with: ['fail', 'hang', 'lose'], why: 'the repair takes no faults' },
    ...RUN_CONFLICTS,
  ],
  description: `Ganeti's replace-disks -n: the instance's disks get a copy on another node, which becomes its
secondary; the instance keeps running on its primary throughout, and the old secondary's copies
are removed at the end. Without --new-secondary the node is chosen: not drained, room in its
volume group for every disk (its size, and a 128 MiB metadata volume each), the disks' DRBD minors
free there, and the memory to run the instance, with every other instance it would take over, if
the primary fails (N+1); among those, the one holding the fewest secondaries. Each other node is
listed with why it was passed over. With --new-secondary the same checks refuse a bad choice
before anything is touched; a primary whose disks are not UpToDate is refused too.

DRBD 8.4 has two peers only, so there the copy is break-before-make, as Ganeti's: the new node's volumes
and DRBD devices are made, the old secondary and the primary disconnected, the config names the new
secondary (the commit; it also records the old one as still to be cleaned), the primary attached
to the new node, and the full resync waited for (bounded). From the disconnect until the resync
ends the instance has one copy: the run says so, as a warning, before it opens that window (and a
--dry-run says it too). Only then are the old copies removed. An old secondary that is down keeps
its copies, and the config keeps its name, until 'replace-secondary INSTANCE --cleanup' runs once
it answers. Every failure before the commit undoes the replace: the primary connected to the old
secondary again, in sync, and everything made on the new node removed. A replace that stopped
after its commit is finished by --cleanup; one that stopped before it is undone by --cleanup
--new-secondary NODE (the error names the command).

On DRBD 9 the copy is make-before-break: the new node joins the primary as a further peer while
the old secondary stays connected, the full resync is waited for, both ends must say UpToDate,
then the commit, and only then is the old secondary removed as a peer (del-peer, its bitmap slot
freed with forget-peer) and its copies removed: two UpToDate copies at every moment, no window to
announce. The new node takes the lowest node-id the disk's nodeIds do not name (name every node
of the resource there), and the commit writes it. The primary's metadata needs a free bitmap slot
(create-md --max-peers 2 or more; new copies are made with 7); the new resource takes the
primary's resource options (quorum, on-no-quorum), auto-promote off. Where the cluster file names
the instance's tiebreaker, the new node joins it too before the commit and the old one leaves it
after, so quorum stays a proof; the tiebreaker must be diskless and connected to the primary, or
nothing is touched. A resource with quorum whose tiebreaker the file does not name is refused.
Every failure before the commit removes the new peer (from the tiebreaker too) and what was made
on the new node; the old secondary never left.`,
  examples: [
    'drbd-migrate replace-secondary web1 --world /tmp/w.json',
    'drbd-migrate replace-secondary web1 --cluster cluster.yaml --new-secondary node-c --dry-run',
    'drbd-migrate replace-secondary web1 --cluster cluster.yaml --cleanup',
  ],
  async run(call) {
    const input = inputOf(call.args.INSTANCE!, call.values);
    const given = call.values['new-secondary'];
    if (given !== undefined) input.newSecondary = nodeName(given);
    if (call.values.cleanup === true) {
      input.cleanup = true;
      return runOnInstance(call, 'changeSecondary', input);
    }
    if (input.newSecondary === undefined)
      input.newSecondary = await choose(call, input.instance, 'secondary');
    return runOnInstance(call, 'changeSecondary', input);
  },
};

/** The placement, said; no node that can hold the copy is a refusal before anything is touched. */
export async function choose(
  call: Parameters<Command['run']>[0],
  instance: string,
  copy: 'secondary' | 'third copy',
): Promise<string> {
  const { effects, close } = await readEffects(call.values, instance);
  try {
    const placed = await placeSecondary(effects, instance);
    const quiet = call.values.json === true || call.values.quiet === true;
    if (placed.chosen === null)
      throw new UsageError(
        `no node can hold the new ${copy} of ${instance}: ${
          placed.passedOver.map((p) => `${p.node}: ${p.why}`).join('; ') || 'the cluster has no third node'
        }`,
      );
    if (!quiet) {
      call.io.out(`# new ${copy} of ${instance}: ${placed.chosen}`);
      for (const p of placed.passedOver) call.io.out(`#   not ${p.node}: ${p.why}`);
    }
    return placed.chosen;
  } finally {
    close();
  }
}
