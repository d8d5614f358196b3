import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Effects } from '../machines/index.js';
import { createSimCluster, restStateProblems, runMigration } from '../src/index.js';
import { remoteEffects } from '../src/remote/client.js';
import { type ServedCall, type ServedEffects, serveEffects } from '../src/remote/serve.js';
import { cli } from './helpers.js';
import { startWorker } from './processes.js';
import { tempDir } from './tmp.js';

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

describe('an outage of the effects endpoint', () => {
  it('costs a retry of the call, not a cleanup: a migration through it ends migrated', async () => {
    const sim = createSimCluster();
    served = await serveEffects(sim.effects, { cluster: 'demo', clock: sim.clock });
    const target = served.url;
    // An HTTP front that drops the connection of requests 6 to 10 (each a reset, as a restarting
    // endpoint gives), and passes the rest on.
    let requests = 0;
    let dropped = 0;
    const front = createServer(async (req, res) => {
      const n = ++requests;
      if (n >= 6 && n <= 10) {
        dropped++;
        req.socket.destroy();
        return;
      }
      const body = await new Promise<Buffer>((resolve) => {
        const parts: Buffer[] = [];
        req.on('data', (d: Buffer) => parts.push(d));
        req.on('end', () => resolve(Buffer.concat(parts)));
      });
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length'].includes(k)),
      ) as Record<string, string>;
      const answer = await fetch(new URL(req.url!, target), { method: req.method!, headers, body });
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
      res.end(Buffer.from(await answer.arrayBuffer()));
    });
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    try {
      const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
      const out = await runMigration({ instance: 'web1' }, remoteEffects(url));
      expect(dropped).toBe(5);
      expect(out).toMatchObject({ outcome: 'migrated', primaryNode: 'node-b' });
      expect(restStateProblems(sim.current(), 'web1')).toEqual([]);
    } finally {
      front.closeAllConnections();
      front.close();
    }
  });
});

describe('a worker on a world file of its own', () => {
  it('holds the file like any writer: a command that would write it meanwhile is refused', async () => {
    const dir = tempDir('drbd-migrate-worker-');
    const file = join(dir, 'w.json');
    expect((await cli('init', '--world', file)).code).toBe(0);
    const worker = await startWorker(['--world', file]);
    try {
      const r = await cli('power', 'node-a', 'off', '--world', file);
      expect(r.code).toBe(2);
      expect(r.stderr[0]).toMatch(
        /world file .* is being written by a worker \(pid \d+ on .*\): wait for it to end/,
      );
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    // Released when it ends.
    expect((await cli('power', 'node-a', 'off', '--world', file)).code).toBe(0);
  });
});
