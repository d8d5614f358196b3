import { connect, createServer, type Socket } from 'node:net';

export interface Balancer {
  url: string;
  port: number;
  /** The workers new connections go to (a worker replaced, one added). */
  targets: { host?: string; port: number }[];
  close(): Promise<void>;
}

/**
 * A TCP balancer in front of workers, for one machine's demos and tests: Restate keeps an in-flight
 * run on the deployment it started on, so the deployment must be an address that outlives any one
 * worker (in production, the load balancer or Kubernetes Service in front of them). Each connection
 * goes to the next worker in turn; a worker that refuses it is skipped. Nagle is off both ways: a
 * step's journal round trip is a few small writes.
 */
export async function startBalancer(initial: { host?: string; port: number }[], port = 0): Promise<Balancer> {
  let next = 0;
  const targets = initial.slice();
  const open = new Set<Socket>();
  const track = (s: Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  };
  const server = createServer((client) => {
    track(client);
    client.setNoDelay(true);
    client.pause();
    const tryTarget = (left: number) => {
      if (left === 0) return client.destroy();
      const t = targets[next++ % targets.length]!;
      const upstream = connect({ host: t.host ?? '127.0.0.1', port: t.port });
      track(upstream);
      upstream.setNoDelay(true);
      upstream.once('error', () => {
        if (!upstream.readyState.startsWith('open')) tryTarget(left - 1);
      });
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.once('close', () => client.destroy());
        client.once('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryTarget(targets.length);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    targets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
