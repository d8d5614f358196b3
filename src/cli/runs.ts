import { readFile, writeFile } from 'node:fs/promises';
import { MACHINES, type MachineName, type ProtocolInput } from '../../machines/index.js';
import { runJournaled } from '../journal/index.js';
import { runMachine } from '../runner/index.js';
import { createSimCluster } from '../sim/index.js';
import { dryRun, runOnCluster } from './cluster.js';
import type { Invocation } from './command.js';
import { isServedWorld } from './distributed.js';
import { UsageError } from './errors.js';
import { faultsOf } from './input.js';
import { withInterrupt } from './interrupt.js';
import { finish, planPrinter, viewFor } from './output.js';
import { onRestate } from './restate.js';
import { simulate } from './simulated.js';
import { journalStores, refuseUnfinished } from './stateDir.js';
import { type Target, targetOf } from './target.js';
import { checkWritable, loadWorld, worldNodes } from './worldFile.js';

/**
 * One machine run on one instance, as every instance command does it: on real nodes (--cluster) or a
 * simulated cluster (--world), journaled and locked, or --dry-run on a copy; same output and exits.
 */
export function runOnInstance(call: Invocation, kind: MachineName, input: ProtocolInput): Promise<number> {
  if (call.values.restate !== undefined) return onRestate(call, kind, input);
  return call.values.cluster !== undefined ? onCluster(call, kind, input) : onWorld(call, kind, input);
}

async function onCluster(call: Invocation, kind: MachineName, input: ProtocolInput): Promise<number> {
  const { values, io } = call;
  const target = targetOf(values);
  const file = target.file;
  const { view, onEvent, json } = viewFor(io, values);
  if (values['dry-run'] === true) {
    const result = await dryRun(file, kind, input, json ? () => {} : io.out);
    return finish(io, values, view, result, { at: Date.now(), runsOn: null, target, dryRun: true });
  }
  const journal = await journalStores(values, target);
  await refuseUnfinished(journal.store, input.instance, target);
  const about = { machine: kind, instance: input.instance, target, journaled: true };
  const result = await withInterrupt(io, view, about, ({ abort, onCall }) =>
    runOnCluster(file, kind, input, { onEvent, abort, onCall, journal }),
  );
  return finish(io, values, view, result, { at: Date.now(), runsOn: result.primaryNode, target });
}

async function onWorld(call: Invocation, kind: MachineName, input: ProtocolInput): Promise<number> {
  const { values, io } = call;
  const target = targetOf(values);
  const file = target.file;
  if (isServedWorld(file)) {
    throw new UsageError(
      `--world ${file} is a served world: its runs go through Restate's workers (add --restate URL)`,
    );
  }
  faultsOf(values);
  const world = await loadWorld(file);
  if (world.config.instances[input.instance] === undefined) {
    throw new UsageError(`instance ${input.instance} is not in world file ${file}`);
  }
  if (values['dry-run'] === true) return dryRunWorld(call, kind, target, input);
  await checkWritable(file);
  const journal = { ...(await journalStores(values, target)), nodes: worldNodes(world, input.instance) };
  await refuseUnfinished(journal.store, input.instance, target);
  const original = await readFile(file, 'utf8');
  const result = await simulate(
    io,
    world,
    values,
    kind,
    (effects, options) => runJournaled(kind, input, effects, { ...options, ...journal }),
    { target, instance: input.instance, journaled: true },
  );
  // Whatever happened was saved step by step, so a cleanup finds the world as this run left it; a
  // rejected run touched nothing and leaves the file as it was.
  if (result.result.outcome === 'rejected') await writeFile(file, original);
  return result.code;
}

/** --dry-run --world: the machine on a copy of the world, each effect and its node printed. */
async function dryRunWorld(
  call: Invocation,
  kind: MachineName,
  target: Target,
  input: ProtocolInput,
): Promise<number> {
  const { values, io } = call;
  const world = await loadWorld(target.file);
  const { view, json } = viewFor(io, values);
  const print = json ? () => {} : io.out;
  print(`# dry run of the ${kind} of ${input.instance} on a copy of ${target.file}: nothing is touched.`);
  print('# Each effect the machine calls, in order, and the node it acts on.');
  const sim = createSimCluster(world);
  const result = await runMachine(MACHINES[kind], input, sim.effects, {
    clock: sim.clock,
    onCall: planPrinter(print),
  });
  return finish(io, values, view, result, { at: sim.clock.now(), runsOn: null, target, dryRun: true });
}
