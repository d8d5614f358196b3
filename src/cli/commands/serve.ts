import { basename, extname } from 'node:path';
import { serveEffects } from '../../remote/serve.js';
import { createSimCluster } from '../../sim/index.js';
import type { Command } from '../command.js';
import { isServedWorld, portOf, untilInterrupted } from '../distributed.js';
import { UsageError } from '../errors.js';
import { holdWorld, loadWorld, saveWorld } from '../worldFile.js';

/** The served world's pace unless --fast: simulated ms per wall ms, slow enough to watch and to kill a worker in. */
const SERVE_PACE = 5;

export const serve: Command = {
  name: 'serve',
  summary: 'serve a simulated cluster to several workers (a distributed setup on one machine)',
  args: [],
  oneOf: ['world'],
  options: ['world', 'port', 'fast'],
  description: `Serves the simulated cluster of a world file over HTTP on loopback, so that several workers
('drbd-migrate worker --world URL') act on one cluster, as workers on several hosts act on the same
real nodes. The world file is saved after every step. Its cluster's name, which Restate's keys
carry, is the file's base name. Runs until Ctrl-C or SIGTERM.`,
  examples: [
    'drbd-migrate init --world /tmp/demo.json && drbd-migrate serve --world /tmp/demo.json --port 7000',
  ],
  async run({ values, io }) {
    const file = values.world!;
    if (isServedWorld(file)) throw new UsageError('serve takes a world file, not a URL');
    const release = await holdWorld(file, 'serve');
    const sim = createSimCluster(await loadWorld(file), values.fast === true ? {} : { pace: SERVE_PACE });
    sim.afterStep = () => saveWorld(file, sim.snapshot());
    const served = await serveEffects(sim.effects, {
      cluster: basename(file, extname(file)),
      clock: sim.clock,
      views: { world: () => sim.snapshot() },
      ...(values.port === undefined ? {} : { port: portOf(values.port) }),
    });
    io.out(`serving the simulated cluster of ${file} at ${served.url} (pid ${process.pid})`);
    await untilInterrupted(io.onInterrupt);
    await served.close();
    await release();
    return 0;
  },
};
