import { hostname } from 'node:os';
import { basename, extname } from 'node:path';
import type { Effects, EvacuationInput, MachineName, ProtocolInput } from '../../machines/index.js';
import { SSH_GRACE_MS, sshEffects } from '../backend/index.js';
import { fileLeases } from '../journal/index.js';
import { aboutRemote, remoteEffects, remoteLeases } from '../remote/client.js';
import type { LeaseStore } from '../runner/index.js';
import { createSimCluster } from '../sim/index.js';
import { evacuationWithCluster, inputWithLimits, readClusterFile } from './cluster.js';
import { UsageError } from './errors.js';
import type { Values } from './options.js';
import { holdWorld, loadWorld, saveWorld } from './worldFile.js';

/**
 * What the distributed commands share: which cluster a run belongs to (its runs' keys in Restate are
 * CLUSTER/INSTANCE, so every worker and client of one cluster must agree), and the effects a worker
 * acts with.
 */

/** A --world value that is a served simulated cluster (drbd-migrate serve) rather than a file. */
export const isServedWorld = (world: string | undefined): world is string =>
  world !== undefined && /^https?:\/\//.test(world);

/** The cluster's name: a served world says it; a file's is its base name (cluster.yaml → cluster). */
export async function clusterName(values: Values): Promise<string> {
  if (isServedWorld(values.world)) {
    // A served world that does not answer is bad input: nothing was asked of anyone yet.
    const about = await aboutRemote(values.world).catch((error: Error) => {
      throw new UsageError(error.message);
    });
    return about.cluster;
  }
  const file = values.cluster ?? values.world;
  if (file === undefined) throw new UsageError('name the cluster: --cluster FILE or --world FILE|URL');
  const name = basename(file, extname(file));
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new UsageError(
      `the cluster's name is taken from its file's name, and ${JSON.stringify(name)} is not a plain name`,
    );
  }
  return name;
}

export interface WorkerWorld {
  cluster: string;
  effects: Effects;
  /** The input as this cluster runs it (a cluster file's deadlines and policy added). */
  prepare: (kind: MachineName, input: ProtocolInput) => ProtocolInput;
  prepareEvacuation: (input: EvacuationInput) => EvacuationInput;
  /** Where the instance leases of this config store are kept (every runtime acting on it meets there). */
  leases?: LeaseStore;
  /** What a call may take beyond its deadline (the SSH backend's round trip; see SSH_GRACE_MS). */
  graceMs?: number;
  close(): void;
}

/**
 * The leases of a cluster file's runs, beside it: the config store every host acting on the cluster
 * shares (its commits land there too), so a local run and a Restate worker's see each other.
 */
export const leasesBeside = (clusterFile: string): LeaseStore => fileLeases(`${clusterFile}.leases`);

/** The effects a worker acts with: real nodes over SSH, a served world, or a world file of its own. */
export async function workerWorld(values: Values): Promise<WorkerWorld> {
  const cluster = await clusterName(values);
  if (values.cluster !== undefined) {
    const file = await readClusterFile(values.cluster);
    const backend = await sshEffects(values.cluster);
    return {
      cluster,
      effects: backend.effects,
      leases: leasesBeside(values.cluster),
      prepare: (_, input) => inputWithLimits(file, input),
      prepareEvacuation: (input) => evacuationWithCluster(file, input),
      graceMs: SSH_GRACE_MS,
      close: () => backend.close(),
    };
  }
  const world = values.world!;
  if (isServedWorld(world)) {
    return {
      cluster,
      effects: remoteEffects(world, { worker: `${hostname()}:${process.pid}` }),
      leases: remoteLeases(world),
      prepare: (_, input) => input,
      prepareEvacuation: (input) => input,
      close: () => {},
    };
  }
  // A world file of this worker's own, saved after every step (one worker: two would each have a
  // copy), and held like any writer's, so that no command writes it meanwhile.
  const release = await holdWorld(world, 'a worker');
  const sim = createSimCluster(await loadWorld(world));
  sim.afterStep = () => saveWorld(world, sim.snapshot());
  return {
    cluster,
    effects: sim.effects,
    prepare: (_, input) => input,
    prepareEvacuation: (input) => input,
    close: () => void release(),
  };
}

/** Waits for Ctrl-C or SIGTERM (a long-running command's end). */
export function untilInterrupted(
  onInterrupt: ((handler: () => void) => () => void) | undefined,
): Promise<void> {
  return new Promise((resolve) => {
    const remove = onInterrupt?.(() => {
      remove?.();
      resolve();
    });
  });
}

/** The Restate runtime's worker side, loaded only when asked for: its SDK is an optional peer. */
export async function loadRestate() {
  try {
    return await import('../restate/index.js');
  } catch (error) {
    if ((error as Error).name === 'RestateMissingError') throw new UsageError((error as Error).message);
    throw error;
  }
}

/** A --port or --to value: a port number (0 picks a free one where a server listens). */
export function portOf(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new UsageError(`--port ${text}: must be a port number (0 to 65535; 0 picks a free one)`);
  }
  return port;
}

/**
 * Each instance's primary as the config says now (instance → node): from the cluster file, the
 * world file, or a served world (its /world view, a bounded request).
 */
export async function primariesNow(values: Values): Promise<Map<string, string>> {
  if (values.cluster !== undefined) {
    return new Map((await readClusterFile(values.cluster)).instances.map((i) => [i.name, i.primary]));
  }
  const world = isServedWorld(values.world)
    ? ((await (
        await fetch(new URL('/world', values.world), { signal: AbortSignal.timeout(10_000) })
      ).json()) as {
        config: { instances: Record<string, { primaryNode: string }> };
      })
    : await loadWorld(values.world!);
  return new Map(Object.entries(world.config.instances).map(([name, i]) => [name, i.primaryNode]));
}

/**
 * Where the instance's primary is as the request is made (its intent, carried with a run submitted
 * to Restate). Null where it cannot be read (the run then takes the config as it finds it).
 */
export async function primaryNow(values: Values, instance: string): Promise<string | null> {
  return (await primariesNow(values).catch(() => new Map<string, string>())).get(instance) ?? null;
}
