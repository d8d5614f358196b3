import { runFailover, runMigration, runRejoin } from '../../runner/index.js';
import { createSimCluster, createWorld, DEMO_SPEC, type World } from '../../sim/index.js';
import type { Command } from '../command.js';
import { inputOf } from '../input.js';
import type { CliIo } from '../io.js';
import type { Values } from '../options.js';
import { simulate } from '../simulated.js';
import type { Target } from '../target.js';
import { holdWorld, refuseExisting, saveWorld } from '../worldFile.js';

/** The demo's pace: simulated ms per wall ms, so a whole migration takes a few seconds to watch. */
const DEMO_PACE = 5;

export const demo: Command = {
  name: 'demo',
  summary: 'migrate instance web1 from node-a to node-b on a simulated two-node cluster',
  args: [],
  options: ['failover', 'fail', 'hang', 'lose', 'non-live', 'world', 'force', 'fast', 'json', 'quiet'],
  conflicts: [
    { option: 'quiet', with: ['json'], why: 'choose one output: only the result, or JSON lines' },
    {
      option: 'failover',
      with: ['non-live'],
      why: 'a failover stops the instance; there is no copy to make live',
    },
  ],
  description: `Migrates web1 (2 GiB, two DRBD disks) on a fresh simulated cluster, with resync and memory
progress, and prints the final state of both nodes. Inject faults to watch the failure paths; with
--world FILE the cluster it leaves is saved, so that 'drbd-migrate migrate web1 --world FILE
--cleanup' can repair it.

With --failover it shows the other half of the life cycle: node-a loses power, web1 is failed over to
node-b (with --source-is-down, checked), node-a boots again and is rejoined as the secondary,
resynced from node-b; 'drbd-migrate migrate web1' would then move it back.`,
  examples: [
    'drbd-migrate demo',
    'drbd-migrate demo --fail acceptInstance',
    'drbd-migrate demo --failover',
    'drbd-migrate demo --fail finalizeMigrationTarget --world /tmp/w.json',
  ],
  async run({ values, io }) {
    const target = values.world === undefined ? null : { kind: 'world' as const, file: values.world };
    if (target !== null) await refuseExisting(target.file, values.force === true);
    const release = target === null ? async () => {} : await holdWorld(target.file, 'demo');
    try {
      const { world, code } = await demoRuns(values, io, target);
      if (target !== null) await saveWorld(target.file, world);
      return code;
    } finally {
      await release();
    }
  },
};

/** The demo's runs on a fresh simulated cluster: a migration, or a failover and a rejoin. */
async function demoRuns(
  values: Values,
  io: CliIo,
  target: Target | null,
): Promise<{ world: World; code: number }> {
  const pace = values.fast ? {} : { pace: DEMO_PACE };
  const world = createWorld(DEMO_SPEC);
  if (values.failover === true) {
    const say = (line: string) => (values.json === true ? undefined : io.out(line));
    const sim = createSimCluster(world);
    sim.killNode('node-a');
    say('# node-a loses power: web1 is gone with it; node-b waits for its DRBD peer');
    const down = await simulate(
      io,
      sim.snapshot(),
      values,
      'failover',
      (effects, options) => runFailover({ instance: 'web1', sourceIsDown: true }, effects, options),
      { target, instance: 'web1', journaled: false, ...pace },
    );
    const back = createSimCluster(down.world);
    back.reviveNode('node-a');
    say('');
    say('# node-a boots again: nothing runs there, its disks are Secondary and unconnected');
    const rejoined = await simulate(
      io,
      back.snapshot(),
      values,
      'rejoin',
      (effects, options) => runRejoin({ instance: 'web1' }, effects, options),
      { target, instance: 'web1', journaled: false, ...pace },
    );
    return { world: rejoined.world, code: Math.max(down.code, rejoined.code) };
  }
  const input = inputOf('web1', values);
  const run = await simulate(
    io,
    world,
    values,
    'migration',
    (effects, options) => runMigration(input, effects, options),
    { target, instance: 'web1', journaled: false, ...pace },
  );
  return { world: run.world, code: run.code };
}
