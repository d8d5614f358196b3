import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import type { ClusterNode } from '../cluster/index.js';
import { type HostKeyPolicy, judgeHostKey } from './hostkeys.js';
import { shellLine } from './shell.js';

const { Client } = ssh2;
type Client = InstanceType<typeof Client>;

/** How long an SSH handshake may take at most (the step's own deadline may cut it shorter). */
export const SSH_CONNECT_TIMEOUT_MS = 10_000;

/** A command that ran and exited non-zero, or could not finish in time. */
export class NodeCommandError extends Error {
  override name = 'NodeCommandError';
  constructor(
    readonly node: string,
    readonly command: string,
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
    why: string,
  ) {
    super(`${node}: \`${command}\` ${why}`);
  }
}

/**
 * The connection itself failed: refused, unreachable, host key refused, login refused. `transient`:
 * the network's doing (refused, reset, no route), worth asking again; a refused key or login is not.
 */
export class NodeConnectError extends Error {
  override name = 'NodeConnectError';
  constructor(
    message: string,
    readonly transient = false,
  ) {
    super(message);
  }
}

/** The socket never carried a handshake: the node's network or sshd is away for now. */
const TRANSPORT = /^(ECONNREFUSED|ECONNRESET|EPIPE|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN)$/;
const isTransport = (error: Error & { level?: string; code?: string }) =>
  TRANSPORT.test(error.code ?? '') || error.message === 'Connection lost before handshake';

const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 1_000;
/**
 * How long a node's network or sshd may be away before a connection counts as failed: an outage of
 * a few seconds costs retries, while a node that is down is still reported well within SSH's own
 * connect timeout (a failover waits for that answer).
 */
export const RECONNECT_WINDOW_MS = 5_000;

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Exit codes that are answers, not failures (e.g. 1 from `test`). */
  okCodes?: readonly number[];
  /**
   * A connection the network refused or reset is tried again until the deadline (default): nothing
   * ran yet. False for a probe, whose answer is whether the node answers now.
   */
  retry?: boolean;
}

/** What a driver needs from a node: run a command, reach a unix socket. The SSH backend and tests implement it. */
export interface NodeShell {
  readonly node: string;
  exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult>;
  openUnix(path: string, options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<Duplex>;
  close(): void;
}

/** Drops the noise drbd-utils print on a host without the module, and keeps the last lines. */
const tail = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('modinfo: ERROR: Module drbd not found'))
    .slice(-3)
    .join(' / ');

/**
 * Calls onExpire once, when timeoutMs passes or the signal aborts, whichever comes first. Either way
 * the other is disarmed: a timer left behind would hold the process open for the whole step timeout
 * after the outcome is known.
 */
function deadline(timeoutMs: number, signal: AbortSignal | undefined, onExpire: (why: string) => void) {
  const disarm = () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
  const expire = (why: string) => {
    disarm();
    onExpire(why);
  };
  const timer = setTimeout(() => expire(`did not finish within ${timeoutMs} ms`), timeoutMs);
  const onAbort = () => expire('was cancelled (the step was left)');
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) queueMicrotask(onAbort);
  return disarm;
}

/**
 * One persistent SSH connection to a node, opened on first use and reused for every step. A dropped
 * connection is reopened once, and only before a command has started: effects are idempotent, but a
 * command whose fate is unknown is never run twice behind the machine's back.
 */
export class SshNode implements NodeShell {
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;

  constructor(
    private readonly spec: ClusterNode,
    private readonly options: { readyTimeoutMs?: number; keepaliveMs?: number } = {},
  ) {}

  get node() {
    return this.spec.name;
  }

  private async connect(timeoutMs: number, signal: AbortSignal | undefined): Promise<Client> {
    const spec = this.spec;
    const policy: HostKeyPolicy = {
      pinned: spec.hostKey,
      knownHosts:
        spec.knownHosts === undefined
          ? undefined
          : {
              path: spec.knownHosts,
              text: await readFile(spec.knownHosts, 'utf8').catch((e: NodeJS.ErrnoException) => {
                throw new NodeConnectError(
                  `${spec.name}: cannot read known_hosts ${spec.knownHosts}: ${e.code}`,
                );
              }),
            },
    };
    const privateKey =
      spec.privateKey === undefined
        ? undefined
        : await readFile(spec.privateKey).catch((e: NodeJS.ErrnoException) => {
            throw new NodeConnectError(`${spec.name}: cannot read private key ${spec.privateKey}: ${e.code}`);
          });
    const agent = privateKey === undefined ? process.env.SSH_AUTH_SOCK : undefined;
    if (privateKey === undefined && agent === undefined) {
      throw new NodeConnectError(
        `${spec.name}: no privateKey in the cluster file and no ssh agent ($SSH_AUTH_SOCK)`,
      );
    }
    let refusal: string | null = null;
    const client = new Client();
    return new Promise<Client>((resolve, reject) => {
      // The step's deadline bounds the handshake too: a node that accepts and then says nothing
      // must not hold the step longer than the step may take.
      const stop = deadline(timeoutMs, signal, (why) => {
        refusal = `the SSH handshake ${why}`;
        client.destroy();
        reject(
          new NodeConnectError(`${spec.name}: cannot connect to ${spec.address}:${spec.port}: ${refusal}`),
        );
      });
      client
        .on('ready', () => {
          stop();
          resolve(client);
        })
        .on('error', (error: Error & { level?: string }) => {
          stop();
          const why =
            refusal ??
            (error.level === 'client-authentication'
              ? `login as ${spec.user} refused (${error.message})`
              : error.message);
          reject(
            new NodeConnectError(
              `${spec.name}: cannot connect to ${spec.address}:${spec.port}: ${why}`,
              refusal === null && isTransport(error),
            ),
          );
        })
        .on('close', () => {
          if (this.client === client) this.client = null;
        })
        .connect({
          host: spec.address,
          port: spec.port,
          username: spec.user,
          ...(privateKey === undefined ? { agent } : { privateKey }),
          readyTimeout: this.options.readyTimeoutMs ?? SSH_CONNECT_TIMEOUT_MS,
          keepaliveInterval: this.options.keepaliveMs ?? 5_000,
          keepaliveCountMax: 3,
          hostVerifier: (key: Buffer) => {
            const verdict = judgeHostKey(key, { node: spec.name, ...spec }, policy);
            if (!verdict.ok) refusal = verdict.reason;
            return verdict.ok;
          },
        });
    });
  }

  private async ready(timeoutMs: number, signal: AbortSignal | undefined, retry = true): Promise<Client> {
    const until = Date.now() + timeoutMs;
    const giveUp = Math.min(until, Date.now() + RECONNECT_WINDOW_MS);
    for (let wait = FIRST_RETRY_MS; ; wait = Math.min(2 * wait, LAST_RETRY_MS)) {
      if (this.client !== null) return this.client;
      try {
        this.connecting ??= this.connect(Math.max(1, until - Date.now()), signal).finally(() => {
          this.connecting = null;
        });
        this.client = await this.connecting;
        return this.client;
      } catch (error) {
        // A node whose network or sshd is away for a moment costs a retry, not a failed step; the
        // window and the deadline bound it, and nothing has run on the node yet.
        const left = giveUp - Date.now();
        if (!retry || !(error instanceof NodeConnectError) || !error.transient || left <= wait) throw error;
        await sleep(wait, undefined, signal === undefined ? {} : { signal }).catch(() => {
          throw error;
        });
      }
    }
  }

  /** Opens a channel, reconnecting once if the connection turned out to be gone. */
  private async channel<T>(
    limits: { timeoutMs: number; signal?: AbortSignal | undefined; retry?: boolean },
    open: (client: Client) => Promise<T>,
  ): Promise<T> {
    const client = await this.ready(limits.timeoutMs, limits.signal, limits.retry);
    try {
      return await open(client);
    } catch (error) {
      // ssh2 throws 'Not connected' when the socket went away since the last command.
      const gone =
        error instanceof ChannelError || (error instanceof Error && error.message === 'Not connected');
      if (!gone) throw error;
      this.drop(client);
      return open(await this.ready(limits.timeoutMs, limits.signal, limits.retry));
    }
  }

  private drop(client: Client) {
    if (this.client === client) this.client = null;
    client.end();
  }

  exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    const command = shellLine(argv);
    const node = this.spec.name;
    return this.channel(
      options,
      (client) =>
        new Promise<ExecResult>((resolve, reject) => {
          client.exec(command, (err, stream) => {
            if (err) return reject(new ChannelError(err.message));
            let stdout = '';
            let stderr = '';
            let settled = false;
            const stop = deadline(options.timeoutMs, options.signal, (why) => {
              if (settled) return;
              settled = true;
              // Ask sshd to kill the command, then give the channel up.
              try {
                stream.signal('KILL');
              } catch {}
              stream.close();
              reject(new NodeCommandError(node, command, null, stdout, stderr, why));
            });
            stream.on('data', (d: Buffer) => {
              stdout += d.toString();
            });
            stream.stderr.on('data', (d: Buffer) => {
              stderr += d.toString();
            });
            stream.on('close', (code: number | null, signal?: string) => {
              stop();
              if (settled) return;
              settled = true;
              if (code === 0 || (code !== null && options.okCodes?.includes(code))) {
                resolve({ stdout, stderr, code });
              } else {
                const why =
                  code === null || code === undefined
                    ? `was killed${signal ? ` by ${signal}` : ''}${tail(stderr) ? `: ${tail(stderr)}` : ''}`
                    : `exited ${code}${tail(stderr) || tail(stdout) ? `: ${tail(stderr) || tail(stdout)}` : ''}`;
                reject(new NodeCommandError(node, command, code ?? null, stdout, stderr, why));
              }
            });
          });
        }),
    );
  }

  openUnix(path: string, options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<Duplex> {
    const node = this.spec.name;
    return this.channel(
      options,
      (client) =>
        new Promise<Duplex>((resolve, reject) => {
          const stop = deadline(options.timeoutMs, options.signal, (why) =>
            reject(new Error(`${node}: opening ${path} ${why}`)),
          );
          client.openssh_forwardOutStreamLocal(path, (err, stream) => {
            stop();
            if (err) {
              // sshd answers "open failed" when nothing listens there: an answer, not a dropped connection.
              const refused = /open failed|connect failed/i.test(err.message);
              return reject(
                refused
                  ? new Error(`${node}: nothing listens on ${path} (${err.message})`)
                  : new ChannelError(err.message),
              );
            }
            resolve(stream);
          });
        }),
    );
  }

  close() {
    this.client?.end();
    this.client = null;
  }
}

class ChannelError extends Error {}
