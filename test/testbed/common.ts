import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClusterFile } from '../../src/cluster/index.js';
import { fingerprint } from '../../src/ssh/index.js';

/** What both testbed tiers share: tool checks, the guest, waits on files, teardown by pidfile. */

export const has = (tool: string) =>
  tool.startsWith('/') ? existsSync(tool) : spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

const here = fileURLToPath(new URL('.', import.meta.url));

/**
 * The 512-byte guest (ticker.S): prints `disk-tick N` on COM1 about once a second and writes the
 * same line to sector 8+N of its disk. Writes DIR/ticker.bin (busy: DIR/busy-ticker.bin, the guest that
 * dirties memory between ticks) and returns its path.
 */
export function buildTicker(dir: string, busy = false): string {
  const name = busy ? 'busy-ticker' : 'ticker';
  const object = join(dir, `${name}.o`);
  const binary = join(dir, `${name}.bin`);
  execFileSync('as', ['--32', ...(busy ? ['--defsym', 'BUSY=1'] : []), '-o', object, join(here, 'ticker.S')]);
  execFileSync('ld', ['-m', 'elf_i386', '-Ttext', '0x7c00', '--oformat', 'binary', '-o', binary, object]);
  return binary;
}

/** A disk image of SIZE bytes that boots the ticker. */
export function tickerDisk(dir: string, image: string, size: number, busy = false) {
  const disk = Buffer.alloc(size);
  readFileSync(buildTicker(dir, busy)).copy(disk, 0);
  writeFileSync(image, disk);
}

/**
 * The ticker instance's QEMU launch spec, the same in both tiers but for its disk (QEMU's drive=
 * value) and accelerator options; serial output and QMP sit in the node's /run/drbd-migrate.
 */
export function tickerHypervisor(
  drive: string,
  accel = 'tcg',
  name = 'web1',
  memoryMiB = 16,
): ClusterFile['instances'][number]['hypervisor'] {
  return {
    kind: 'qemu',
    binary: '/usr/bin/qemu-system-x86_64',
    args: [
      '-name',
      name,
      '-accel',
      accel,
      '-machine',
      'pc',
      '-m',
      String(memoryMiB),
      '-nodefaults',
      '-display',
      'none',
      '-no-user-config',
      '-drive',
      `file=${drive},format=raw,if=ide,cache=none,aio=threads`,
      '-chardev',
      `file,id=s,path=/run/drbd-migrate/${name}.serial`,
      '-serial',
      'chardev:s',
    ],
    qmpSocket: `/run/drbd-migrate/${name}.qmp`,
  };
}

/** The SHA256 fingerprint a cluster file pins, from an OpenSSH public key file. */
export const pinnedHostKey = (publicKeyFile: string) =>
  fingerprint(Buffer.from(readFileSync(publicKeyFile, 'utf8').split(/\s+/)[1]!, 'base64'));

/** Parses a testbed's cluster file with the schema (not a cast) and writes it to DIR/cluster.json. */
export function writeClusterFile(dir: string, spec: unknown) {
  const cluster = ClusterFile.parse(spec);
  const clusterPath = join(dir, 'cluster.json');
  writeFileSync(clusterPath, `${JSON.stringify(cluster, null, 2)}\n`);
  return { cluster, clusterPath };
}

export const ticks = (serial: string) =>
  [...serial.matchAll(/disk-tick ([0-9a-f]{4})/g)].map((m) => Number.parseInt(m[1]!, 16));

/**
 * A guest that moved counts on: the last whole tick on the node it left, and the ticks after it,
 * reading that node's serial and the new node's as one. The line being printed at the handover may
 * begin in one file and end in the other (the guest prints byte by byte): a test that waits for a
 * whole `disk-tick N+1` on the target can wait forever. (A clean-clone run under load once waited
 * 60 s for one; its serials were not kept, so whether a split line or a starved guest did it is not
 * known: this removes the first cause, and a starved guest still fails the wait.)
 */
export function ticksAcross(left: string, went: string): { last: number; after: number[] } {
  const last = ticks(left).at(-1)!;
  const all = ticks(left + went);
  return { last, after: all.slice(all.lastIndexOf(last) + 1) };
}

/**
 * Resolves when `ready(text of file)` holds, re-checking whenever something in the file's folder
 * changes; fails at the deadline with what it waited for.
 */
export function untilFile(
  file: string,
  ready: (text: string) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const check = () => ready(existsSync(file) ? readFileSync(file, 'utf8') : '');
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const watcher = watch(dirname(file), () => {
      if (check()) finish();
    });
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}`)), timeoutMs);
    const finish = (error?: Error) => {
      watcher.close();
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
  });
}

export function killByPidfile(pidfile: string) {
  if (!existsSync(pidfile)) return;
  const pid = Number.parseInt(readFileSync(pidfile, 'utf8'), 10);
  if (Number.isInteger(pid) && pid > 1) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

/** Does the QEMU whose pidfile is RUNDIR/NAME.pid run (on this host, where the testbed's nodes live)? */
export function qemuRunning(runDir: string, name = 'web1'): boolean {
  const pidfile = join(runDir, `${name}.pid`);
  if (!existsSync(pidfile)) return false;
  try {
    process.kill(Number(readFileSync(pidfile, 'utf8')), 0);
    return true;
  } catch {
    return false;
  }
}
