import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { freePorts } from '../net/ports.js';

/**
 * A Restate server (one node, or a cluster of several) started from the npm package on loopback
 * ports, its data in a folder of the caller's: for tests, demos and trying things. In production the
 * server is run as its own service (docs/restate.md). The server is BSL 1.1 licensed; its npm package
 * is an optional dependency of ours, never a requirement of the library.
 */

export interface RestateNode {
  name: string;
  /** Ingress (where runs are submitted) and admin (deployments, cancel) of this node. */
  ingress: string;
  admin: string;
  pid: number;
  /** SIGKILL, as a host that dies. */
  kill(): void;
}

export interface RestateServer {
  nodes: RestateNode[];
  /** The first node's: any node's serves the whole cluster. */
  ingress: string;
  admin: string;
  /** Stops every node still running (SIGTERM, then SIGKILL) and waits for them to exit. */
  stop(): Promise<void>;
}

export interface RestateServerOptions {
  /** Data, logs and pidfiles; also the server's TMPDIR (it leaves folders there). */
  dir: string;
  /** 1 (default), or 3 for a cluster replicating its log and state twice. */
  nodes?: number;
  /** How long to wait for every node to be healthy (default 60 s). */
  readyMs?: number;
  /** Sign every request to the workers with this ed25519 private key (PEM; `newIdentityKey` writes one). */
  identityKeyFile?: string;
}

/** The server binary of this platform, from the npm package; a clear error when it is missing. */
export function restateServerBinary(): string {
  const pkg = `@restatedev/restate-server-${process.platform}-${process.arch}`;
  try {
    const manifest = createRequire(import.meta.url).resolve(`${pkg}/package.json`);
    return join(dirname(manifest), 'bin', 'restate-server');
  } catch {
    throw new Error(
      `the Restate server is not installed (${pkg}): npm install @restatedev/restate-server@^1.7.12`,
    );
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1_000) })).ok;
  } catch {
    return false;
  }
}

/** Polls until every URL answers healthy or the deadline passes (a server start, not a test wait). */
async function until(urls: string[], ms: number, exited: () => string | null): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const dead = exited();
    if (dead !== null) throw new Error(dead);
    if ((await Promise.all(urls.map(healthy))).every(Boolean)) return;
    if (Date.now() > end)
      throw new Error(`the Restate server was not healthy within ${ms} ms (${urls.join(', ')})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A node that could not bind a port we picked free: another process took it in between. */
const PORT_TAKEN = /Address (already )?in use/;
const ATTEMPTS = 3;

export async function startRestateServer(options: RestateServerOptions): Promise<RestateServer> {
  const binary = restateServerBinary();
  for (let attempt = 1; ; attempt++) {
    try {
      // Each attempt a fresh cluster in its own folders: a half-provisioned one cannot be reused.
      return await startOnce(options, binary, attempt === 1 ? '' : `-attempt${attempt}`);
    } catch (error) {
      if (attempt === ATTEMPTS || !PORT_TAKEN.test((error as Error).message)) throw error;
    }
  }
}

async function startOnce(
  options: RestateServerOptions,
  binary: string,
  suffix: string,
): Promise<RestateServer> {
  const count = options.nodes ?? 1;
  const tmp = join(options.dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const picked = await freePorts(3 * count);
  const ports = Array.from({ length: count }, (_, i) => ({
    ingress: picked[3 * i]!,
    admin: picked[3 * i + 1]!,
    node: picked[3 * i + 2]!,
  }));
  const metadata = ports.map((p) => `http://127.0.0.1:${p.node}`);
  const children: { name: string; child: ChildProcess; exit: Promise<void>; log: string }[] = [];
  let failure: string | null = null;
  const stopping = new Set<string>();
  for (const [i, p] of ports.entries()) {
    const name = `n${i + 1}`;
    const base = join(options.dir, `${name}${suffix}`);
    mkdirSync(base, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TMPDIR: tmp,
      RESTATE_LOG_FILTER: 'warn',
      RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${p.ingress}`,
      RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${p.admin}`,
      RESTATE_BIND_ADDRESS: `127.0.0.1:${p.node}`,
      RESTATE_ADVERTISED_ADDRESS: `http://127.0.0.1:${p.node}`,
      ...(options.identityKeyFile === undefined
        ? {}
        : { RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE: options.identityKeyFile }),
      ...(count === 1
        ? {}
        : {
            RESTATE_CLUSTER_NAME: `drbd-migrate-${process.pid}`,
            RESTATE_DEFAULT_REPLICATION: '2',
            RESTATE_METADATA_CLIENT__ADDRESSES: JSON.stringify(metadata),
          }),
    };
    const args = ['--bind-ip', '127.0.0.1', '--base-dir', base, '--node-name', name];
    if (count > 1) args.push('--auto-provision', i === 0 ? 'true' : 'false');
    const log = join(base, 'server.log');
    writeFileSync(log, '');
    const fd = openSync(log, 'a');
    const child = spawn(binary, args, { env, stdio: ['ignore', fd, fd] });
    writeFileSync(join(base, 'pid'), String(child.pid));
    const exit = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        if (failure === null && !stopping.has(name)) {
          failure = `Restate node ${name} exited (${signal ?? code}); its log: ${log}`;
        }
        resolve();
      }),
    );
    children.push({ name, child, exit, log });
  }
  const stop = async () => {
    await Promise.all(
      children.map(async ({ name, child, exit }) => {
        stopping.add(name);
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exit;
        clearTimeout(t);
      }),
    );
  };
  try {
    await until(
      ports.flatMap((p) => [
        `http://127.0.0.1:${p.admin}/health`,
        `http://127.0.0.1:${p.ingress}/restate/health`,
      ]),
      options.readyMs ?? 60_000,
      () => failure,
    );
  } catch (error) {
    await stop();
    const tail = children
      .map((c) => (existsSync(c.log) ? readFileSync(c.log, 'utf8').slice(-2_000) : ''))
      .join('\n');
    throw new Error(`${(error as Error).message}\n${tail}`);
  }
  const nodes = children.map(({ name, child }, i) => ({
    name,
    ingress: `http://127.0.0.1:${ports[i]!.ingress}`,
    admin: `http://127.0.0.1:${ports[i]!.admin}`,
    pid: child.pid!,
    kill: () => {
      stopping.add(name);
      child.kill('SIGKILL');
    },
  }));
  return { nodes, ingress: nodes[0]!.ingress, admin: nodes[0]!.admin, stop };
}
