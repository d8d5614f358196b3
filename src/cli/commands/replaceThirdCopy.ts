import type { Command } from '../command.js';
import { inputOf, nodeName } from '../input.js';
import { RUN_CONFLICTS, RUN_OPTIONS } from '../options.js';
import { runOnInstance } from '../runs.js';
import { choose } from './replaceSecondary.js';

export const replaceThirdCopy: Command = {
  name: 'replace-third-copy',
  summary: 'move a DRBD 9 instance’s third copy to another node (its node is to be emptied)',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: [...RUN_OPTIONS, 'new-third-copy', 'cleanup'],
  conflicts: [
    { option: 'cleanup', with: ['fail', 'hang', 'lose'], why: 'the repair takes no faults' },
    ...RUN_CONFLICTS,
  ],
  description: `DRBD 9 only, for an instance whose cluster file names a thirdCopy: its third copy moves
to another node as replace-secondary moves a secondary on DRBD 9, make-before-break. The new node's
volumes and DRBD devices are made; it joins the primary and the secondary as a further peer (and
the tiebreaker, where the file names one) while the old third copy stays connected; the full
resync from the primary is waited for (bounded), then the one with the secondary; both links must
say UpToDate on both ends; then the commit (the config names the new third copy, and the old one
as still to be removed); only then is the old third copy removed as a peer of the primary, the
secondary and the tiebreaker, and its copies removed. Three UpToDate copies at every moment. The
instance keeps running on its primary; the secondary stays the secondary.

Without --new-third-copy the node is chosen as a new secondary is (not drained, room for every
disk, the minors free, the memory to run the instance: a third copy may become the primary by
'migrate --target'), each node passed over listed with why. The same checks refuse a bad choice
before anything is touched, as do a primary not UpToDate and a secondary not in sync with it.
Every failure before the commit removes the new peer and what was made on the new node; a replace
that stopped after its commit is finished by --cleanup; one that stopped before it is undone by
--cleanup --new-third-copy NODE (the error names the command). An old third copy that is down keeps
its copies, and the config keeps its name (formerThirdCopy), until 'rejoin NODE' or --cleanup runs
once it answers. A drain of the third copy's node (evacuate --secondaries) runs this.`,
  examples: [
    'drbd-migrate replace-third-copy web1 --cluster cluster.yaml --new-third-copy node-d --dry-run',
    'drbd-migrate replace-third-copy web1 --cluster cluster.yaml',
    'drbd-migrate replace-third-copy web1 --cluster cluster.yaml --cleanup',
  ],
  async run(call) {
    const input = inputOf(call.args.INSTANCE!, call.values);
    input.replaceCopy = 'thirdCopy';
    const given = call.values['new-third-copy'];
    if (given !== undefined) input.newSecondary = nodeName(given);
    if (call.values.cleanup === true) input.cleanup = true;
    else if (input.newSecondary === undefined)
      input.newSecondary = await choose(call, input.instance, 'third copy');
    return runOnInstance(call, 'changeSecondary', input);
  },
};
