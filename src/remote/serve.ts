import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, EFFECT_NAMES, type EffectName, type Effects, errorText } from '../../machines/index.js';
import { memoryLeases } from '../runner/index.js';
import {
  type About,
  type Answer,
  CALL_HEADER,
  EFFECT_PATH,
  HURRY_PATH,
  LEASE_PATH,
  LeaseRequest,
  RUN_HEADER,
  STEP_HEADER,
  WORKER_HEADER,
} from './protocol.js';

/** One call as the serving side saw it: which effect, from which worker and step, how it ended. */
export interface ServedCall {
  effect: EffectName;
  input: unknown;
  worker: string | null;
  run: string | null;
  step: string | null;
  /** 'answered', 'failed', or 'gone' (the caller hung up first: a worker that died mid-call). */
  end: 'answered' | 'failed' | 'gone' | null;
  /** Resolves once the caller hung up before the answer left (a test that kills a worker waits here). */
  hungUp: Promise<void>;
  /** Resolves once the caller hurried the call (an operator abort waiting for it). */
  hurried: Promise<void>;
}

export interface ServeEffectsOptions {
  cluster: string;
  /** The clock each call's timeoutMs counts in (the world's): a call past it fails, as it would at the caller. */
  clock: Clock;
  /** Added to each call's timeoutMs (as BindOptions.graceMs). Default 1000. */
  graceMs?: number;
  /** Before each call acts (tests kill its worker here, with the call in flight). */
  onCall?: (call: ServedCall) => void | Promise<void>;
  /** After a call acted, before its answer leaves (tests kill its worker here: the answer is lost). */
  afterCall?: (call: ServedCall) => void | Promise<void>;
  /** Extra read-only routes (GET), e.g. the world as it is now. */
  views?: Record<string, () => unknown>;
  port?: number;
  host?: string;
}

export interface ServedEffects {
  url: string;
  /** Every call, in the order they came. */
  calls: ServedCall[];
  close(): Promise<void>;
}

const read = (req: IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });

const send = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const header = (req: IncomingMessage, name: string) => {
  const v = req.headers[name];
  return typeof v === 'string' ? v : null;
};

/**
 * Serves a world's effects over HTTP, so that several workers act on one world (the shared simulated
 * cluster of a distributed demo or test). Inputs are parsed by the effects as always; a caller that
 * hangs up aborts its call's signal, as a machine leaving the step does.
 */
export async function serveEffects(effects: Effects, options: ServeEffectsOptions): Promise<ServedEffects> {
  const calls: ServedCall[] = [];
  // By the caller's id: the calls in flight, and hurries that came before their call did (the two
  // requests race), the latest few hundred.
  const hurries = new Map<string, AbortController>();
  const early: string[] = [];
  const graceMs = options.graceMs ?? 1_000;
  const about: About = { cluster: options.cluster, effects: EFFECT_NAMES };
  // Every worker and client acting on this world meets here: so do their leases.
  const leases = memoryLeases();
  async function handle(req: IncomingMessage, res: ServerResponse) {
    if (req.method === 'GET') {
      const path = req.url ?? '/';
      if (path === '/') return send(res, 200, about);
      const view = options.views?.[path.slice(1)];
      return view === undefined ? send(res, 404, { error: `no view ${path}` }) : send(res, 200, view());
    }
    if (req.method === 'POST' && req.url?.startsWith(LEASE_PATH)) {
      const op = req.url.slice(LEASE_PATH.length);
      const asked = LeaseRequest.safeParse(JSON.parse((await read(req)) || '{}'));
      if (!asked.success || (op !== 'acquire' && op !== 'release'))
        return send(res, 400, { error: `bad lease request ${op}` });
      const { instance, holder, ttlMs } = asked.data;
      if (op === 'release') {
        await leases.release(instance, holder);
        return send(res, 200, { released: true });
      }
      return send(res, 200, await leases.acquire(instance, holder, ttlMs));
    }
    if (req.method === 'POST' && req.url?.startsWith(HURRY_PATH)) {
      const id = req.url.slice(HURRY_PATH.length);
      const hurry = hurries.get(id);
      if (hurry !== undefined) hurry.abort();
      else if (early.push(id) > 500) early.shift();
      req.resume();
      return send(res, 200, { hurried: hurry !== undefined });
    }
    const name = req.url?.startsWith(EFFECT_PATH) ? req.url.slice(EFFECT_PATH.length) : '';
    if (req.method !== 'POST' || !(EFFECT_NAMES as string[]).includes(name)) {
      return send(res, 404, { error: `no effect ${req.method} ${req.url}` });
    }
    const effect = name as EffectName;
    let hungUp: () => void = () => {};
    const hurry = new AbortController();
    const id = header(req, CALL_HEADER);
    if (id !== null) {
      if (early.includes(id)) hurry.abort();
      else hurries.set(id, hurry);
    }
    let input: unknown;
    try {
      input = JSON.parse(await read(req));
    } catch (error) {
      return send(res, 400, { error: `the body is not JSON: ${errorText(error)}` });
    }
    const call: ServedCall = {
      effect,
      input,
      worker: header(req, WORKER_HEADER),
      run: header(req, RUN_HEADER),
      step: header(req, STEP_HEADER),
      end: null,
      hungUp: new Promise<void>((resolve) => {
        hungUp = resolve;
      }),
      hurried: hurry.signal.aborted
        ? Promise.resolve()
        : new Promise<void>((resolve) =>
            hurry.signal.addEventListener('abort', () => resolve(), { once: true }),
          ),
    };
    calls.push(call);
    const stop = new AbortController();
    const onGone = () => {
      if (!res.writableEnded) {
        call.end ??= 'gone';
        stop.abort(new Error('the caller hung up'));
        hungUp();
      }
    };
    res.on('close', () => {
      if (id !== null) hurries.delete(id);
      onGone();
    });
    await options.onCall?.(call);
    if (stop.signal.aborted) return;
    const timeoutMs = (input as { timeoutMs?: unknown }).timeoutMs;
    const limitMs = (typeof timeoutMs === 'number' ? timeoutMs : 0) + graceMs;
    const deadline = new AbortController();
    const answer = await new Promise<Answer>((resolve) => {
      void options.clock.sleep(limitMs, deadline.signal).then((passed) => {
        if (passed) {
          stop.abort(new Error('deadline'));
          resolve({ ok: false, error: `${effect} did not answer within ${limitMs} ms` });
        }
      });
      const impl = effects[effect] as (i: unknown, s: AbortSignal, h: AbortSignal) => Promise<unknown>;
      Promise.resolve()
        .then(() => impl(input, stop.signal, hurry.signal))
        .then(
          (value) => resolve({ ok: true, answer: value }),
          (error: unknown) => resolve({ ok: false, error: errorText(error) }),
        );
    });
    deadline.abort();
    await options.afterCall?.(call);
    if (call.end === 'gone') return;
    call.end = answer.ok ? 'answered' : 'failed';
    send(res, 200, answer);
  }
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { error: errorText(error) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
