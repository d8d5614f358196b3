import { clusterSpec, createWorld, DEMO_SPEC } from '../../sim/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { holdWorld, refuseExisting, saveWorld } from '../worldFile.js';

export const init: Command = {
  name: 'init',
  summary: "write a simulated cluster to a file: the demo's, or one of N nodes and M instances",
  args: [],
  oneOf: ['world'],
  options: ['world', 'nodes', 'instances', 'seed', 'force'],
  description: `Writes a fresh simulated cluster for the other commands to act on: by default the demo's (node-a
and node-b; web1 running on node-a with two DRBD disks). With --nodes N (and --instances M, --seed S)
a larger one: nodes node-a, node-b, …; instances web1 … webM, each with a primary and a secondary on
another node, one or two disks, 1 to 4 GiB of memory; about one in five stopped, about one in four
of the running ones busy (it dirties memory, so a live copy has to converge). Every node has a
1 TiB volume group (xenvg), so a secondary can be replaced onto any of them. The same seed gives
the same cluster. An existing file is replaced only with --force.`,
  examples: [
    'drbd-migrate init --world /tmp/w.json',
    'drbd-migrate init --world /tmp/w.json --nodes 3 --instances 8 --seed 7',
  ],
  async run({ values, io }) {
    const count = (name: 'nodes' | 'instances' | 'seed', text: string | undefined, min: number) => {
      if (text === undefined) return undefined;
      if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > 100_000)
        throw new UsageError(`bad --${name} '${text}': expected a whole number from ${min} to 100000`);
      return Number(text);
    };
    const nodes = count('nodes', values.nodes, 2);
    const instances = count('instances', values.instances, 0);
    const seed = count('seed', values.seed, 0);
    if (nodes === undefined && (instances !== undefined || seed !== undefined))
      throw new UsageError('--instances and --seed shape a cluster of --nodes N: give --nodes too');
    await refuseExisting(values.world!, values.force === true);
    const spec =
      nodes === undefined
        ? DEMO_SPEC
        : clusterSpec({ nodes, instances: instances ?? 2 * nodes, ...(seed === undefined ? {} : { seed }) });
    const release = await holdWorld(values.world!, 'init');
    try {
      await saveWorld(values.world!, createWorld(spec));
    } finally {
      await release();
    }
    io.out(
      nodes === undefined
        ? `wrote the demo cluster to ${values.world}`
        : `wrote a cluster of ${nodes} nodes and ${spec.instances?.length ?? 0} instances to ${values.world}`,
    );
    return 0;
  },
};
