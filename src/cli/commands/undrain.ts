import { clusterConfigEffects, loadCluster } from '../../cluster/index.js';
import type { Command } from '../command.js';
import { isServedWorld } from '../distributed.js';
import { UsageError } from '../errors.js';
import { nodeName } from '../input.js';
import { holdWorld, loadWorld, saveWorld } from '../worldFile.js';

export const undrain: Command = {
  name: 'undrain',
  summary: "take back a node's drain mark: instances may be placed there and moved to it again",
  args: [{ name: 'NODE' }],
  oneOf: ['cluster', 'world'],
  options: ['cluster', 'world'],
  description: `'evacuate NODE --all' marks NODE drained in the config (the cluster file's drained: true, or the
world's), so that nothing new is placed there while it empties and after. Once the maintenance is
over, this takes the mark back. It moves nothing: the instances come back with migrate and
replace-secondary as usual. A node that is not drained is left as it is.`,
  examples: [
    'drbd-migrate undrain node-b --cluster cluster.yaml',
    'drbd-migrate undrain node-b --world /tmp/w.json',
  ],
  async run({ args, values, io }) {
    const node = nodeName(args.NODE!);
    if (values.cluster !== undefined) {
      const cluster = await loadCluster(values.cluster);
      const spec = cluster.nodes.find((n) => n.name === node);
      if (spec === undefined) throw new UsageError(`${node} is not a node of ${values.cluster}`);
      if (!spec.drained) {
        io.out(`${node} is not drained: nothing to do`);
        return 0;
      }
      await clusterConfigEffects(values.cluster).setNodeDrained(
        { node, drained: false, timeoutMs: 60_000 },
        new AbortController().signal,
      );
    } else {
      const file = values.world!;
      if (isServedWorld(file))
        throw new UsageError(`${file} is served: take the mark back where the world is kept (its file)`);
      const world = await loadWorld(file);
      const n = world.nodes[node];
      if (n === undefined) throw new UsageError(`${node} is not a node of ${file}`);
      if (!n.drained) {
        io.out(`${node} is not drained: nothing to do`);
        return 0;
      }
      const release = await holdWorld(file, `undrain ${node}`);
      try {
        const fresh = await loadWorld(file);
        fresh.nodes[node]!.drained = false;
        await saveWorld(file, fresh);
      } finally {
        await release();
      }
    }
    io.out(`${node} is no longer drained`);
    return 0;
  },
};
