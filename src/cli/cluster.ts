import {
  type EffectName,
  type EvacuationInput,
  MACHINES,
  type MachineName,
  type ProtocolInput,
  type ProtocolOutput,
} from '../../machines/index.js';
import { plannedCommands, simSpecOf } from '../backend/index.js';
import { type ClusterFile, ClusterFileError, loadCluster } from '../cluster/index.js';
import { runMachine } from '../runner/index.js';
import { createSimCluster, createWorld } from '../sim/index.js';
import { UsageError } from './errors.js';
import { forecastPrinter, planPrinter } from './output.js';

/**
 * `migrate --cluster FILE`: the machines against real nodes over SSH, or, with --dry-run, against a
 * simulated copy of the cluster file, printing the exact commands each node would run.
 */

/** The cluster file; its problems are the operator's input errors. */
export async function readClusterFile(path: string): Promise<ClusterFile> {
  try {
    return await loadCluster(path);
  } catch (error) {
    if (error instanceof ClusterFileError) throw new UsageError(error.message);
    throw error;
  }
}

/** The cluster file, which must name the instance. */
export async function readCluster(path: string, instance: string): Promise<ClusterFile> {
  const cluster = await readClusterFile(path);
  if (!cluster.instances.some((i) => i.name === instance)) {
    throw new UsageError(`instance ${instance} is not in ${path}`);
  }
  return cluster;
}

/** The cluster file's copy options, as a migration's convergence input takes them. */
export function copyPolicyOf(cluster: ClusterFile): NonNullable<ProtocolInput['convergence']> {
  const { convergence, bandwidthMiBps, downtimeMs } = cluster.options;
  return {
    ...convergence,
    ...(bandwidthMiBps === undefined ? {} : { bandwidthMiBps }),
    ...(downtimeMs === undefined ? {} : { downtimeMs }),
  };
}

/** The cluster file's deadlines and convergence policy, under what the command line asked. */
export function inputWithLimits(cluster: ClusterFile, input: ProtocolInput): ProtocolInput {
  const { limits } = cluster.options;
  const policy = copyPolicyOf(cluster);
  return {
    ...input,
    ...(limits === undefined ? {} : { limits: { ...limits, ...input.limits } }),
    ...(Object.keys(policy).length === 0 ? {} : { convergence: { ...policy, ...input.convergence } }),
  };
}

/** A drain as the cluster file runs it: its deadlines, copy policy and resync rate for every run. */
export function evacuationWithCluster(cluster: ClusterFile, input: EvacuationInput): EvacuationInput {
  const { limits, convergence } = inputWithLimits(cluster, { instance: input.node });
  const resync = cluster.options.resyncMiBps;
  return {
    ...input,
    ...(limits ? { limits } : {}),
    ...(convergence ? { convergence } : {}),
    ...(resync === undefined ? {} : { resyncMiBps: resync }),
  };
}

export async function dryRun(
  path: string,
  kind: MachineName,
  input: ProtocolInput,
  print: (line: string) => void,
): Promise<ProtocolOutput> {
  const cluster = await readCluster(path, input.instance);
  const sim = createSimCluster(createWorld(simSpecOf(cluster)));
  // A failover told the source is down is planned as it would run: on a copy whose source is down.
  const primary = cluster.instances.find((i) => i.name === input.instance)?.primary;
  const down = input.sourceIsDown === true && primary !== undefined ? primary : null;
  if (down !== null) sim.killNode(down);
  print(`# dry run of the ${kind} of ${input.instance} from ${path}: nothing is touched.`);
  print(
    `# Each effect the machine calls on ${down === null ? 'a healthy cluster' : `a copy of it with ${down} down`}, and what each node would run for it.`,
  );
  const onCall = planPrinter(print, (call) =>
    plannedCommands(cluster, path, call.effect as EffectName, call.input as never),
  );
  // The copy has no guest to measure: the forecast of the real one is plan's.
  if (kind === 'migration')
    print(
      `# the copy's forecast needs the real guest: 'drbd-migrate plan ${input.instance} --cluster ${path}' measures it`,
    );
  return runMachine(MACHINES[kind], inputWithLimits(cluster, input), sim.effects, {
    clock: sim.clock,
    onCall,
    onEvent: forecastPrinter(print),
  });
}
