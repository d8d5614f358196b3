import { readFile, writeFile } from 'node:fs/promises';
import type { ProtocolInput } from '../../../machines/index.js';
import { runJournaled } from '../../journal/index.js';
import { runCleanup, runMigration } from '../../runner/index.js';
import { createSimCluster } from '../../sim/index.js';
import { dryRun, runOnCluster } from '../cluster.js';
import type { Command, Invocation } from '../command.js';
import { UsageError } from '../errors.js';
import {
  checkWritable,
  faultsOf,
  finish,
  inputOf,
  journalStores,
  planPrinter,
  refuseUnfinished,
  simulate,
  type Target,
  viewFor,
  withOperatorAbort,
  worldNodes,
} from '../session.js';
import { loadWorld } from '../worldFile.js';

export const migrate: Command = {
  name: 'migrate',
  summary: 'migrate (or with --cleanup repair) an instance, on real nodes or a simulated cluster',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: [
    'cluster',
    'world',
    'cleanup',
    'target',
    'non-live',
    'no-runtime-changes',
    'dry-run',
    'fail',
    'hang',
    'lose',
    'json',
    'quiet',
    'state-dir',
    'kill-at',
  ],
  conflicts: [
    {
      option: 'cleanup',
      with: ['target', 'non-live', 'no-runtime-changes', 'fail', 'hang', 'lose'],
      why: 'the cleanup only repairs; it moves nothing and takes no faults',
    },
    {
      option: 'cluster',
      with: ['fail', 'hang', 'lose'],
      why: 'faults are injected into a simulated cluster only',
    },
    {
      option: 'dry-run',
      with: ['fail', 'hang', 'lose', 'kill-at', 'state-dir'],
      why: 'a dry run plans a healthy run and touches nothing',
    },
    { option: 'quiet', with: ['json'], why: 'choose one output: only the result, or JSON lines' },
  ],
  description: `With --cluster FILE the instance moves between real nodes over SSH: the nodes, keys and
instances come from the cluster file (docs/cluster.md), and the commit point rewrites it. With
--world FILE the same machine runs on a saved simulated cluster, saved back after every step so a
later cleanup finds it as the run left it (a rejected run leaves it untouched).

--dry-run drives the machine on a simulated copy and prints each step and what each node would do
(with --cluster, the exact commands); nothing is touched, not even the state directory.

Every transition is journaled under --state-dir, and the instance and its two nodes are locked for
the run. If the process dies, 'drbd-migrate resume INSTANCE' with the same --cluster or --world
continues it.

Ctrl-C (or SIGTERM) aborts at the next safe point, once the step in flight has finished: before the
handover the run reverts; after the point of no return it finishes forward and says so. A second
Ctrl-C only says what is in flight and how long it may take; the process is never killed mid-step.`,
  examples: [
    'drbd-migrate migrate web1 --cluster cluster.yaml --dry-run',
    'drbd-migrate migrate web1 --cluster cluster.yaml',
    'drbd-migrate init --world /tmp/w.json && drbd-migrate migrate web1 --world /tmp/w.json --non-live',
    'drbd-migrate migrate web1 --world /tmp/w.json --cleanup',
  ],
  run: (call) => (call.values.cluster !== undefined ? onCluster(call) : onWorld(call)),
};

const kindOf = (call: Invocation) => (call.values.cleanup === true ? 'cleanup' : 'migration');

async function onCluster(call: Invocation): Promise<number> {
  const { values, io } = call;
  const file = values.cluster!;
  const target: Target = { kind: 'cluster', file };
  const input = inputOf(call.args.INSTANCE!, values);
  const { view, onEvent, json } = viewFor(io, values);
  if (values['dry-run'] === true) {
    const result = await dryRun(file, kindOf(call), input, json ? () => {} : io.out);
    return finish(io, values, view, result, { at: Date.now(), runsOn: null, target, dryRun: true });
  }
  const journal = await journalStores(values, target);
  await refuseUnfinished(journal.store, input.instance, target);
  const result = await withOperatorAbort(io, view, (abort) =>
    runOnCluster(file, kindOf(call), input, { onEvent, abort, journal }),
  );
  return finish(io, values, view, result, { at: Date.now(), runsOn: result.primaryNode, target });
}

async function onWorld(call: Invocation): Promise<number> {
  const { values, io } = call;
  const file = values.world!;
  const target: Target = { kind: 'world', file };
  const input = inputOf(call.args.INSTANCE!, values);
  faultsOf(values);
  const world = await loadWorld(file);
  if (world.config.instances[input.instance] === undefined) {
    throw new UsageError(`instance ${input.instance} is not in world file ${file}`);
  }
  const kind = kindOf(call);
  if (values['dry-run'] === true) return dryRunWorld(call, target, input);
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
async function dryRunWorld(call: Invocation, target: Target, input: ProtocolInput): Promise<number> {
  const { values, io } = call;
  const world = await loadWorld(target.file);
  const kind = kindOf(call);
  const { view, json } = viewFor(io, values);
  const print = json ? () => {} : io.out;
  print(`# dry run of the ${kind} of ${input.instance} on a copy of ${target.file}: nothing is touched.`);
  print('# Each effect the machine calls, in order, and the node it acts on.');
  const sim = createSimCluster(world);
  const result = await (kind === 'cleanup' ? runCleanup : runMigration)(input, sim.effects, {
    clock: sim.clock,
    onCall: planPrinter(print),
  });
  return finish(io, values, view, result, { at: sim.clock.now(), runsOn: null, target, dryRun: true });
}
