import { runMigration } from '../../runner/index.js';
import { createWorld, DEMO_SPEC } from '../../sim/index.js';
import type { Command } from '../command.js';
import { inputOf, simulate } from '../session.js';
import { saveWorld } from '../worldFile.js';

/** The demo's pace: simulated ms per wall ms, so a whole migration takes a few seconds to watch. */
const DEMO_PACE = 5;

export const demo: Command = {
  name: 'demo',
  summary: 'migrate instance web1 from node-a to node-b on a simulated two-node cluster',
  args: [],
  options: ['fail', 'hang', 'lose', 'non-live', 'world', 'fast', 'json', 'quiet'],
  conflicts: [{ option: 'quiet', with: ['json'], why: 'choose one output: only the result, or JSON lines' }],
  description: `Migrates web1 (2 GiB, two DRBD disks) on a fresh simulated cluster, with resync and memory
progress, and prints the final state of both nodes. Inject faults to watch the failure paths; with
--world FILE the cluster it leaves is saved, so that 'drbd-migrate migrate web1 --world FILE
--cleanup' can repair it.`,
  examples: [
    'drbd-migrate demo',
    'drbd-migrate demo --fail acceptInstance',
    'drbd-migrate demo --fail finalizeMigrationTarget --world /tmp/w.json',
  ],
  async run({ values, io }) {
    const input = inputOf('web1', values);
    const target = values.world === undefined ? null : { kind: 'world' as const, file: values.world };
    const run = await simulate(
      io,
      createWorld(DEMO_SPEC),
      values,
      'migration',
      (effects, options) => runMigration(input, effects, options),
      { target, instance: 'web1', journaled: false, ...(values.fast ? {} : { pace: DEMO_PACE }) },
    );
    if (target !== null) await saveWorld(target.file, run.world);
    return run.code;
  },
};
