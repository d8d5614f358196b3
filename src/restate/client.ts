import type {
  EvacuationInput,
  EvacuationOutput,
  MachineName,
  ProtocolInput,
  ProtocolOutput,
} from '../../machines/index.js';
import type { RunEvent } from '../runner/index.js';
import { newEvents, type RunStatus } from '../runtime/status.js';
import type { EvacuationNotice, EvacuationStatus } from './evacuation.js';
import { EVACUATION_OBJECT, HANDLER_OF, INSTANCE_OBJECT } from './names.js';

/**
 * A Restate cluster as a client sees it: its ingress (runs are submitted there, results read) and
 * its admin API (deployments, cancellation). Plain HTTP: a client needs no SDK.
 */
export interface RestateEndpoints {
  ingress: string;
  admin: string;
}

export class RestateError extends Error {
  override name = 'RestateError';
}

export const instanceKey = (cluster: string, instance: string) => `${cluster}/${instance}`;

async function call(url: string, init: RequestInit, what: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (error) {
    throw new RestateError(
      `${what}: Restate does not answer at ${new URL(url).origin} (${(error as Error).message})`,
    );
  }
  const text = await res.text();
  if (!res.ok) throw new RestateError(`${what}: Restate answered ${res.status}: ${text.slice(0, 500)}`);
  return text === '' ? null : JSON.parse(text);
}

/** Registers a worker (or the balancer in front of several) as a deployment; again is harmless. */
export async function registerDeployment(admin: string, uri: string): Promise<void> {
  await call(
    `${admin}/deployments`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uri, force: true }),
    },
    `registering ${uri}`,
  );
}

/** Submits a run without waiting for it; resolves with its invocation id. */
export async function submitRun(
  endpoints: RestateEndpoints,
  cluster: string,
  kind: MachineName,
  input: ProtocolInput,
  idempotencyKey?: string,
): Promise<string> {
  const key = encodeURIComponent(instanceKey(cluster, input.instance));
  const { instance: _, ...body } = input;
  const answer = (await call(
    `${endpoints.ingress}/${INSTANCE_OBJECT}/${key}/${HANDLER_OF[kind]}/send`,
    {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
      },
      body: JSON.stringify(body),
    },
    `submitting the ${kind} of ${input.instance}`,
  )) as { invocationId: string };
  return answer.invocationId;
}

/** Waits for a run's end and resolves with its output (a run that failed in Restate rejects). */
export async function attachRun(
  endpoints: RestateEndpoints,
  id: string,
  signal?: AbortSignal,
): Promise<ProtocolOutput> {
  return (await call(
    `${endpoints.ingress}/restate/invocation/${id}/attach`,
    signal === undefined ? {} : { signal },
    `waiting for run ${id}`,
  )) as ProtocolOutput;
}

/** The instance's current or last run, as its exclusive handler recorded it (null: never run here). */
export async function runStatus(
  endpoints: RestateEndpoints,
  cluster: string,
  instance: string,
): Promise<(RunStatus & { run?: string }) | null> {
  const key = encodeURIComponent(instanceKey(cluster, instance));
  return (await call(
    `${endpoints.ingress}/${INSTANCE_OBJECT}/${key}/status`,
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'null' },
    `reading the status of ${instance}`,
  )) as (RunStatus & { run?: string }) | null;
}

/** Restate's cancel: the machine gets it as an operator abort at its next safe point. */
export async function cancelRun(endpoints: RestateEndpoints, id: string): Promise<void> {
  await call(`${endpoints.admin}/invocations/${id}/cancel`, { method: 'PATCH' }, `cancelling run ${id}`);
}

export interface FollowOptions {
  onEvent?: (event: RunEvent) => void;
  /** Cancels the run in Restate: it reverts, or finishes forward past its point of no return. */
  abort?: AbortSignal;
  /** Stops following (the run goes on in Restate). */
  signal?: AbortSignal;
  /** How often the status is read while the run goes (default 250 ms). */
  pollMs?: number;
}

/**
 * Submits a run and follows it to its end: its events as the exclusive handler records them (read
 * through the shared `status` handler), then its output. The client may die and a later one follow
 * the same run: the run is Restate's, not the client's.
 */
export async function runOnRestate(
  endpoints: RestateEndpoints,
  cluster: string,
  kind: MachineName,
  input: ProtocolInput,
  options: FollowOptions = {},
): Promise<ProtocolOutput> {
  const id = await submitRun(endpoints, cluster, kind, input);
  return followRun(endpoints, cluster, input.instance, id, options);
}

export async function followRun(
  endpoints: RestateEndpoints,
  cluster: string,
  instance: string,
  id: string,
  options: FollowOptions = {},
): Promise<ProtocolOutput> {
  let seen = 0;
  let done = false;
  const onAbort = () => {
    cancelRun(endpoints, id).catch((error: unknown) =>
      options.onEvent?.({
        type: 'feedback',
        level: 'warning',
        message: `could not cancel: ${(error as Error).message}`,
      }),
    );
  };
  options.abort?.addEventListener('abort', onAbort, { once: true });
  const tell = async () => {
    const status = await runStatus(endpoints, cluster, instance).catch(() => null);
    if (status === null || status.run !== id) return;
    for (const event of newEvents(status, seen)) options.onEvent?.(event);
    seen = status.told;
  };
  const follow = (async () => {
    if (options.onEvent === undefined) return;
    while (!done) {
      await tell();
      if (!done) await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
    }
  })();
  try {
    const output = await attachRun(endpoints, id, options.signal);
    done = true;
    await follow;
    if (options.onEvent !== undefined) await tell();
    return output;
  } finally {
    done = true;
    options.abort?.removeEventListener('abort', onAbort);
  }
}

/** Submits a node's evacuation (key CLUSTER/NODE); resolves with its invocation id. */
export async function submitEvacuation(
  endpoints: RestateEndpoints,
  cluster: string,
  input: EvacuationInput,
): Promise<string> {
  const key = encodeURIComponent(instanceKey(cluster, input.node));
  const { node: _, ...body } = input;
  const answer = (await call(
    `${endpoints.ingress}/${EVACUATION_OBJECT}/${key}/evacuate/send`,
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
    `submitting the evacuation of ${input.node}`,
  )) as { invocationId: string };
  return answer.invocationId;
}

export async function evacuationStatus(
  endpoints: RestateEndpoints,
  cluster: string,
  node: string,
): Promise<EvacuationStatus | null> {
  const key = encodeURIComponent(instanceKey(cluster, node));
  return (await call(
    `${endpoints.ingress}/${EVACUATION_OBJECT}/${key}/status`,
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'null' },
    `reading the status of the evacuation of ${node}`,
  )) as EvacuationStatus | null;
}

/** Follows an evacuation to its end: each run's start and end as it records them, then the outcome. */
export async function followEvacuation(
  endpoints: RestateEndpoints,
  cluster: string,
  node: string,
  id: string,
  options: { onNotice?: (notice: EvacuationNotice) => void; abort?: AbortSignal; pollMs?: number } = {},
): Promise<EvacuationOutput> {
  let seen = 0;
  let done = false;
  const onAbort = () => void cancelRun(endpoints, id).catch(() => {});
  options.abort?.addEventListener('abort', onAbort, { once: true });
  const tell = async () => {
    const status = await evacuationStatus(endpoints, cluster, node).catch(() => null);
    if (status === null || status.run !== id) return;
    for (const notice of status.notices.slice(seen)) options.onNotice?.(notice);
    seen = status.notices.length;
  };
  const follow = (async () => {
    if (options.onNotice === undefined) return;
    while (!done) {
      await tell();
      if (!done) await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
    }
  })();
  try {
    const output = (await call(
      `${endpoints.ingress}/restate/invocation/${id}/attach`,
      {},
      `waiting for the evacuation ${id}`,
    )) as EvacuationOutput;
    done = true;
    await follow;
    if (options.onNotice !== undefined) await tell();
    return output;
  } finally {
    done = true;
    options.abort?.removeEventListener('abort', onAbort);
  }
}
