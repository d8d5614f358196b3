import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import { SSH_CONNECT_TIMEOUT_MS } from '../src/ssh/index.js';
import { tempDir } from './tmp.js';

/**
 * Nothing keeps the process alive after the outcome is known: a run that cannot reach a node exits
 * within the connect deadline plus one second. The test waits for the process to exit by itself
 * and kills it (failing) once that bound has passed.
 */

const dir = tempDir();
const KEY = join(dir, 'id_ed25519');
// A real key (ssh2 parses it before connecting); no node ever sees it.
writeFileSync(KEY, ssh2.utils.generateKeyPairSync('ed25519').private, { mode: 0o600 });

/** A loopback port that refuses connections: a server's, closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A server that accepts and then never says a word (no SSH banner). */
const silentSockets: Socket[] = [];
let silent: Server | null = null;
async function silentPort(): Promise<number> {
  silent = createServer((s) => silentSockets.push(s));
  await new Promise<void>((r) => silent!.listen(0, '127.0.0.1', r));
  return (silent.address() as { port: number }).port;
}
afterAll(async () => {
  for (const s of silentSockets) s.destroy();
  await new Promise<void>((r) => (silent === null ? r() : silent.close(() => r())));
});

function clusterFile(nodes: { port: number; knownHosts?: string }[], limits?: Record<string, number>) {
  const file = join(dir, `cluster-${Math.random().toString(36).slice(2)}.yaml`);
  const node = (name: string, n: { port: number; knownHosts?: string }) =>
    `  - { name: ${name}, address: 127.0.0.1, port: ${n.port}, privateKey: ${KEY}, ${
      n.knownHosts === undefined
        ? 'hostKey: "SHA256:2VmY2p3bJ0WQ0l8Wq1m0r6bq2sX0dB1X8wqF3nM5yZk"'
        : `knownHosts: ${n.knownHosts}`
    }, replicationAddress: 127.0.0.1 }`;
  writeFileSync(
    file,
    [
      'version: 1',
      'nodes:',
      node('node-a', nodes[0]!),
      node('node-b', nodes[1]!),
      'instances:',
      '  - name: web1',
      '    primary: node-a',
      '    secondary: node-b',
      '    memoryMiB: 64',
      '    hypervisor: { kind: qemu, binary: /usr/bin/qemu-system-x86_64, args: [], qmpSocket: /run/web1.qmp }',
      '    disks: [{ resource: r0, minor: 0, port: 7789 }]',
      ...(limits === undefined ? [] : ['options:', `  limits: ${JSON.stringify(limits)}`]),
    ].join('\n'),
  );
  return file;
}

/** Runs the built CLI; resolves once it exits, or kills it when `boundMs` has passed. */
function runBounded(args: string[], boundMs: number) {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, boundMs);
  return new Promise<{ code: number | null; exitedByItself: boolean; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, exitedByItself: !killed, stderr });
    }),
  );
}

const migrate = (file: string) => ['migrate', 'web1', '--cluster', file, '--state-dir', join(dir, 'state')];

describe('a run that cannot reach a node exits within the connect deadline plus one second', () => {
  it('when the port refuses the connection (default 180 s step deadline)', async () => {
    const file = clusterFile([{ port: await closedPort() }, { port: await closedPort() }]);
    const r = await runBounded(migrate(file), SSH_CONNECT_TIMEOUT_MS + 1_000);
    expect(r.exitedByItself).toBe(true);
    expect(r.code).toBe(2);
    // Either node may be the first to refuse: both are asked at once.
    expect(r.stderr).toMatch(/node-[ab]: cannot connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  });

  it('when the known_hosts file is missing', async () => {
    const port = await closedPort();
    const file = clusterFile([
      { port, knownHosts: join(dir, 'no-such-known_hosts') },
      { port, knownHosts: join(dir, 'no-such-known_hosts') },
    ]);
    const r = await runBounded(migrate(file), SSH_CONNECT_TIMEOUT_MS + 1_000);
    expect(r.exitedByItself).toBe(true);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read known_hosts .*no-such-known_hosts: ENOENT/);
  });

  it('when the node accepts and never answers (the step deadline cuts the handshake)', async () => {
    const stepTimeoutMs = 2_000;
    const port = await silentPort();
    const file = clusterFile([{ port }, { port }], { stepTimeoutMs });
    // Ended before SSH's own ready timeout could have ended it, and by the step's deadline (the
    // message says which): the bound leaves room for a loaded machine's process start.
    const r = await runBounded(migrate(file), SSH_CONNECT_TIMEOUT_MS - 1_000);
    expect(r.exitedByItself).toBe(true);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the SSH handshake did not finish within 2000 ms/);
  });
});
