import { MACHINES, type MachineName, type ProtocolInput } from '../../machines/index.js';
import { runMachine } from '../runner/index.js';
import { createSimCluster } from '../sim/index.js';
import { dryRun } from './cluster.js';
import type { Invocation } from './command.js';
import { primaryNow } from './distributed.js';
import { UsageError } from './errors.js';
import { faultsOf } from './input.js';
import { finish, forecastPrinter, planPrinter, viewFor } from './output.js';
import { openSession, refuseServedWorld, type Session, showRun } from './runtime.js';
import { refuseUnfinished } from './stateDir.js';
import { type Target, targetFlag, targetOf } from './target.js';
import { loadWorld } from './worldFile.js';

/**
 * One machine run on one instance, as every instance command does it: on the runtime the command
 * line names (real nodes or a simulated cluster, journaled and locked on this host; or Restate), or
 * --dry-run on a copy; same output and exits.
 */
export async function runOnInstance(
  call: Invocation,
  kind: MachineName,
  input: ProtocolInput,
): Promise<number> {
  if (call.values['dry-run'] === true) return dryRunOf(call, kind, input);
  const session = await openSession(call, {
    instance: input.instance,
    operation: `${kind} of ${input.instance}`,
  });
  try {
    const note =
      session.journal === null
        ? null
        : await refuseUnfinished(session.journal, input.instance, session.target, kind);
    if (note !== null) call.io.err(`drbd-migrate: ${note}`);
    await refuseUnderDrain(session, input.instance);
    const prepared = session.prepare(await withIntent(call, session, kind, input));
    const about = {
      machine: kind,
      instance: input.instance,
      sourceIsDown: input.sourceIsDown === true,
      from: kind === 'failover' ? await primaryNow(call.values, input.instance) : null,
      newSecondary: input.newSecondary ?? null,
      ...(input.replaceCopy === undefined ? {} : { replaceCopy: input.replaceCopy }),
      targetNode: input.targetNode ?? null,
    };
    return await showRun(call, session, about, (follow) => session.runtime.run(kind, prepared, follow));
  } finally {
    await session.close();
  }
}

/**
 * --dry-run: the machine on a simulated copy, each effect and its node printed (with --cluster, the
 * exact commands each node would run); nothing is touched, not even the state directory.
 */
async function dryRunOf(call: Invocation, kind: MachineName, input: ProtocolInput): Promise<number> {
  const { values, io } = call;
  const target = targetOf(values);
  const { view, json } = viewFor(io, values);
  const print = json ? () => {} : io.out;
  if (target.kind === 'cluster') {
    const result = await dryRun(target.file, kind, input, print);
    return finish(io, values, view, result, {
      at: Date.now(),
      runsOn: null,
      target,
      dryRun: true,
      of: { machine: kind },
    });
  }
  refuseServedWorld(target);
  faultsOf(values);
  const world = await loadWorld(target.file);
  if (world.config.instances[input.instance] === undefined) {
    throw new UsageError(`instance ${input.instance} is not in world file ${target.file}`);
  }
  return dryRunWorld(call, kind, target, input);
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
    onEvent: forecastPrinter(print),
  });
  return finish(io, values, view, result, {
    at: sim.clock.now(),
    runsOn: null,
    target,
    dryRun: true,
    of: { machine: kind },
  });
}

/**
 * A drain whose process died still holds its node: its lock looks stale (its process is gone), but
 * its journal is open, and a run that took the node over would move an instance under the drain's
 * feet. Resume the drain first.
 */
async function refuseUnderDrain(session: Session, instance: string): Promise<void> {
  for (const node of session.nodesOf(instance)) {
    if ((await session.runtime.evacuationStatus(node))?.output === null) {
      throw new UsageError(
        `an evacuation of ${node} is unfinished (its process died) and ${instance} is on ${node}: resume it first with 'drbd-migrate resume ${node}${targetFlag(session.target)}'`,
      );
    }
  }
}

/**
 * A run submitted to Restate may wait behind another on the instance: it carries where the
 * instance was when asked (its intent), so that it is refused if the other moved it, and the client
 * says it waits.
 */
async function withIntent(
  call: Invocation,
  session: Session,
  kind: MachineName,
  input: ProtocolInput,
): Promise<ProtocolInput> {
  if (session.runtime.name !== 'restate' || (kind !== 'migration' && kind !== 'failover')) return input;
  const ahead = await session.runtime.status(input.instance).catch(() => null);
  if (ahead !== null && ahead.output === null && call.values.json !== true && call.values.quiet !== true) {
    call.io.out(
      `# queued behind the ${ahead.kind} of ${input.instance} under way; this ${kind} runs when it ends, if ${input.instance} is still where it is now`,
    );
  }
  const source = await primaryNow(call.values, input.instance);
  return source === null ? input : { ...input, expectedSource: source };
}
