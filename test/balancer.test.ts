import { once } from 'node:events';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  createServer,
  type Http2Server,
  type ServerHttp2Stream,
} from 'node:http2';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type Balancer, startBalancer } from '../src/restate/balancer.js';

/**
 * The loopback balancer in front of Restate workers balances streams, not connections: Restate puts
 * every invocation of a deployment on few HTTP/2 connections. Its targets here are HTTP/2 echo
 * servers that answer at once and echo each chunk while the request goes on, like a worker streaming
 * its steps while Restate streams the journal in.
 */

interface Echo {
  port: number;
  /** Streams this server took, still open or not. */
  streams: ServerHttp2Stream[];
  close(): Promise<void>;
}

async function startEcho(): Promise<Echo> {
  let port = 0;
  const streams: ServerHttp2Stream[] = [];
  const sockets = new Set<Socket>();
  const server: Http2Server = createServer();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('stream', (stream, headers) => {
    streams.push(stream);
    stream.on('error', () => {});
    // A worker may end its answer before Restate ends the request (a run suspending).
    const early = headers[':path'] === '/answer-early';
    stream.respond(
      { ':status': 200, 'x-path': String(headers[':path']), 'x-port': String(port) },
      { endStream: early },
    );
    if (!early) stream.pipe(stream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
  return {
    port,
    streams,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (a dead worker's). */
async function deadPort(): Promise<number> {
  const e = await startEcho();
  await e.close();
  return e.port;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  targets: { port: number }[],
): Promise<{ balancer: Balancer; client: ClientHttp2Session }> {
  const balancer = await startBalancer(targets);
  // Torn down by its socket, as the balancer tears down its own (see there: Node 20's session.destroy()).
  let socket: Socket | undefined;
  const client = connect(balancer.url, {
    createConnection: () => {
      socket = netConnect({ host: '127.0.0.1', port: balancer.port });
      return socket;
    },
  });
  client.on('error', () => {});
  cleanups.push(
    () => balancer.close(),
    () => void socket?.destroy(),
  );
  return { balancer, client };
}

/** Opens a stream, writes `text`, and resolves with the echo, the request still open. */
async function echoed(
  client: ClientHttp2Session,
  text: string,
): Promise<{ stream: ClientHttp2Stream; port: number }> {
  const stream = client.request({ ':method': 'POST', ':path': `/${text}` });
  stream.on('error', () => {});
  const [headers] = (await once(stream, 'response')) as [Record<string, string>];
  stream.write(text);
  const [chunk] = (await once(stream, 'data')) as [Buffer];
  expect(chunk.toString()).toBe(text);
  return { stream, port: Number(headers['x-port']) };
}

async function started(...echoes: Echo[]) {
  for (const e of echoes) cleanups.push(() => e.close());
  return echoes;
}

describe('the loopback HTTP/2 balancer', () => {
  it('sends each stream of one connection to the worker with the fewest open, both ways at once', async () => {
    const [a, b] = await started(await startEcho(), await startEcho());
    const { balancer, client } = await setup([{ port: a!.port }, { port: b!.port }]);
    const open = [];
    for (let i = 0; i < 6; i++) open.push(await echoed(client, `run${i}`));
    expect(a!.streams.length).toBe(3);
    expect(b!.streams.length).toBe(3);
    expect(balancer.taken).toEqual(
      new Map([
        [`127.0.0.1:${a!.port}`, 3],
        [`127.0.0.1:${b!.port}`, 3],
      ]),
    );

    // Two runs end on a: the next two go there, though b took as many.
    for (const o of open.filter((x) => x.port === a!.port).slice(0, 2)) {
      o.stream.end();
      await once(o.stream, 'close');
    }
    expect((await echoed(client, 'next1')).port).toBe(a!.port);
    expect((await echoed(client, 'next2')).port).toBe(a!.port);
    expect(a!.streams.length).toBe(5);
    expect(b!.streams.length).toBe(3);
  });

  it('closes a stream whose worker answered in full before the request ended, as the worker did', async () => {
    const [a] = await started(await startEcho());
    const { balancer, client } = await setup([{ port: a!.port }]);
    await echoed(client, 'open');
    const early = client.request({ ':method': 'POST', ':path': '/answer-early' });
    early.on('error', () => {});
    early.resume();
    await new Promise((resolve) => early.once('close', resolve));
    await balancer.close();
  });

  it('answers a request without a body', async () => {
    const [a] = await started(await startEcho());
    const { client } = await setup([{ port: a!.port }]);
    const get = client.request({ ':method': 'GET', ':path': '/discover' });
    const [headers] = (await once(get, 'response')) as [Record<string, string | number>];
    get.resume();
    await once(get, 'end');
    expect(headers[':status']).toBe(200);
    expect(headers['x-path']).toBe('/discover');
  });

  it('skips a worker that refuses the connection, and refuses the stream when none is left', async () => {
    const [a] = await started(await startEcho());
    const dead = await deadPort();
    const { balancer, client } = await setup([{ port: dead }, { port: a!.port }]);
    for (let i = 0; i < 3; i++) await echoed(client, `r${i}`);
    expect(a!.streams.length).toBe(3);

    balancer.targets.splice(0, balancer.targets.length, { port: dead });
    const refused = client.request({ ':method': 'POST', ':path': '/late' });
    refused.on('error', () => {});
    await new Promise((resolve) => refused.once('close', resolve));
    expect(refused.rstCode).not.toBe(0);
  });

  it('resets a stream whose worker dies, so that Restate retries it; the retry reaches another', async () => {
    const [a, b] = await started(await startEcho(), await startEcho());
    const { client } = await setup([{ port: a!.port }, { port: b!.port }]);
    const first = await echoed(client, 'dies');
    const [dying, living] = a!.streams.length === 1 ? [a!, b!] : [b!, a!];
    await dying.close();
    await once(first.stream, 'close');
    expect(first.stream.rstCode).not.toBe(0);
    expect((await echoed(client, 'retried')).port).toBe(living.port);
  });
});
