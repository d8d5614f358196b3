import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { EvacuationInput, MachineName, ProtocolInput, ProtocolOutput } from '../../machines/index.js';
import { SSH_GRACE_MS, sshEffects } from '../backend/index.js';
import { EvacuationJournal, type FileJournal, journalRuntime } from '../journal/index.js';
import { RestateError } from '../restate/client.js';
import { restateRuntime } from '../restate/runtime.js';
import type { Follow, Runtime } from '../runtime/index.js';
import { createSimCluster, runningOn, type SimCluster } from '../sim/index.js';
import { evacuationWithCluster, inputWithLimits, readClusterFile } from './cluster.js';
import type { Invocation } from './command.js';
import { clusterName, isServedWorld, leasesBeside } from './distributed.js';
import { RunGoesOn, UsageError } from './errors.js';
import { faultsOf } from './input.js';
import { withInterrupt } from './interrupt.js';
import { finish, viewFor } from './output.js';
import { restateEndpoints } from './restate.js';
import { journalStores } from './stateDir.js';
import { type RepairOf, type Target, targetOf } from './target.js';
import { checkWritable, holdWorld, loadWorld, saveWorld, worldNodes } from './worldFile.js';

/**
 * The runtime a command's runs go on, picked once from its command line: Restate's (--restate URL),
 * or the journal and locks of this host acting on real nodes (--cluster) or on a world file's
 * simulated cluster (--world). Every run and drain the CLI starts goes through `runtime`.
 */
export interface Session {
  runtime: Runtime;
  target: Target;
  /** The input as the target runs it (a cluster file's deadlines and policy added). */
  prepare(input: ProtocolInput): ProtocolInput;
  prepareEvacuation(input: EvacuationInput): EvacuationInput;
  /** This host's journal of runs (none on Restate: the runs are in Restate's journal). */
  journal: FileJournal | null;
  /** The nodes a run on the instance locks beside it (none where the runtime holds its own slots). */
  nodesOf(instance: string): string[];
  stateDir: string | null;
  /** A world file's simulated cluster (its clock, and the world as the run left it); null elsewhere. */
  sim: SimCluster | null;
  /** Closes what the session opened (connections, the world file's writer lock). */
  close(): Promise<void>;
}

/**
 * Opens the runtime the command line names. What it acts on is checked first (the file, the
 * instance or node in it, the state directory), so that bad input is refused before anything runs.
 */
export async function openSession(
  call: Invocation,
  scope: { instance?: string; node?: string; operation?: string } = {},
): Promise<Session> {
  const { values } = call;
  const target = targetOf(values);
  const same = <T>(x: T) => x;
  if (values.restate !== undefined) {
    const runtime = restateRuntime(restateEndpoints(values), await clusterName(values));
    return {
      runtime,
      target,
      prepare: same,
      prepareEvacuation: same,
      journal: null,
      nodesOf: () => [],
      stateDir: null,
      sim: null,
      close: async () => {},
    };
  }
  if (target.kind === 'cluster') {
    const cluster = await readClusterFile(target.file);
    if (scope.instance !== undefined && !cluster.instances.some((i) => i.name === scope.instance))
      throw new UsageError(`instance ${scope.instance} is not in ${target.file}`);
    if (scope.node !== undefined && !cluster.nodes.some((n) => n.name === scope.node))
      throw new UsageError(`node ${scope.node} is not in ${target.file}`);
    const stores = await journalStores(values, target);
    const backend = await sshEffects(target.file);
    const nodesOf = (instance: string) => {
      const i = cluster.instances.find((x) => x.name === instance);
      // A third copy is a node of the instance too: a migration may go there.
      return i === undefined
        ? []
        : [i.primary, i.secondary, ...(i.thirdCopy === undefined ? [] : [i.thirdCopy])];
    };
    return {
      runtime: journalRuntime({
        effects: backend.effects,
        ...stores,
        evacuations: new EvacuationJournal(stores.stateDir),
        nodesOf,
        graceMs: SSH_GRACE_MS,
        // Where a Restate worker's runs on this cluster meet this one's (rule 9 across runtimes).
        lease: { store: leasesBeside(target.file), holder: `journal on ${hostname()} in ${stores.stateDir}` },
      }),
      target,
      prepare: (input) => inputWithLimits(cluster, input),
      prepareEvacuation: (input) => evacuationWithCluster(cluster, input),
      journal: stores.store,
      nodesOf,
      stateDir: stores.stateDir,
      sim: null,
      close: async () => backend.close(),
    };
  }
  refuseServedWorld(target);
  const faults = faultsOf(values);
  const world = await loadWorld(target.file);
  if (scope.instance !== undefined && world.config.instances[scope.instance] === undefined)
    throw new UsageError(`instance ${scope.instance} is not in world file ${target.file}`);
  if (scope.node !== undefined && world.nodes[scope.node] === undefined)
    throw new UsageError(`node ${scope.node} is not in world file ${target.file}`);
  await checkWritable(target.file);
  const stores = await journalStores(values, target);
  const release = await holdWorld(target.file, scope.operation ?? 'a drbd-migrate run');
  const sim = createSimCluster(world, { faults });
  // Saved after every step, so a later cleanup or resume finds it as the nodes would be.
  sim.afterStep = () => saveWorld(target.file, sim.snapshot());
  return {
    runtime: journalRuntime({
      effects: sim.effects,
      ...stores,
      evacuations: new EvacuationJournal(stores.stateDir),
      nodesOf: (instance) => worldNodes(sim.world, instance),
      clock: sim.clock,
    }),
    target,
    prepare: same,
    // The world's resyncs go at its own rate: the drain's forecast counts with it.
    prepareEvacuation: (input) => ({ resyncMiBps: sim.world.settings.resyncKiBps / 1024, ...input }),
    journal: stores.store,
    nodesOf: (instance) => worldNodes(sim.world, instance),
    stateDir: stores.stateDir,
    sim,
    close: release,
  };
}

/** A served world is shared by Restate's workers: a local run on it would go around their exclusion. */
export function refuseServedWorld(target: Target): void {
  if (isServedWorld(target.file)) {
    throw new UsageError(
      `--world ${target.file} is a served world: its runs go through Restate's workers (add --restate URL)`,
    );
  }
}

/**
 * One run on the session's runtime, shown as every run is shown (live view, JSON lines, or only the
 * result), with Ctrl-C as the operator's abort; resolves with its exit code.
 */
export async function showRun(
  call: Invocation,
  session: Session,
  about: { machine?: MachineName; instance: string } & RepairOf,
  start: (follow: Follow) => Promise<ProtocolOutput>,
): Promise<number> {
  const { values, io } = call;
  const { target, sim } = session;
  const { view, onEvent } = viewFor(io, values);
  if (sim !== null) {
    sim.onStep = (step) => {
      for (const v of step.violations)
        onEvent({ type: 'feedback', level: 'warning', message: `SAFETY RULE BROKEN: ${v}` });
    };
  }
  // A rejected run touched nothing and leaves a world file as it was (not as its last save wrote it).
  const original = sim === null ? null : await readFile(target.file, 'utf8');
  const clock = sim === null ? {} : { clock: sim.clock };
  let result: ProtocolOutput;
  try {
    result = await withInterrupt(io, view, { ...about, target, journaled: true, ...clock }, (interrupt) =>
      start({ onEvent, ...interrupt }),
    );
  } catch (error) {
    throw restateRefusal(error, about.instance, target);
  }
  if (sim === null)
    return finish(io, values, view, result, {
      at: Date.now(),
      runsOn: result.primaryNode,
      target,
      of: about,
    });
  if (result.outcome === 'rejected' && original !== null) await writeFile(target.file, original);
  const after = sim.snapshot();
  return finish(io, values, view, result, {
    at: after.time,
    runsOn: runningOn(after, result.instance).join(', ') || 'no node',
    target,
    world: after,
    of: about,
  });
}

/**
 * What a Restate client's failure means to the operator: nothing submitted is a refusal (exit 2);
 * a lost connection to a submitted run leaves the run going on in Restate, and says how to follow it.
 */
export function restateRefusal(error: unknown, name: string, target: Target): unknown {
  if (!(error instanceof RestateError)) return error;
  if (error.invocation === undefined) return new UsageError(error.message);
  return new RunGoesOn(
    `${error.message}; the run ${error.invocation} goes on in Restate: follow it with 'drbd-migrate resume ${name} --${target.kind} ${target.file} --restate ${target.restate}'`,
  );
}
