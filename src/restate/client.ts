import { z } from 'zod';
import type {
  EvacuationInput,
  EvacuationOutput,
  MachineName,
  ProtocolInput,
  ProtocolOutput,
} from '../../machines/index.js';
import { type RunEvent, type RunNotice, whenAborted } from '../runner/index.js';
import { newEvents, type RunStatus, unseen } from '../runtime/status.js';
import { EVACUATION_OBJECT, HANDLER_OF, INSTANCE_OBJECT } from './names.js';
import type { EvacuationStatus } from './protocol.js';

/**
 * A Restate cluster as a client sees it: its ingress (runs are submitted there, results read) and
 * its admin API (deployments, cancellation). Plain HTTP: a client needs no SDK.
 */
export interface RestateEndpoints {
  ingress: string;
  admin: string;
  /** How long one request may take (not a wait for a run's end); default REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
}

export class RestateError extends Error {
  override name = 'RestateError';
  /**
   * The invocation it concerns, once one was submitted: the run goes on in Restate whatever became
   * of this client. Absent: nothing was submitted, nothing started.
   */
  invocation?: string;
}

/** Follows invocation `id`; a lost connection says which invocation goes on without this client. */
export async function following<T>(id: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof RestateError) error.invocation = id;
    throw error;
  }
}

export const instanceKey = (cluster: string, instance: string) => `${cluster}/${instance}`;

/** How long one request to Restate may take, where it is not a wait for a run's end. */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * One request to Restate, its answer checked: a server that does not answer within the bound, or
 * answers what no Restate ingress would (HTML, a body that is no JSON, another shape), is said to be
 * no Restate ingress rather than read as one. `bounded: false` for a wait that lasts a run.
 */
async function call<T>(
  url: string,
  init: RequestInit & { bounded?: boolean; limitMs?: number | undefined },
  what: string,
  shape: z.ZodType<T>,
): Promise<T> {
  const origin = new URL(url).origin;
  const { bounded = true, limitMs = REQUEST_TIMEOUT_MS, ...request } = init;
  const limit = bounded ? AbortSignal.timeout(limitMs) : undefined;
  const signal =
    limit === undefined ? request.signal : request.signal ? AbortSignal.any([request.signal, limit]) : limit;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { ...request, ...(signal ? { signal } : {}) });
    text = await res.text();
  } catch (error) {
    if (limit?.aborted) {
      throw new RestateError(
        `${what}: ${origin} did not answer within ${limitMs / 1000} s: is it a Restate ingress?`,
      );
    }
    throw new RestateError(`${what}: Restate does not answer at ${origin} (${(error as Error).message})`);
  }
  let json: unknown;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    throw notRestate(what, origin, res, text);
  }
  if (!res.ok) {
    const message = (json as { message?: unknown } | null)?.message;
    if (typeof message !== 'string') throw notRestate(what, origin, res, text);
    throw new RestateError(`${what}: Restate answered ${res.status}: ${message}`);
  }
  const parsed = shape.safeParse(json);
  if (!parsed.success) throw notRestate(what, origin, res, text);
  return parsed.data;
}

function notRestate(what: string, origin: string, res: Response, text: string): RestateError {
  const kind = res.headers.get('content-type') ?? 'no content type';
  const sample = text.trimStart().startsWith('<') ? 'an HTML page' : JSON.stringify(text.slice(0, 80));
  return new RestateError(
    `${what}: ${origin} is not a Restate ingress (it answered ${res.status}, ${kind}: ${sample}); give --restate the address of Restate's ingress (port 8080 by default)`,
  );
}

/** What Restate's answers must hold, as far as this client reads them. */
const Anything = z.unknown();
const Sent = z.object({ invocationId: z.string().min(1) });
const Status = z.object({ told: z.number().int().nonnegative() }).loose().nullable();
/** A run's or a drain's output. */
const Ended = z.object({ outcome: z.string() }).loose();

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
    Anything,
  );
}

/** Sends a one-way call to an object's handler; resolves with its invocation id. */
async function send(
  endpoints: RestateEndpoints,
  object: string,
  key: string,
  handler: string,
  body: unknown,
  what: string,
): Promise<string> {
  const answer = await call(
    `${endpoints.ingress}/${object}/${encodeURIComponent(key)}/${handler}/send`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      limitMs: endpoints.requestTimeoutMs,
    },
    what,
    Sent,
  );
  return answer.invocationId;
}

/**
 * What an object's shared `status` handler answers (null: it never ran): where the run stands, and
 * what it told after the first `seen` items (without: the latest it keeps).
 */
const readStatus = <S>(
  endpoints: RestateEndpoints,
  object: string,
  key: string,
  what: string,
  seen?: number,
) =>
  call(
    `${endpoints.ingress}/${object}/${encodeURIComponent(key)}/status`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(seen === undefined ? null : { seen }),
      limitMs: endpoints.requestTimeoutMs,
    },
    what,
    Status,
  ) as Promise<S | null>;

/** Submits a run without waiting for it; resolves with its invocation id. */
export function submitRun(
  endpoints: RestateEndpoints,
  cluster: string,
  kind: MachineName,
  input: ProtocolInput,
): Promise<string> {
  const { instance, ...body } = input;
  return send(
    endpoints,
    INSTANCE_OBJECT,
    instanceKey(cluster, instance),
    HANDLER_OF[kind],
    body,
    `submitting the ${kind} of ${instance}`,
  );
}

/** Waits for an invocation's end and resolves with its output (one that failed in Restate rejects). */
export async function attachRun<O = ProtocolOutput>(
  endpoints: RestateEndpoints,
  id: string,
  signal?: AbortSignal,
): Promise<O> {
  // A wait that lasts the run: not bounded by the request limit (the caller's signal ends it).
  return (await call(
    `${endpoints.ingress}/restate/invocation/${id}/attach`,
    { bounded: false, ...(signal === undefined ? {} : { signal }) },
    `waiting for run ${id}`,
    Ended,
  )) as O;
}

/** The instance's current or last run, as its exclusive handler recorded it (null: never run here). */
export const runStatus = (endpoints: RestateEndpoints, cluster: string, instance: string, seen?: number) =>
  readStatus<RunStatus & { run: string }>(
    endpoints,
    INSTANCE_OBJECT,
    instanceKey(cluster, instance),
    `reading the status of ${instance}`,
    seen,
  );

/** Restate's cancel: the machine gets it as an operator abort at its next safe point. */
export async function cancelRun(endpoints: RestateEndpoints, id: string): Promise<void> {
  await call(
    `${endpoints.admin}/invocations/${id}/cancel`,
    { method: 'PATCH', limitMs: endpoints.requestTimeoutMs },
    `cancelling run ${id}`,
    Anything,
  );
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
  return following(id, followRun(endpoints, cluster, input.instance, id, options));
}

export const followRun = (
  endpoints: RestateEndpoints,
  cluster: string,
  instance: string,
  id: string,
  options: FollowOptions = {},
) =>
  follow<RunStatus & { run: string }, RunEvent, ProtocolOutput>(
    endpoints,
    id,
    (seen) => runStatus(endpoints, cluster, instance, seen),
    newEvents,
    options.onEvent,
    options,
    (message) =>
      options.onEvent?.({ type: 'feedback', level: 'warning', message: `could not cancel: ${message}` }),
  );

/**
 * Follows invocation `id` to its end: what its status tells (polled while it goes, the items it
 * has not shown yet), then its output. The operator's abort cancels it in Restate.
 */
async function follow<S extends { run: string; told: number }, T, O>(
  endpoints: RestateEndpoints,
  id: string,
  read: (seen: number) => Promise<S | null>,
  itemsSince: (status: S, seen: number) => T[],
  onItem: ((item: T) => void) | undefined,
  options: { abort?: AbortSignal; signal?: AbortSignal; pollMs?: number },
  cancelFailed: (message: string) => void = () => {},
): Promise<O> {
  let seen = 0;
  let done = false;
  // A cancel that cannot be delivered leaves the run going; following it shows how it ends.
  const onAbort = () =>
    void cancelRun(endpoints, id).catch((error: unknown) => cancelFailed((error as Error).message));
  whenAborted(options.abort, onAbort);
  const tell = async () => {
    const status = await read(seen).catch(() => null);
    // Another run's status (the one before, while this one queues) is not this one's.
    if (status === null || status.run !== id) return;
    for (const item of itemsSince(status, seen)) onItem?.(item);
    seen = status.told;
  };
  const polling = (async () => {
    if (onItem === undefined) return;
    while (!done) {
      await tell();
      if (!done) await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
    }
  })();
  try {
    const output = await attachRun<O>(endpoints, id, options.signal);
    done = true;
    await polling;
    if (onItem !== undefined) await tell();
    return output;
  } finally {
    done = true;
    options.abort?.removeEventListener('abort', onAbort);
  }
}

/** Submits a node's evacuation (key CLUSTER/NODE); resolves with its invocation id. */
export function submitEvacuation(
  endpoints: RestateEndpoints,
  cluster: string,
  input: EvacuationInput,
): Promise<string> {
  const { node, ...body } = input;
  return send(
    endpoints,
    EVACUATION_OBJECT,
    instanceKey(cluster, node),
    'evacuate',
    body,
    `submitting the evacuation of ${node}`,
  );
}

export const evacuationStatus = (endpoints: RestateEndpoints, cluster: string, node: string, seen?: number) =>
  readStatus<EvacuationStatus>(
    endpoints,
    EVACUATION_OBJECT,
    instanceKey(cluster, node),
    `reading the status of the evacuation of ${node}`,
    seen,
  );

/** Follows an evacuation to its end: each run's start and end as it records them, then the outcome. */
export const followEvacuation = (
  endpoints: RestateEndpoints,
  cluster: string,
  node: string,
  id: string,
  options: { onNotice?: (notice: RunNotice) => void; abort?: AbortSignal; pollMs?: number } = {},
) =>
  follow<EvacuationStatus, RunNotice, EvacuationOutput>(
    endpoints,
    id,
    (seen) => evacuationStatus(endpoints, cluster, node, seen),
    (status, seen) => unseen(status.notices, status.told, seen),
    options.onNotice,
    options,
  );
