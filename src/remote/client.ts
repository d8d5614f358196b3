import { randomUUID } from 'node:crypto';
import { EFFECT_NAMES, type EffectName, type Effects, errorText, systemClock } from '../../machines/index.js';
import { LeaseAnswer, type LeaseStore } from '../runner/index.js';
import { currentStep } from '../runtime/step.js';
import {
  About,
  Answer,
  CALL_HEADER,
  EFFECT_PATH,
  HURRY_PATH,
  LEASE_PATH,
  RUN_HEADER,
  STEP_HEADER,
  WORKER_HEADER,
} from './protocol.js';

export class RemoteError extends Error {
  override name = 'RemoteError';
}

/** What a served world says of itself; a clear error when nothing (or something else) answers there. */
export async function aboutRemote(url: string): Promise<About> {
  let body: unknown;
  try {
    const res = await fetch(new URL('/', url), { signal: AbortSignal.timeout(10_000) });
    body = await res.json();
  } catch (error) {
    throw new RemoteError(
      `no served world answers at ${url}: ${errorText(error)} (start one with drbd-migrate serve)`,
    );
  }
  const about = About.safeParse(body);
  if (!about.success) throw new RemoteError(`${url} does not serve a world (it answered something else)`);
  return about.data;
}

/**
 * The effects of a world served elsewhere (serveEffects). Each call is one POST; the call's signal
 * hangs up, which aborts it there, and its hurry is a second POST that hurries it there. Inside a
 * durable step the step's identity travels with the call.
 */
const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 2_000;

/** A request that never got an answer for a reason of the network's, not the server's. */
function isTransportFailure(error: unknown): boolean {
  if (!(error instanceof TypeError)) return false;
  const code = (error.cause as { code?: string } | undefined)?.code ?? '';
  return /^(ECONNREFUSED|ECONNRESET|EPIPE|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|UND_ERR_SOCKET|UND_ERR_CLOSED)$/.test(
    code,
  );
}

export function remoteEffects(url: string, options: { worker?: string } = {}): Effects {
  const call = async (effect: EffectName, input: unknown, signal: AbortSignal, hurry?: AbortSignal) => {
    const step = currentStep();
    const id = randomUUID();
    const headers: Record<string, string> = { 'content-type': 'application/json', [CALL_HEADER]: id };
    if (options.worker !== undefined) headers[WORKER_HEADER] = options.worker;
    if (step !== undefined) {
      headers[RUN_HEADER] = step.run;
      headers[STEP_HEADER] = step.step;
    }
    // Fire and forget: a hurry that comes too late finds the call ended, and that is all.
    const onHurry = () =>
      void fetch(new URL(`${HURRY_PATH}${id}`, url), {
        method: 'POST',
        signal: AbortSignal.timeout(10_000),
      })
        .then((r) => r.arrayBuffer())
        .catch(() => {});
    if (hurry?.aborted) onHurry();
    else hurry?.addEventListener('abort', onHurry, { once: true });
    let res: Response;
    let text: string;
    try {
      // A transport failure (refused, reset, no route) is asked again, as the same call, until the
      // step's deadline aborts `signal`: every effect is idempotent, so an outage of the endpoint
      // costs a retry, not a cleanup. An answer, even an error, is never asked again.
      for (let wait = FIRST_RETRY_MS; ; wait = Math.min(2 * wait, LAST_RETRY_MS)) {
        try {
          res = await fetch(new URL(`${EFFECT_PATH}${effect}`, url), {
            method: 'POST',
            headers,
            body: JSON.stringify(input),
            signal,
          });
          text = await res.text();
          break;
        } catch (error) {
          if (signal.aborted || !isTransportFailure(error)) throw error;
          if (!(await systemClock.sleep(wait, signal))) throw error;
        }
      }
    } finally {
      hurry?.removeEventListener('abort', onHurry);
    }
    if (!res.ok) throw new RemoteError(`the served world at ${url} refused ${effect}: ${res.status} ${text}`);
    const answer = Answer.parse(JSON.parse(text));
    if (!answer.ok) throw new Error(answer.error);
    return answer.answer;
  };
  return Object.fromEntries(
    EFFECT_NAMES.map((name) => [
      name,
      (input: unknown, signal: AbortSignal, hurry?: AbortSignal) => call(name, input, signal, hurry),
    ]),
  ) as unknown as Effects;
}

/** The leases kept by a served world (see serveEffects): where its workers and clients all meet. */
export function remoteLeases(url: string): LeaseStore {
  const post = async (op: 'acquire' | 'release', body: unknown) => {
    const res = await fetch(new URL(`${LEASE_PATH}${op}`, url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok)
      throw new RemoteError(`the served world at ${url} refused the lease ${op}: ${res.status} ${text}`);
    return JSON.parse(text) as unknown;
  };
  return {
    acquire: async (instance, holder, ttlMs) =>
      LeaseAnswer.parse(await post('acquire', { instance, holder, ttlMs })),
    release: async (instance, holder) => {
      await post('release', { instance, holder });
    },
  };
}
