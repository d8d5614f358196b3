import { readClusterFile } from '../cluster.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { nodeName } from '../input.js';
import { RUN_CONFLICTS, RUN_OPTIONS } from '../options.js';
import { runOnInstance } from '../runs.js';
import { loadWorld } from '../worldFile.js';

export const rejoin: Command = {
  name: 'rejoin',
  summary:
    'take a node back after a failover: it becomes the secondary again, never overwriting what the survivor wrote',
  args: [{ name: 'NODE' }],
  oneOf: ['cluster', 'world'],
  options: [...RUN_OPTIONS],
  conflicts: [...RUN_CONFLICTS],
  description: `For every instance whose secondary is NODE (after a failover, the node that died): a copy of
the instance still there is stopped (it is stale), the disks there become Secondary, connect again
with --discard-my-data (so that if NODE wrote on its own before it died, the split brain resolves in
the survivor's favour), resync, and both sides are read back. NODE never overwrites what the
survivor wrote. Before it reconnects, the rejoin reads what each side wrote while apart (DRBD's
out-of-sync count) and says which way the resync goes: from the survivor; or, where the survivor
wrote nothing since (a failover that committed but never started the instance), from NODE, whose
data is the newer, so nothing is lost; what NODE wrote alone is discarded only when the survivor
wrote too (a split brain), and that is said as a warning before it happens. A node that is already
the secondary, connected and in sync, is left as it is (nothing to do). An instance whose secondary
was replaced while NODE was down (the config names NODE as its formerSecondary) has its old copies
removed from NODE, as 'replace-secondary INSTANCE --cleanup' does. On DRBD 9, an instance whose
third copy NODE holds is rejoined the same way: NODE reconnects to the primary, then to the
secondary (if that is in sync with the primary), its side discarded both times; one whose third
copy was replaced while NODE was down (formerThirdCopy) has its old copies removed, as
'replace-third-copy INSTANCE --cleanup' does. Afterwards 'drbd-migrate migrate INSTANCE' moves an instance back as usual.

Exit 0 when every instance rejoined; otherwise the worst exit of them.`,
  examples: [
    'drbd-migrate rejoin node-a --cluster cluster.yaml',
    'drbd-migrate rejoin node-a --world /tmp/w.json',
  ],
  async run(call) {
    const node = nodeName(call.args.NODE!);
    const { values, io } = call;
    // The instances it is the secondary of, and those whose old copies a replace left on it while
    // it was down (the config names it formerSecondary): those are removed now that it answers.
    // And those whose third copy it holds (DRBD 9): it reconnects to the primary and the secondary.
    type Found = [string[], string[], string[], string[], string[]];
    const [nodes, instances, leftOn, thirdOn, thirdLeftOn]: Found =
      values.cluster !== undefined
        ? await readClusterFile(values.cluster).then(
            (c): Found => [
              c.nodes.map((n) => n.name),
              c.instances.filter((i) => i.secondary === node).map((i) => i.name),
              c.instances.filter((i) => i.formerSecondary === node).map((i) => i.name),
              c.instances.filter((i) => i.thirdCopy === node).map((i) => i.name),
              c.instances.filter((i) => i.formerThirdCopy === node).map((i) => i.name),
            ],
          )
        : await loadWorld(values.world!).then((w): Found => {
            const all = Object.values(w.config.instances);
            return [
              Object.keys(w.nodes),
              all.filter((i) => i.secondaryNode === node).map((i) => i.name),
              all.filter((i) => i.formerSecondary === node).map((i) => i.name),
              all.filter((i) => i.thirdCopy === node).map((i) => i.name),
              all.filter((i) => i.formerThirdCopy === node).map((i) => i.name),
            ];
          });
    const file = values.cluster ?? values.world;
    if (!nodes.includes(node)) throw new UsageError(`${node} is not a node of ${file}`);
    if ([instances, leftOn, thirdOn, thirdLeftOn].every((l) => l.length === 0)) {
      io.out(`no instance in ${file} has ${node} as its secondary or third copy: nothing to rejoin`);
      return 0;
    }
    let worst = 0;
    for (const instance of instances) {
      if (values.json !== true) io.out(`# ${instance}`);
      worst = Math.max(worst, await runOnInstance(call, 'rejoin', { instance }));
    }
    for (const instance of thirdOn) {
      if (values.json !== true) io.out(`# ${instance} (${node} holds its third copy)`);
      worst = Math.max(worst, await runOnInstance(call, 'rejoin', { instance, targetNode: node }));
    }
    for (const instance of leftOn) {
      if (values.json !== true)
        io.out(`# ${instance}: removing its old copies from ${node} (its secondary was replaced)`);
      worst = Math.max(worst, await runOnInstance(call, 'changeSecondary', { instance, cleanup: true }));
    }
    for (const instance of thirdLeftOn) {
      if (values.json !== true)
        io.out(`# ${instance}: removing its old copies from ${node} (its third copy was replaced)`);
      worst = Math.max(
        worst,
        await runOnInstance(call, 'changeSecondary', { instance, cleanup: true, replaceCopy: 'thirdCopy' }),
      );
    }
    return worst;
  },
};
