import { createSimCluster } from '../../sim/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { worldLines } from '../report.js';
import { holdWorld, loadWorld, saveWorld } from '../worldFile.js';

export const power: Command = {
  name: 'power',
  summary: 'simulated cluster only: a node loses power, or boots again',
  args: [{ name: 'NODE' }, { name: 'STATE', choices: ['off', 'on'] }],
  oneOf: ['world'],
  options: ['world'],
  description: `'off': the node dies at once, as a power cut: its guests are gone, its DRBD devices with them,
its peers wait for it. 'on': it boots again with nothing running and its DRBD devices Secondary and
unconnected, until 'drbd-migrate rejoin NODE' takes it back. For rehearsing a failover.`,
  examples: [
    'drbd-migrate power node-a off --world /tmp/w.json',
    'drbd-migrate failover web1 --world /tmp/w.json --source-is-down',
    'drbd-migrate power node-a on --world /tmp/w.json',
    'drbd-migrate rejoin node-a --world /tmp/w.json',
  ],
  async run({ args, values, io }) {
    const file = values.world!;
    const world = await loadWorld(file);
    const node = args.NODE!;
    if (world.nodes[node] === undefined) throw new UsageError(`${node} is not a node of ${file}`);
    const release = await holdWorld(file, `power ${node} ${args.STATE}`);
    const sim = createSimCluster(world);
    if (args.STATE === 'off') sim.killNode(node);
    else sim.reviveNode(node);
    try {
      await saveWorld(file, sim.snapshot());
    } finally {
      await release();
    }
    io.out(`${node} is ${args.STATE === 'off' ? 'powered off' : 'up again'}`);
    for (const l of worldLines(sim.snapshot())) io.out(l);
    return 0;
  },
};
