import type { MachineName, ProtocolOutput } from '../../machines/index.js';
import type { RunOptions } from '../runner/index.js';
import { createSimCluster, runningOn, type World } from '../sim/index.js';
import { faultsOf } from './input.js';
import { withInterrupt } from './interrupt.js';
import type { CliIo } from './io.js';
import type { Values } from './options.js';
import { finish, viewFor } from './output.js';
import type { Target } from './target.js';
import { saveWorld } from './worldFile.js';

type SimRunner = (
  effects: ReturnType<typeof createSimCluster>['effects'],
  options: RunOptions,
) => Promise<ProtocolOutput>;

/**
 * Runs one machine on a simulated cluster with the live view, the safety record and Ctrl-C; saves
 * the world after every step when it is a file (so a crash leaves it as the nodes would be).
 */
export async function simulate(
  io: CliIo,
  world: World,
  values: Values,
  machine: MachineName,
  run: SimRunner,
  options: {
    pace?: number;
    target: Target | null;
    instance: string;
    /** Saved after every step and journaled (migrate, resume), or only run (the demo). */
    journaled: boolean;
  },
): Promise<{ result: ProtocolOutput; world: World; code: number }> {
  const sim = createSimCluster(world, {
    faults: faultsOf(values),
    ...(options.pace === undefined ? {} : { pace: options.pace }),
  });
  const { view, onEvent } = viewFor(io, values);
  sim.onStep = (step) => {
    for (const v of step.violations)
      onEvent({ type: 'feedback', level: 'warning', message: `SAFETY RULE BROKEN: ${v}` });
  };
  const target = options.target;
  if (target !== null && options.journaled) sim.afterStep = () => saveWorld(target.file, sim.snapshot());
  const about = {
    machine,
    instance: options.instance,
    target,
    journaled: options.journaled,
    clock: sim.clock,
  };
  return withInterrupt(io, view, about, async ({ abort, onCall }) => {
    const result = await run(sim.effects, { clock: sim.clock, onEvent, onCall, abort });
    const after = sim.snapshot();
    const code = finish(io, values, view, result, {
      at: after.time,
      runsOn: runningOn(after, result.instance).join(', ') || 'no node',
      target,
      world: after,
      of: { machine },
    });
    return { result, world: after, code };
  });
}
