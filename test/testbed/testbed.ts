import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cluster/index.js';
import {
  has,
  killByPidfile,
  pinnedHostKey,
  tickerDisk,
  tickerHypervisor,
  untilFile,
  writeClusterFile,
} from './common.js';

/**
 * Tier A of the real testbed (../shared/reference/testbed-notes.md §1-2): two nodes, each a network
 * namespace with its own sshd and hostname, on a bridge the test runner reaches; a loop device both
 * nodes' QEMUs open (the shared-storage instance); a 512-byte guest that ticks on its serial port and
 * writes each tick to its disk. Everything is torn down by pidfile, namespace and device name.
 */

export const TESTBED_TOOLS = [
  'ip',
  'unshare',
  'losetup',
  'ssh-keygen',
  '/usr/sbin/sshd',
  'qemu-system-x86_64',
  'as',
  'ld',
] as const;

/** Why the testbed cannot start here, or null. In CI that is a failure, never a skip. */
export function testbedUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'the namespace testbed needs root (ip netns, losetup)';
  const missing = TESTBED_TOOLS.filter((t) => !has(t));
  if (missing.length > 0) return `missing ${missing.join(', ')} (bash .ci/run installs them)`;
  return null;
}

export interface TestbedNode {
  name: string;
  netns: string;
  address: string;
  /** Bind-mounted at /run/drbd-migrate inside the node: its QMP sockets, pidfiles, serial logs. */
  runDir: string;
}

export interface Testbed {
  dir: string;
  clusterPath: string;
  cluster: ClusterFile;
  nodes: [TestbedNode, TestbedNode];
  loopDevice: string;
  /** The guest's serial log on a node ('' if it never ran there). */
  serial(node: string): string;
  /** Runs a command inside a node's namespace (for the test's own checks and fault injection). */
  inNode(node: string, argv: string[]): string;
  stop(): void;
}

const run = (argv: string[], input?: string) =>
  execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input });
const tryRun = (argv: string[]) => spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });

/** The guest: the ticker by default (16 MiB, idle between ticks); the bench boots larger and busy ones. */
export interface GuestOptions {
  memoryMiB?: number;
  /** The busy ticker (it rewrites 512 KiB of its memory between ticks). */
  busy?: boolean;
}

export async function startTestbed(dir: string, guest: GuestOptions = {}): Promise<Testbed> {
  const memoryMiB = guest.memoryMiB ?? 16;
  const tag = randomBytes(2).toString('hex');
  const subnet = `10.99.${1 + (Number.parseInt(tag, 16) % 250)}`;
  const bridge = `dm${tag}br`;
  const state = {
    netns: [] as string[],
    links: [] as string[],
    pidfiles: [] as string[],
    loop: null as string | null,
  };
  const stop = () => teardown(state);
  try {
    mkdirSync(join(dir, 'ssh'), { recursive: true });
    run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'ssh/client_key')]);
    writeFileSync(join(dir, 'ssh/authorized_keys'), readFileSync(join(dir, 'ssh/client_key.pub')));
    writeFileSync(join(dir, 'ssh/empty_bashrc'), '');
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    mkdirSync('/run/drbd-migrate', { recursive: true });

    run(['ip', 'link', 'add', bridge, 'type', 'bridge']);
    state.links.push(bridge);
    run(['ip', 'addr', 'replace', `${subnet}.254/24`, 'dev', bridge]);
    run(['ip', 'link', 'set', bridge, 'up']);

    const nodes = (['a', 'b'] as const).map((n, i): TestbedNode => {
      const name = `node-${n}`;
      const netns = `dm${tag}-${n}`;
      const address = `${subnet}.${i + 1}`;
      const nodeDir = join(dir, name);
      const runDir = join(nodeDir, 'run');
      mkdirSync(runDir, { recursive: true });
      run(['ip', 'netns', 'add', netns]);
      state.netns.push(netns);
      run(['ip', 'link', 'add', `dm${tag}h${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      state.links.push(`dm${tag}h${n}`);
      run(['ip', 'link', 'set', `dm${tag}h${n}`, 'master', bridge, 'up']);
      run(['ip', '-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      run(['ip', '-n', netns, 'link', 'set', 'eth0', 'up']);
      run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);

      const hostKey = join(nodeDir, 'ssh_host_ed25519_key');
      run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
      const pidfile = join(nodeDir, 'sshd.pid');
      writeFileSync(
        join(nodeDir, 'sshd_config'),
        [
          'Port 22',
          'ListenAddress 0.0.0.0',
          `HostKey ${hostKey}`,
          `PidFile ${pidfile}`,
          `AuthorizedKeysFile ${join(dir, 'ssh/authorized_keys')}`,
          'PermitRootLogin prohibit-password',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'PubkeyAuthentication yes',
          'UsePAM no',
          'StrictModes no',
          'AllowStreamLocalForwarding yes',
          'LogLevel VERBOSE',
          '',
        ].join('\n'),
      );
      // Own hostname and mounts: the node's runtime dir is private to it, and root's .bashrc (which
      // may run slow tools on every command) is replaced by an empty file.
      const bashrc = existsSync('/root/.bashrc')
        ? `mount --bind ${join(dir, 'ssh/empty_bashrc')} /root/.bashrc; `
        : '';
      run([
        'ip',
        'netns',
        'exec',
        netns,
        'unshare',
        '--uts',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `hostname ${name}; mount --bind ${runDir} /run/drbd-migrate; ${bashrc}exec /usr/sbin/sshd -f ${join(nodeDir, 'sshd_config')} -E ${join(nodeDir, 'sshd.log')}`,
      ]);
      // QEMU's pidfile first: teardown kills the guest before the node's sshd.
      state.pidfiles.unshift(join(runDir, 'web1.pid'));
      state.pidfiles.push(pidfile);
      return { name, netns, address, runDir };
    }) as [TestbedNode, TestbedNode];

    // The instance's disk: a loop device over a file, holding the guest's boot sector.
    const image = join(dir, 'shared.raw');
    tickerDisk(dir, image, 4 * 1024 * 1024, guest.busy === true);
    state.loop = run(['losetup', '-f', '--show', image]).trim();
    const loopDevice = state.loop;

    const { cluster, clusterPath } = writeClusterFile(dir, {
      version: 1,
      nodes: nodes.map((n) => ({
        name: n.name,
        address: n.address,
        port: 22,
        user: 'root',
        privateKey: join(dir, 'ssh/client_key'),
        hostKey: pinnedHostKey(join(dir, n.name, 'ssh_host_ed25519_key.pub')),
        replicationAddress: n.address,
      })),
      instances: [
        {
          name: 'web1',
          primary: 'node-a',
          secondary: 'node-b',
          memoryMiB,
          migrationMode: 'live',
          storage: 'blockdev',
          hypervisor: tickerHypervisor(loopDevice, 'tcg', 'web1', memoryMiB),
          disks: [{ name: 'web1-disk0', device: loopDevice }],
        },
      ],
      options: { limits: { stepTimeoutMs: 20_000 } },
    });

    // sshd returns once it has daemonized, before it listens.
    await Promise.all(
      nodes.map((n) =>
        untilFile(
          join(dir, n.name, 'sshd.log'),
          (log) => log.includes('Server listening on 0.0.0.0'),
          `sshd of ${n.name} to listen`,
        ),
      ),
    );
    const byName = (node: string) => {
      const n = nodes.find((x) => x.name === node);
      if (n === undefined) throw new Error(`no testbed node ${node}`);
      return n;
    };
    return {
      dir,
      clusterPath,
      cluster,
      nodes,
      loopDevice,
      serial: (node) => {
        const file = join(byName(node).runDir, 'web1.serial');
        return existsSync(file) ? readFileSync(file, 'utf8') : '';
      },
      inNode: (node, argv) => run(['ip', 'netns', 'exec', byName(node).netns, ...argv]),
      stop,
    };
  } catch (error) {
    stop();
    throw error;
  }
}

function teardown(state: { netns: string[]; links: string[]; pidfiles: string[]; loop: string | null }) {
  for (const f of state.pidfiles) killByPidfile(f);
  for (const l of state.links) tryRun(['ip', 'link', 'del', l]);
  for (const n of state.netns) tryRun(['ip', 'netns', 'del', n]);
  if (state.loop !== null) tryRun(['losetup', '-d', state.loop]);
}

export function removeDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}
