import { createWorld, DEMO_SPEC } from '../../sim/index.js';
import type { Command } from '../command.js';
import { holdWorld, refuseExisting, saveWorld } from '../worldFile.js';

export const init: Command = {
  name: 'init',
  summary: "write the demo's simulated cluster to a file",
  args: [],
  oneOf: ['world'],
  options: ['world', 'force'],
  description: `Writes a fresh simulated cluster (node-a and node-b; web1 running on node-a with two DRBD
disks) for migrate, resume and show to act on. An existing file is replaced only with --force.`,
  examples: ['drbd-migrate init --world /tmp/w.json'],
  async run({ values, io }) {
    await refuseExisting(values.world!, values.force === true);
    const release = await holdWorld(values.world!, 'init');
    try {
      await saveWorld(values.world!, createWorld(DEMO_SPEC));
    } finally {
      await release();
    }
    io.out(`wrote the demo cluster to ${values.world}`);
    return 0;
  },
};
