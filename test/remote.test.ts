import { afterEach, describe, expect, it } from 'vitest';
import type { Effects } from '../machines/index.js';
import { remoteEffects } from '../src/remote/client.js';
import { type ServedCall, type ServedEffects, serveEffects } from '../src/remote/serve.js';

/**
 * Effects over HTTP: the caller's signal and its hurry reach the call on the serving side. The served
 * waitSync here is a long poll that answers only when hurried (or fails when its signal aborts).
 */

const waitSync = (_input: unknown, signal: AbortSignal, hurry?: AbortSignal) =>
  new Promise((resolve, reject) => {
    if (hurry?.aborted) return resolve({ hurried: true });
    hurry?.addEventListener('abort', () => resolve({ hurried: true }), { once: true });
    signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true });
  });

const clock = { now: () => Date.now(), sleep: async () => false };
let served: ServedEffects | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

async function serve(onCall?: (call: ServedCall) => void) {
  served = await serveEffects({ waitSync } as unknown as Effects, {
    cluster: 'demo',
    clock,
    ...(onCall === undefined ? {} : { onCall }),
  });
  return { served, effects: remoteEffects(served.url) };
}

/** Resolves once the first call reached the serving side. */
function firstCall() {
  let onCall: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    onCall = resolve;
  });
  return { started, onCall };
}

const input = { instance: 'web1', nodes: ['node-a', 'node-b'], timeoutMs: 60_000 };

describe('effects over HTTP', () => {
  it("carries the caller's hurry to the call in flight: the long poll answers at once", async () => {
    const { started, onCall } = firstCall();
    const { served, effects } = await serve(onCall);
    const hurry = new AbortController();
    const answer = effects.waitSync(input as never, new AbortController().signal, hurry.signal);
    await started;
    hurry.abort();
    expect(await answer).toEqual({ hurried: true });
    await served.calls[0]!.hurried;
    expect(served.calls[0]!.end).toBe('answered');
  });

  it('a call hurried before it starts starts hurried, whichever of the two requests arrives first', async () => {
    const { served, effects } = await serve();
    const hurry = new AbortController();
    hurry.abort();
    for (let i = 0; i < 5; i++) {
      expect(await effects.waitSync(input as never, new AbortController().signal, hurry.signal)).toEqual({
        hurried: true,
      });
    }
    expect(served.calls.map((c) => c.end)).toEqual(Array(5).fill('answered'));
  });

  it("the caller's signal hangs up, which stops the call there", async () => {
    const { started, onCall } = firstCall();
    const { served, effects } = await serve(onCall);
    const stop = new AbortController();
    const answer = effects.waitSync(input as never, stop.signal);
    await started;
    stop.abort();
    await expect(answer).rejects.toThrow();
    await served.calls[0]!.hungUp;
    expect(served.calls[0]!.end).toBe('gone');
  });
});
