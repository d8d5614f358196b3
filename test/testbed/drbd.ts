import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterFile } from '../../src/cluster/index.js';
import { SshNode } from '../../src/ssh/index.js';
import {
  buildTicker,
  has,
  killByPidfile,
  pinnedHostKey,
  tickerHypervisor,
  untilFile,
  writeClusterFile,
} from './common.js';

/**
 * Tier B of the real testbed (../shared/reference/testbed-notes.md §4, testbed-nested.md): two node
 * VMs under QEMU/TCG booting Debian's kernel, whose in-tree DRBD 8.4.11 replicates one resource
 * between them over an emulated link; each runs sshd and a QEMU of its own, which runs the instance
 * (the ticking boot-sector guest) from /dev/drbd0. Nothing needs root: the VMs' management links are
 * QEMU user networks with a host port forwarded to sshd on 127.0.0.1, the DRBD link a socket between
 * the two QEMUs on 127.0.0.1. Teardown kills the two VMs by pidfile.
 */

export const DRBD_TESTBED_TOOLS = [
  'qemu-system-x86_64',
  '/bin/busybox',
  'cpio',
  'gzip',
  'modprobe',
  'depmod',
  'apt-get',
  'apt-cache',
  'dpkg-deb',
  'ssh-keygen',
  '/usr/sbin/sshd',
  '/usr/sbin/drbdadm',
  '/lib/drbd/drbdsetup-84',
  '/usr/share/seabios/bios-256k.bin',
  '/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so',
  'as',
  'ld',
] as const;

/** Why the DRBD VMs cannot start here, or null. In CI that is a failure, never a skip. */
export function drbdTestbedUnavailable(): string | null {
  const missing = DRBD_TESTBED_TOOLS.filter((t) => !has(t));
  if (missing.length > 0) return `missing ${missing.join(', ')} (bash .ci/run installs them)`;
  // The VMs' userland is copied from this host; busybox must need no libraries (ldd fails on it).
  if (spawnSync('ldd', ['/bin/busybox']).status === 0) return '/bin/busybox is not busybox-static';
  return null;
}

export const RESOURCE = 'web1-disk0';
/** A second instance's resource, configured in every node but brought up only by the test using it. */
export const SECOND_RESOURCE = 'web2-disk0';
const REPLICATION = { 'node-a': '10.99.1.1', 'node-b': '10.99.1.2' } as const;
type NodeName = keyof typeof REPLICATION;

export interface DrbdTestbed {
  dir: string;
  clusterPath: string;
  cluster: ClusterFile;
  /** Runs a command on a node over SSH (the test's own checks and set-up). */
  exec(
    node: NodeName,
    argv: string[],
    okCodes?: number[],
  ): Promise<{ stdout: string; stderr: string; code: number }>;
  /** The node VM loses power (SIGKILL by its pidfile): no shutdown, its disk as the crash left it. */
  powerOff(node: NodeName): void;
  /** The node VM boots again from the same disk; resolves once sshd listens. */
  powerOn(node: NodeName): Promise<void>;
  stop(): void;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const run = (argv: string[]) =>
  execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no free port on 127.0.0.1');
  return address.port;
}

/** Debian's kernel and the node modules, downloaded once into a cache folder. */
export function prepareKernel(): string {
  const cache = process.env.DRBD_MIGRATE_TESTBED_CACHE ?? join(homedir(), '.cache/drbd-migrate/testbed');
  mkdirSync(cache, { recursive: true });
  return run([join(here, 'vm/prepare-kernel.sh'), cache]).trim();
}

export async function startDrbdTestbed(dir: string): Promise<DrbdTestbed> {
  const pidfiles: string[] = [];
  const shells = new Map<NodeName, SshNode>();
  const stop = () => {
    for (const s of shells.values()) s.close();
    for (const f of pidfiles) killByPidfile(f);
  };
  try {
    const kernel = prepareKernel();
    const ssh = join(dir, 'ssh');
    mkdirSync(ssh, { recursive: true });
    run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(ssh, 'client_key')]);
    writeFileSync(join(ssh, 'authorized_keys'), readFileSync(join(ssh, 'client_key.pub')));
    for (const n of Object.keys(REPLICATION)) {
      run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(ssh, `host_${n}`)]);
    }
    // Set up as an operator would, without two primaries: the library turns them on and off.
    writeFileSync(
      join(dir, 'drbd.conf'),
      `resource ${RESOURCE} {
  disk { c-plan-ahead 0; resync-rate 100M; }
  net { protocol C; }
  on node-a { device /dev/drbd0; disk /dev/vda; address ${REPLICATION['node-a']}:7789; meta-disk internal; }
  on node-b { device /dev/drbd0; disk /dev/vda; address ${REPLICATION['node-b']}:7789; meta-disk internal; }
}
resource ${SECOND_RESOURCE} {
  disk { c-plan-ahead 0; resync-rate 100M; }
  net { protocol C; }
  on node-a { device /dev/drbd1; disk /dev/vdb; address ${REPLICATION['node-a']}:7790; meta-disk internal; }
  on node-b { device /dev/drbd1; disk /dev/vdb; address ${REPLICATION['node-b']}:7790; meta-disk internal; }
}
`,
    );
    buildTicker(dir);
    run([join(here, 'vm/build-initrd.sh'), kernel, dir]);
    const kv = kernel.split('/').at(-1)!;
    const vmlinuz = join(kernel, 'root/boot', `vmlinuz-${kv}`);

    // The DRBD link: UDP between the two QEMUs on 127.0.0.1, so that either side can lose power and
    // boot again without the other's QEMU having to reconnect.
    const linkPorts = { 'node-a': await freePort(), 'node-b': await freePort() };
    const sshPorts = { 'node-a': await freePort(), 'node-b': await freePort() };
    for (const node of Object.keys(REPLICATION) as NodeName[]) {
      for (const [file, size] of [
        [`${node}.raw`, '64M'],
        [`${node}-2.raw`, '16M'],
      ] as const) {
        writeFileSync(join(dir, file), '');
        run(['truncate', '-s', size, join(dir, file)]);
      }
      pidfiles.push(join(dir, `${node}.pid`));
    }
    const vm = (node: NodeName) => {
      const disk = join(dir, `${node}.raw`);
      const pidfile = join(dir, `${node}.pid`);
      const console = join(dir, `${node}.console`);
      writeFileSync(console, '');
      const mac = node === 'node-a' ? '0a' : '0b';
      const peer: NodeName = node === 'node-a' ? 'node-b' : 'node-a';
      const side = `udp=127.0.0.1:${linkPorts[peer]},localaddr=127.0.0.1:${linkPorts[node]}`;
      run([
        'qemu-system-x86_64',
        '-accel',
        'tcg',
        '-machine',
        'pc',
        '-cpu',
        'max',
        '-m',
        '512',
        '-smp',
        '1',
        '-nodefaults',
        '-display',
        'none',
        '-no-user-config',
        '-kernel',
        vmlinuz,
        '-initrd',
        join(dir, 'initrd.cpio.gz'),
        '-append',
        `console=ttyS0 panic=-1 quiet dm.node=${node} dm.ip=${REPLICATION[node]}/24 dm.mac=${mac}`,
        '-chardev',
        `file,id=con,path=${console}`,
        '-serial',
        'chardev:con',
        '-pidfile',
        pidfile,
        '-daemonize',
        '-drive',
        `file=${disk},format=raw,if=virtio,cache=none,aio=threads`,
        '-drive',
        `file=${join(dir, `${node}-2.raw`)},format=raw,if=virtio,cache=none,aio=threads`,
        '-netdev',
        `socket,id=drbd,${side}`,
        '-device',
        `virtio-net-pci,netdev=drbd,mac=52:54:00:99:01:${mac}`,
        '-netdev',
        `user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:${sshPorts[node]}-:22`,
        '-device',
        `virtio-net-pci,netdev=mgmt,mac=52:54:00:99:02:${mac}`,
      ]);
      return console;
    };
    const booted = (n: NodeName, console: string) =>
      untilFile(
        console,
        (text) => text.includes(`drbd-migrate-testbed: ${n} ready`),
        `${n} to boot (its console: ${console})`,
        120_000,
      );
    const consoles = { 'node-a': vm('node-a'), 'node-b': vm('node-b') };
    await Promise.all((Object.keys(consoles) as NodeName[]).map((n) => booted(n, consoles[n])));

    const { cluster, clusterPath } = writeClusterFile(dir, {
      version: 1,
      nodes: (Object.keys(REPLICATION) as NodeName[]).map((n) => ({
        name: n,
        address: '127.0.0.1',
        port: sshPorts[n],
        user: 'root',
        privateKey: join(ssh, 'client_key'),
        hostKey: pinnedHostKey(join(ssh, `host_${n}.pub`)),
        replicationAddress: REPLICATION[n],
      })),
      instances: [
        {
          name: 'web1',
          primary: 'node-a',
          secondary: 'node-b',
          memoryMiB: 16,
          migrationMode: 'live',
          storage: 'drbd',
          // A small code buffer: QEMU would size it to an eighth of the node VM's RAM.
          hypervisor: tickerHypervisor('/dev/drbd0', 'tcg,tb-size=64'),
          disks: [{ resource: RESOURCE, minor: 0, port: 7789 }],
        },
      ],
      // Everything runs under TCG here, the nested QEMU inside TCG: generous step deadlines.
      options: { limits: { stepTimeoutMs: 60_000 } },
    });

    const shell = (node: NodeName) => {
      let s = shells.get(node);
      if (s === undefined) {
        s = new SshNode(cluster.nodes.find((n) => n.name === node)!);
        shells.set(node, s);
      }
      return s;
    };
    const exec: DrbdTestbed['exec'] = async (node, argv, okCodes = [0]) => {
      const r = await shell(node).exec(argv, { timeoutMs: 120_000, okCodes });
      return { stdout: r.stdout, stderr: r.stderr, code: r.code };
    };

    // The resource as an operator leaves it: connected, node-a primary, in sync; the guest's boot
    // sector on it.
    await Promise.all(
      (['node-a', 'node-b'] as const).map((n) =>
        exec(n, ['sh', '-c', `drbdadm create-md --force ${RESOURCE} && drbdadm up ${RESOURCE}`]),
      ),
    );
    await exec('node-a', ['/lib/drbd/drbdsetup-84', 'wait-connect', '0', '--wfc-timeout=60']);
    await exec('node-a', ['drbdadm', 'primary', '--force', RESOURCE]);
    await exec('node-b', ['/lib/drbd/drbdsetup-84', 'wait-sync', '0', '--wfc-timeout=60']);
    await exec('node-a', ['dd', 'if=/ticker.bin', 'of=/dev/drbd0', 'oflag=direct', 'status=none']);

    const powerOff = (node: NodeName) => {
      shells.get(node)?.close();
      shells.delete(node);
      killByPidfile(join(dir, `${node}.pid`));
    };
    const powerOn = (node: NodeName) => booted(node, vm(node));
    return { dir, clusterPath, cluster, exec, powerOff, powerOn, stop };
  } catch (error) {
    stop();
    throw error;
  }
}
