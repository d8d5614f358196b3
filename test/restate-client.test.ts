import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RestateError, submitRun } from '../src/restate/client.js';
import { cli } from './processes.js';
import { tempDir } from './tmp.js';

/**
 * The Restate client facing a server that is not Restate: every answer is checked before it is
 * read, a request is bounded, and the refusal says what answered (issue 22: C.3, C.13, D.3).
 */

type Answer = { status: number; type: string; body: string } | 'never';
const ANSWERS: Record<string, Answer> = {
  html: { status: 200, type: 'text/html', body: '<!doctype html><html><body>hello</body></html>' },
  empty: { status: 200, type: 'application/json', body: '{}' },
  error: { status: 501, type: 'text/html', body: '<html><h1>Not Implemented</h1></html>' },
  never: 'never',
};

/** One fake server per answer (the CLI keeps only the origin of --restate). */
const servers: Server[] = [];
const hanging: ServerResponse[] = [];
const bases: Record<string, string> = {};

beforeAll(async () => {
  for (const [kind, answer] of Object.entries(ANSWERS)) {
    const server = createServer((_, res) => {
      if (answer === 'never') hanging.push(res);
      else res.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    bases[kind] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
});

afterAll(() => {
  for (const res of hanging) res.destroy();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

describe('a server that is not a Restate ingress', () => {
  const endpoints = (kind: string) => ({ ingress: bases[kind]!, admin: bases[kind]! });

  it.each(['html', 'empty', 'error'])('answering %s: the submit is refused, saying so', async (kind) => {
    const error = await submitRun(endpoints(kind), 'demo', 'migration', { instance: 'web1' }).catch((e) => e);
    expect(error).toBeInstanceOf(RestateError);
    expect((error as Error).message).toMatch(/is not a Restate ingress \(it answered (200|501)/);
    expect((error as RestateError).invocation).toBeUndefined();
  });

  it('that accepts and never answers: the submit is cut off at its bound', async () => {
    const error = await submitRun({ ...endpoints('never'), requestTimeoutMs: 200 }, 'demo', 'migration', {
      instance: 'web1',
    }).catch((e) => e);
    expect(error).toBeInstanceOf(RestateError);
    expect((error as Error).message).toMatch(/did not answer within 0\.2 s: is it a Restate ingress\?/);
  });

  it('through the built CLI: exit 2, one line saying what answered, nothing run', async () => {
    const dir = tempDir('drbd-migrate-notrestate-');
    const world = join(dir, 'w.json');
    expect((await cli(['init', '--world', world])).code).toBe(0);
    for (const kind of ['html', 'empty', 'error']) {
      const r = await cli(['migrate', 'web1', '--world', world, '--restate', bases[kind]!]);
      expect(r.code, kind).toBe(2);
      expect(r.stderr, kind).toMatch(/is not a Restate ingress/);
      expect(r.stderr.split('\n').filter((l) => l !== '').length, kind).toBe(1);
    }
    const dead = await cli(['status', 'web1', '--world', world, '--restate', 'http://127.0.0.1:1']);
    expect(dead.code).toBe(2);
    expect(dead.stderr).toMatch(/Restate does not answer at http:\/\/127\.0\.0\.1:1/);
    const noWorld = await cli(['migrate', 'web1', '--world', 'http://127.0.0.1:1', '--restate', bases.html!]);
    expect(noWorld.code).toBe(2);
    expect(noWorld.stderr).toMatch(/no served world answers at http:\/\/127\.0\.0\.1:1/);
  });
});
