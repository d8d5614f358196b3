import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  createServer,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';

export interface BalancerTarget {
  host?: string;
  port: number;
}

export interface Balancer {
  url: string;
  port: number;
  /** The workers new streams go to (a worker replaced, one added): read at each stream. */
  targets: BalancerTarget[];
  /** Streams each worker (`host:port`) took since the start: what a test or an operator checks the spread by. */
  taken: Map<string, number>;
  close(): Promise<void>;
}

const {
  NGHTTP2_FLAG_END_STREAM,
  NGHTTP2_NO_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_REFUSED_STREAM,
} = constants;
const keyOf = (t: BalancerTarget) => `${t.host ?? '127.0.0.1'}:${t.port}`;

/**
 * An HTTP/2 balancer in front of workers, for one machine's demos and tests (in production, a load
 * balancer that balances HTTP/2 requests, such as Envoy; a plain Kubernetes Service balances
 * connections). Restate keeps an in-flight run on
 * the deployment it started on, so the deployment must be an address that outlives any one worker;
 * and it multiplexes every invocation onto few HTTP/2 connections, so a balancer of connections sends
 * a whole drain to one worker. This one balances streams: each invocation's stream goes to the worker
 * with the fewest streams open through it (a run holds its stream for as long as it runs), the one
 * that waited longest among equals. A worker that refuses the connection is skipped before anything
 * is sent; one that dies mid-stream resets the stream, and Restate retries the invocation, which
 * comes back through here to another worker.
 */
export async function startBalancer(initial: BalancerTarget[], port = 0): Promise<Balancer> {
  const targets = initial.slice();
  const open = new Map<string, number>();
  const taken = new Map<string, number>();
  const lastPicked = new Map<string, number>();
  let picks = 0;
  const upstreams = new Map<string, Promise<ClientHttp2Session>>();
  // Closed by their sockets, not session.destroy(): found while testing, Node 20.20's client
  // session.destroy() spins forever once the peer closed a stream whose request side was still
  // open while another stream is open (as a worker answering before Restate ends a request does).
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  const sessionTo = (key: string, target: BalancerTarget): Promise<ClientHttp2Session> => {
    const known = upstreams.get(key);
    if (known !== undefined) return known;
    const made = new Promise<ClientHttp2Session>((resolve, reject) => {
      // Nagle off: a step's journal round trip is a few small writes.
      const s = connect(`http://${key}`, {
        createConnection: () => {
          const socket = netConnect({ host: target.host ?? '127.0.0.1', port: target.port, noDelay: true });
          track(socket);
          return socket;
        },
      });
      const forget = () => {
        if (upstreams.get(key) === made) upstreams.delete(key);
      };
      s.once('connect', () => resolve(s));
      s.once('error', (e) => {
        forget();
        reject(e);
      });
      s.once('goaway', forget);
      s.once('close', forget);
    });
    made.catch(() => {});
    upstreams.set(key, made);
    return made;
  };

  /** The targets in the order to try them: fewest open streams first, then the longest unpicked. */
  const ranked = () =>
    [...new Map(targets.map((t) => [keyOf(t), t])).entries()].sort(
      ([a], [b]) =>
        (open.get(a) ?? 0) - (open.get(b) ?? 0) || (lastPicked.get(a) ?? -1) - (lastPicked.get(b) ?? -1),
    );

  const forward = async (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ended: boolean) => {
    stream.on('error', () => {});
    const { ':authority': _a, ':scheme': _s, ...request } = headers;
    for (const [key, target] of ranked()) {
      let session: ClientHttp2Session;
      try {
        session = await sessionTo(key, target);
      } catch {
        continue;
      }
      if (stream.destroyed) return;
      let up: ClientHttp2Stream;
      try {
        up = session.request(request as OutgoingHttpHeaders, { endStream: ended });
      } catch {
        continue;
      }
      lastPicked.set(key, picks++);
      taken.set(key, (taken.get(key) ?? 0) + 1);
      open.set(key, (open.get(key) ?? 0) + 1);
      pipeStreams(stream, up, ended, () => open.set(key, (open.get(key) ?? 1) - 1));
      return;
    }
    if (!stream.destroyed) stream.close(NGHTTP2_REFUSED_STREAM);
  };

  const server = createServer();
  server.on('connection', (socket: Socket) => {
    socket.setNoDelay(true);
    track(socket);
  });
  server.on('stream', (stream, headers, flags) => {
    void forward(stream, headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    targets,
    taken,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Both directions of one request at once (an invocation streams its journal in while the worker
 * streams its steps out). Either side failing resets the other, so Restate sees the attempt fail and
 * retries it rather than waiting on a stream no one answers. No trailers: Restate's protocol has none.
 */
function pipeStreams(down: ServerHttp2Stream, up: ClientHttp2Stream, ended: boolean, done: () => void) {
  let answered = false;
  if (!ended) down.pipe(up);
  up.once('response', (headers, flags) => {
    if (down.destroyed) return;
    answered = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    down.respond(headers, { endStream: answered });
    if (!answered) up.pipe(down);
  });
  up.once('end', () => {
    answered = true;
  });
  // A worker that answered in full and then closed (with the request still open) closes alike;
  // one that died mid-answer is a reset, which Restate retries.
  up.once('close', () => {
    done();
    if (!down.destroyed)
      down.close(answered && !up.rstCode ? NGHTTP2_NO_ERROR : up.rstCode || NGHTTP2_INTERNAL_ERROR);
  });
  down.once('close', () => {
    if (!up.destroyed) up.close(NGHTTP2_CANCEL);
  });
  up.on('error', () => {});
}
