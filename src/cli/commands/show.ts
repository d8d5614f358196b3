import type { Command } from '../command.js';
import { describeWorldState, worldLines } from '../report.js';
import { loadWorld } from '../worldFile.js';

export const show: Command = {
  name: 'show',
  summary: 'print a saved simulated cluster',
  args: [],
  oneOf: ['world'],
  options: ['world', 'json'],
  description:
    'Prints each node’s instances and DRBD resources, the config, and whether every safety rule held.',
  examples: ['drbd-migrate show --world /tmp/w.json', 'drbd-migrate show --world /tmp/w.json --json'],
  async run({ values, io }) {
    const world = await loadWorld(values.world!);
    if (values.json === true) io.out(JSON.stringify({ type: 'world', ...describeWorldState(world) }));
    else for (const l of worldLines(world)) io.out(l);
    return 0;
  },
};
