import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClusterFile, loadCluster } from '../../src/cluster/index.js';
import { QemuNode } from '../../src/drivers/qemu.js';
import { QmpSession } from '../../src/drivers/qmp.js';
import { freePorts } from '../../src/net/ports.js';
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
 * Tier B of the real testbed (../shared/reference/testbed-notes.md §4, testbed-nested.md): node VMs
 * under QEMU/TCG booting Debian's kernel, whose DRBD replicates the resource between node-a and
 * node-b over emulated links: the in-tree DRBD 8.4.11, or DRBD 9 built from LINBIT's source for that
 * kernel (../shared/drbd9/BUILD.md), with node-c its diskless tiebreaker; or DRBD 8.4 with node-c a
 * spare and every disk an LVM volume group (DrbdTestbedOptions). Each runs sshd and a QEMU of its
 * own, which runs the instance (the ticking boot-sector guest) from /dev/drbd0. Nothing needs root:
 * the VMs' management links are QEMU user networks with a host port forwarded to sshd on 127.0.0.1,
 * each DRBD link a UDP socket pair between two QEMUs on 127.0.0.1. Teardown kills the VMs by pidfile.
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
  '/usr/sbin/lvm',
  '/usr/share/seabios/bios-256k.bin',
  '/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so',
  'as',
  'ld',
] as const;

/** The DRBD kernel the node VMs boot with. */
export type DrbdKernel = '8.4' | '9';

/** What building the DRBD 9 module needs besides the kernel's headers (checked by the build). */
const DRBD9_BUILD_TOOLS = ['make', 'gcc', 'spatch', 'strip', 'sha256sum'] as const;

const here = fileURLToPath(new URL('.', import.meta.url));

/**
 * LINBIT's DRBD 9 source tarball: DRBD_MIGRATE_DRBD9_SOURCE, else the one drbd-9*.tar.gz in
 * ../shared/drbd9/ beside the checkout (where CI keeps it, read-only), or beside the local
 * repository it was cloned from (a clone made in a temporary folder). Null when there is none.
 */
export function drbd9Source(): string | null {
  const given = process.env.DRBD_MIGRATE_DRBD9_SOURCE;
  if (given !== undefined && given !== '') return existsSync(given) ? resolve(given) : null;
  const checkout = resolve(here, '../..');
  const origin = spawnSync('git', ['-C', checkout, 'config', '--get', 'remote.origin.url'], {
    encoding: 'utf8',
  });
  const bases = [
    checkout,
    ...(origin.status === 0 && origin.stdout.startsWith('/') ? [origin.stdout.trim()] : []),
  ];
  for (const base of bases) {
    const folder = resolve(base, '../shared/drbd9');
    if (!existsSync(folder)) continue;
    const tarballs = readdirSync(folder).filter((f) => /^drbd-9.*\.tar\.gz$/.test(f));
    if (tarballs.length === 1) return join(folder, tarballs[0]!);
  }
  return null;
}

/** Why the DRBD VMs cannot start here, or null. In CI that is a failure, never a skip. */
export function drbdTestbedUnavailable(kernel: DrbdKernel = '8.4'): string | null {
  const tools = kernel === '9' ? [...DRBD_TESTBED_TOOLS, ...DRBD9_BUILD_TOOLS] : DRBD_TESTBED_TOOLS;
  const missing = tools.filter((t) => !has(t));
  if (missing.length > 0) return `missing ${missing.join(', ')} (bash .ci/run installs them)`;
  // The VMs' userland is copied from this host; busybox must need no libraries (ldd fails on it).
  if (spawnSync('ldd', ['/bin/busybox']).status === 0) return '/bin/busybox is not busybox-static';
  if (kernel === '9' && drbd9Source() === null) {
    return 'no DRBD 9 source tarball: set DRBD_MIGRATE_DRBD9_SOURCE, or keep one drbd-9*.tar.gz in ../shared/drbd9/';
  }
  return null;
}

export const RESOURCE = 'web1-disk0';
/** A second instance's resource, configured in every node but brought up only by the test using it. */
export const SECOND_RESOURCE = 'web2-disk0';
export type NodeName = 'node-a' | 'node-b' | 'node-c' | 'node-d';
/** Each node's host number on its links, and the last byte of its NICs' MACs. */
const HOST: Record<NodeName, { n: number; mac: string }> = {
  'node-a': { n: 1, mac: '0a' },
  'node-b': { n: 2, mac: '0b' },
  'node-c': { n: 3, mac: '0c' },
  'node-d': { n: 4, mac: '0d' },
};
/**
 * The DRBD links, one per pair of nodes, each its own NIC (MAC 52:54:00:99:ID:NODE) and subnet, so a
 * test can cut one pair and not the others. node-c (DRBD 9 only) is the diskless tiebreaker.
 */
const LINKS = [
  { id: '01', ends: ['node-a', 'node-b'], subnet: '10.99.1' },
  { id: '03', ends: ['node-a', 'node-c'], subnet: '10.99.2' },
  { id: '04', ends: ['node-b', 'node-c'], subnet: '10.99.3' },
  { id: '05', ends: ['node-a', 'node-d'], subnet: '10.99.4' },
  { id: '06', ends: ['node-b', 'node-d'], subnet: '10.99.5' },
  { id: '07', ends: ['node-c', 'node-d'], subnet: '10.99.6' },
] as const satisfies readonly { id: string; ends: readonly [NodeName, NodeName]; subnet: string }[];
type Link = (typeof LINKS)[number];
const addressOn = (link: Link, node: NodeName) => `${link.subnet}.${HOST[node].n}`;
/**
 * How a testbed is laid out beyond its DRBD version. `spare`: node-c is a third diskful node that
 * holds no copy yet, the place a secondary is replaced to (on DRBD 9 instead of the tiebreaker: the
 * resources have no quorum); every node's disk is an LVM volume group (xenvg) with each resource's
 * data and metadata volumes in it, named as the backend names a new copy's, and each node has one
 * replication address on all its links (Ganeti's secondary IP), reached by the pair's own link. On
 * DRBD 9 the metadata has bitmap slots for further peers (create-md --max-peers), which a new peer
 * needs.
 *
 * `tiebreaker` (DRBD 9, with `spare`): a fourth node, node-d, the resources' diskless tiebreaker,
 * with quorum, named in the cluster file: a replace onto node-c rewires it.
 *
 * `secondSpare` (DRBD 9, with `spare`, not with `tiebreaker`): a fourth node, node-d, a second
 * diskful spare (its volume group, no copy): a three-copy instance's secondary is replaced onto it.
 */
export interface DrbdTestbedOptions {
  spare?: boolean;
  tiebreaker?: boolean;
  secondSpare?: boolean;
}

/** The nodes a testbed boots: DRBD 9's has the tiebreaker, a spare testbed the spare. */
export const testbedNodes = (kernel: DrbdKernel, options: DrbdTestbedOptions = {}): NodeName[] =>
  kernel === '9' && options.spare === true && (options.tiebreaker === true || options.secondSpare === true)
    ? ['node-a', 'node-b', 'node-c', 'node-d']
    : kernel === '9' || options.spare === true
      ? ['node-a', 'node-b', 'node-c']
      : ['node-a', 'node-b'];
const linksOf = (kernel: DrbdKernel, options: DrbdTestbedOptions = {}) =>
  LINKS.filter((l) => l.ends.every((n) => testbedNodes(kernel, options).includes(n)));
/** A spare testbed's one replication address per node. */
const replicationAddress = (node: NodeName) => `10.99.0.${HOST[node].n}`;
/** The volume group of a spare testbed's nodes, and each resource's size there (MiB). */
export const VOLUME_GROUP = 'xenvg';
const VOLUME_MIB: Record<string, number> = { 'web1-disk0': 64, 'web2-disk0': 16 };

export interface DrbdTestbed {
  dir: string;
  clusterPath: string;
  cluster: ClusterFile;
  /** The node VMs, node-a and node-b holding the disks (and node-c, DRBD 9's diskless tiebreaker). */
  nodes: NodeName[];
  /** Runs a command on a node over SSH (the test's own checks and set-up). */
  exec(
    node: NodeName,
    argv: string[],
    okCodes?: number[],
  ): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Brings a resource up as an operator would: in sync, node-a primary, the ticker on it. */
  up(resource: string, minor: number): Promise<void>;
  /**
   * Cuts a node off, or takes it back, from outside (its QEMU's QMP `set_link`): its DRBD links and,
   * with `management`, its management link too (then nothing reaches it, SSH included).
   */
  setLinks(node: NodeName, up: boolean, management: boolean): Promise<void>;
  /** The node VM loses power (SIGKILL by its pidfile): no shutdown, its disk as the crash left it. */
  powerOff(node: NodeName): void;
  /** The node VM boots again from the same disk; resolves once sshd listens. */
  powerOn(node: NodeName): Promise<void>;
  stop(): void;
}

const run = (argv: string[]) =>
  execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * Debian's kernel and the node modules, downloaded once into a cache folder; for DRBD 9 a copy of
 * that module tree with the module built from source (once per kernel and tarball) ranked first.
 */
export function prepareKernel(kernel: DrbdKernel = '8.4'): string {
  const cache = process.env.DRBD_MIGRATE_TESTBED_CACHE ?? join(homedir(), '.cache/drbd-migrate/testbed');
  mkdirSync(cache, { recursive: true });
  const debian = run([join(here, 'vm/prepare-kernel.sh'), cache]).trim();
  if (kernel === '8.4') return debian;
  const source = drbd9Source();
  if (source === null) throw new Error(drbdTestbedUnavailable('9') ?? 'no DRBD 9 source tarball');
  return run([join(here, 'vm/build-drbd9.sh'), cache, debian, source]).trim();
}

/** Each node's DRBD node-id (DRBD 9; 8.4 has none). */
export const NODE_IDS: Record<NodeName, number> = { 'node-a': 0, 'node-b': 1, 'node-c': 2, 'node-d': 3 };
/** The node-ids a disk of the instance names in the cluster file: its two diskful nodes'. */
export const DISK_NODE_IDS = { 'node-a': NODE_IDS['node-a'], 'node-b': NODE_IDS['node-b'] };
/** Those and the tiebreaker's (node-c on DRBD 9's own testbed, node-d beside a spare). */
const diskNodeIds = (kernel: DrbdKernel, options: DrbdTestbedOptions) => {
  const tiebreaker = testbedNodes(kernel, options).find((n) =>
    options.spare === true ? n === 'node-d' && options.tiebreaker === true : n === 'node-c',
  );
  return tiebreaker === undefined ? DISK_NODE_IDS : { ...DISK_NODE_IDS, [tiebreaker]: NODE_IDS[tiebreaker] };
};

/** What DRBD's own waits are called: 8.4's drbdsetup takes a minor, 9's a resource. */
export const drbdWait = (kernel: DrbdKernel, what: 'connect' | 'sync', resource: string, minor: number) =>
  kernel === '8.4'
    ? ['/lib/drbd/drbdsetup-84', `wait-${what}`, String(minor), '--wfc-timeout=60']
    : ['drbdsetup', `wait-${what}-resource`, resource, '--wfc-timeout=60'];

/**
 * The resources as an operator sets them up, without two primaries (the library turns them on and
 * off). DRBD 9's is written as LINSTOR writes its resource files: node-ids, volumes, the addresses in
 * a connection section per pair, auto-promote off (a Secondary's open must not promote it), quorum
 * with node-c as the diskless tiebreaker and I/O errors without it, and a quorum-lost handler that
 * stops the instance and demotes (vm/quorum-lost: the self-fence a failover may wait out).
 */
function resourceFile(kernel: DrbdKernel, options: DrbdTestbedOptions = {}): string {
  const resources = [
    { name: RESOURCE, minor: 0, disk: '/dev/vda', port: 7789 },
    { name: SECOND_RESOURCE, minor: 1, disk: '/dev/vdb', port: 7790 },
  ];
  const ab = LINKS[0];
  // A spare testbed's copies are LVM volumes, the metadata on its own (as the backend makes a copy).
  const storage = (r: (typeof resources)[number]) =>
    options.spare === true
      ? `disk /dev/${VOLUME_GROUP}/${r.name}_data; meta-disk /dev/${VOLUME_GROUP}/${r.name}_meta;`
      : `disk ${r.disk}; meta-disk internal;`;
  const address = (n: NodeName) => (options.spare === true ? replicationAddress(n) : addressOn(ab, n));
  if (kernel === '9' && options.spare === true) {
    // With the tiebreaker: node-d diskless, connected to both copies, and quorum.
    const tiebreaker = options.tiebreaker === true;
    const pairs: (readonly NodeName[])[] = tiebreaker
      ? [ab.ends, ['node-a', 'node-d'], ['node-b', 'node-d']]
      : [ab.ends];
    return resources
      .map(
        (r) => `resource ${r.name} {
  options { auto-promote no;${tiebreaker ? ' quorum majority; on-no-quorum io-error;' : ''} }
  disk { c-plan-ahead 0; resync-rate 100M; }
  net { protocol C; }
${ab.ends.map((n) => `  on ${n} {\n    node-id ${NODE_IDS[n]};\n    volume 0 { device minor ${r.minor}; ${storage(r)} }\n  }`).join('\n')}
${tiebreaker ? `  on node-d {\n    node-id ${NODE_IDS['node-d']};\n    volume 0 { device minor ${r.minor}; disk none; }\n  }\n` : ''}${pairs
  .map(
    (pair) =>
      `  connection {\n${pair.map((n) => `    host ${n} address ipv4 ${address(n)}:${r.port};`).join('\n')}\n  }`,
  )
  .join('\n')}
}
`,
      )
      .join('');
  }
  return resources
    .map((r) =>
      kernel === '8.4'
        ? `resource ${r.name} {
  disk { c-plan-ahead 0; resync-rate 100M; }
  net { protocol C; }
${ab.ends.map((n) => `  on ${n} { device /dev/drbd${r.minor}; ${storage(r)} address ${address(n)}:${r.port}; }`).join('\n')}
}
`
        : `resource ${r.name} {
  options { auto-promote no; quorum majority; on-no-quorum io-error; }
  handlers { quorum-lost "/usr/lib/drbd-migrate/quorum-lost"; }
  disk { c-plan-ahead 0; resync-rate 100M; }
  net { protocol C; }
${testbedNodes(kernel)
  .map(
    (n) =>
      `  on ${n} {\n    node-id ${NODE_IDS[n]};\n    volume 0 { device minor ${r.minor}; ${n === 'node-c' ? 'disk none;' : `disk ${r.disk}; meta-disk internal;`} }\n  }`,
  )
  .join('\n')}
${linksOf(kernel)
  .map(
    (l) =>
      `  connection {\n${l.ends.map((n) => `    host ${n} address ipv4 ${addressOn(l, n)}:${r.port};`).join('\n')}\n  }`,
  )
  .join('\n')}
}
`,
    )
    .join('');
}

export async function startDrbdTestbed(
  dir: string,
  kernel: DrbdKernel = '8.4',
  options: DrbdTestbedOptions = {},
): Promise<DrbdTestbed> {
  const spare = options.spare === true;
  /** node-d holds a disk: a second spare, not the tiebreaker. */
  const spareD = spare && options.secondSpare === true;
  const pidfiles: string[] = [];
  const shells = new Map<NodeName, SshNode>();
  const stop = () => {
    for (const s of shells.values()) s.close();
    for (const f of pidfiles) killByPidfile(f);
  };
  try {
    const kernelDir = prepareKernel(kernel);
    const ssh = join(dir, 'ssh');
    mkdirSync(ssh, { recursive: true });
    run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(ssh, 'client_key')]);
    writeFileSync(join(ssh, 'authorized_keys'), readFileSync(join(ssh, 'client_key.pub')));
    const nodes = testbedNodes(kernel, options);
    for (const n of nodes) {
      run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(ssh, `host_${n}`)]);
    }
    writeFileSync(join(dir, 'drbd.conf'), resourceFile(kernel, options));
    buildTicker(dir);
    // DRBD 9's transport module pulls in drbd itself (and the compat handshake module).
    run([join(here, 'vm/build-initrd.sh'), kernelDir, dir, kernel === '9' ? 'drbd_transport_tcp' : 'drbd']);
    const kv = kernelDir.split('/').at(-1)!;
    const vmlinuz = join(kernelDir, 'root/boot', `vmlinuz-${kv}`);

    // Each DRBD link: UDP between two QEMUs on 127.0.0.1, so that either side can lose power and
    // boot again without the other's QEMU having to reconnect.
    const links = linksOf(kernel, options);
    const ends = links.flatMap((l) => l.ends.map((n) => `${l.id}/${n}`));
    const picked = await freePorts(ends.length + nodes.length);
    const linkPorts = new Map(ends.map((end, i) => [end, picked[i]!]));
    const sshPorts = {} as Record<NodeName, number>;
    for (const [i, n] of nodes.entries()) sshPorts[n] = picked[ends.length + i]!;
    // A spare testbed's node has one disk, its volume group (sparse: the metadata volumes are 128 MiB).
    const diskFiles = (node: NodeName): (readonly [string, string])[] =>
      node === 'node-d' && !spareD
        ? []
        : spare
          ? [[`${node}.raw`, '1G']]
          : node === 'node-c'
            ? []
            : [
                [`${node}.raw`, '64M'],
                [`${node}-2.raw`, '16M'],
              ];
    for (const node of nodes) {
      pidfiles.push(join(dir, `${node}.pid`));
      for (const [file, size] of diskFiles(node)) {
        writeFileSync(join(dir, file), '');
        run(['truncate', '-s', size, join(dir, file)]);
      }
    }
    const vm = (node: NodeName) => {
      const pidfile = join(dir, `${node}.pid`);
      const console = join(dir, `${node}.console`);
      writeFileSync(console, '');
      const { mac } = HOST[node];
      const own = links.filter((l) => (l.ends as readonly NodeName[]).includes(node));
      const nics = own.flatMap((l) => {
        const peer = l.ends[0] === node ? l.ends[1] : l.ends[0];
        const side = `udp=127.0.0.1:${linkPorts.get(`${l.id}/${peer}`)},localaddr=127.0.0.1:${linkPorts.get(`${l.id}/${node}`)}`;
        return [
          '-netdev',
          `socket,id=drbd${l.id},${side}`,
          '-device',
          `virtio-net-pci,netdev=drbd${l.id},mac=52:54:00:99:${l.id}:${mac}`,
        ];
      });
      const disks = diskFiles(node).flatMap(([f]) => [
        '-drive',
        `file=${join(dir, f)},format=raw,if=virtio,cache=none,aio=threads`,
      ]);
      const addresses = own
        .map((l) => {
          const peer = l.ends[0] === node ? l.ends[1] : l.ends[0];
          return spare
            ? `${l.id}:${replicationAddress(node)}/32@${replicationAddress(peer)}`
            : `${l.id}:${addressOn(l, node)}/24`;
        })
        .join(',');
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
        `console=ttyS0 panic=-1 quiet dm.node=${node} dm.links=${addresses} dm.mac=${mac}${spare ? ' dm.helper=/bin/true' : ''}`,
        '-chardev',
        `file,id=con,path=${console}`,
        '-serial',
        'chardev:con',
        '-pidfile',
        pidfile,
        '-qmp',
        `unix:${join(dir, `${node}.qmp`)},server=on,wait=off`,
        '-daemonize',
        ...disks,
        ...nics,
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
    await Promise.all(nodes.map((n) => booted(n, vm(n))));

    const { cluster, clusterPath } = writeClusterFile(dir, {
      version: 1,
      nodes: nodes.map((n) => ({
        name: n,
        address: '127.0.0.1',
        port: sshPorts[n],
        user: 'root',
        privateKey: join(ssh, 'client_key'),
        hostKey: pinnedHostKey(join(ssh, `host_${n}.pub`)),
        replicationAddress: spare
          ? replicationAddress(n)
          : addressOn(n === 'node-c' ? LINKS[1] : LINKS[0], n),
        drbd: kernel,
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
          disks: [
            {
              resource: RESOURCE,
              minor: 0,
              port: 7789,
              // With the tiebreaker its node-id too: a new secondary must not take it.
              ...(kernel === '9' ? { nodeIds: diskNodeIds(kernel, options) } : {}),
              ...(spare ? { sizeMiB: VOLUME_MIB[RESOURCE]! } : {}),
            },
          ],
          // DRBD 9's quorum-lost handler stops the guest once the cut-off node notices (DRBD's ping
          // interval and timeout, seconds) and the handler ran: 20 s covers both here.
          ...(kernel === '9' && !spare ? { selfFenceMs: 20_000, tiebreaker: 'node-c' } : {}),
          ...(nodes.includes('node-d') && !spareD ? { tiebreaker: 'node-d' } : {}),
        },
      ],
      // Everything runs under TCG here, the nested QEMU inside TCG: generous step deadlines. A spare
      // testbed's new copies resync at the rate its resource file gives the first pair.
      options: { limits: { stepTimeoutMs: 60_000 }, ...(spare ? { resyncMiBps: 100 } : {}) },
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

    // A spare testbed's volume groups, and the copies of the resources on node-a and node-b in them.
    if (spare) {
      await Promise.all(
        nodes
          .filter((n) => n !== 'node-d' || spareD)
          .map((n) =>
            exec(n, [
              'sh',
              '-c',
              [
                `pvcreate -q /dev/vda && vgcreate -q ${VOLUME_GROUP} /dev/vda`,
                ...(n === 'node-c' || n === 'node-d'
                  ? []
                  : Object.entries(VOLUME_MIB).flatMap(([r, mib]) => [
                      `lvcreate -q -y -L ${mib}m -n ${r}_data ${VOLUME_GROUP}`,
                      `lvcreate -q -y -L 128m -n ${r}_meta ${VOLUME_GROUP}`,
                    ])),
              ].join(' && '),
            ]),
          ),
      );
    }

    // A resource as an operator leaves it: connected, node-a primary, in sync, the guest's boot
    // sector on it (the tiebreaker, or the spare, has no copy to set up).
    const up: DrbdTestbed['up'] = async (resource, minor) => {
      await Promise.all(
        nodes
          .filter((n) => !(spare && (n === 'node-c' || (n === 'node-d' && spareD))))
          .map((n) =>
            exec(n, [
              'sh',
              '-c',
              // The tiebreaker: diskless.
              n === 'node-d' || (n === 'node-c' && !spare)
                ? `drbdadm up ${resource}`
                : `drbdadm create-md --force${kernel === '9' && spare ? ' --max-peers=7' : ''} ${resource} && drbdadm up ${resource}`,
            ]),
          ),
      );
      await exec('node-a', drbdWait(kernel, 'connect', resource, minor));
      await exec('node-a', ['drbdadm', 'primary', '--force', resource]);
      await exec('node-b', drbdWait(kernel, 'sync', resource, minor));
      await exec('node-a', ['dd', 'if=/ticker.bin', `of=/dev/drbd${minor}`, 'oflag=direct', 'status=none']);
    };
    await up(RESOURCE, 0);

    const powerOff = (node: NodeName) => {
      shells.get(node)?.close();
      shells.delete(node);
      killByPidfile(join(dir, `${node}.pid`));
    };
    const powerOn = (node: NodeName) => booted(node, vm(node));
    const setLinks: DrbdTestbed['setLinks'] = async (node, on, management) => {
      const socket = connect(join(dir, `${node}.qmp`));
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const qmp = await new QmpSession(socket, `${node}'s QEMU`).open();
      try {
        const ids = links
          .filter((l) => (l.ends as readonly NodeName[]).includes(node))
          .map((l) => `drbd${l.id}`);
        for (const name of [...ids, ...(management ? ['mgmt'] : [])]) {
          await qmp.execute('set_link', { name, up: on });
        }
      } finally {
        socket.destroy();
      }
    };
    return { dir, clusterPath, cluster, nodes, exec, up, setLinks, powerOff, powerOn, stop };
  } catch (error) {
    stop();
    throw error;
  }
}

/**
 * web2, a second instance as an operator sets one up: its resource up and in sync, node-a primary,
 * node-b secondary, named in the cluster file (node-ids on DRBD 9, a size on a spare testbed), its
 * guest started on node-a.
 */
export async function addSecondInstance(tb: DrbdTestbed): Promise<void> {
  await tb.up(SECOND_RESOURCE, 1);
  const cluster = await loadCluster(tb.clusterPath);
  const first = cluster.instances[0]!;
  const kernel = cluster.nodes[0]!.drbd;
  const spare = first.disks.some((d) => 'sizeMiB' in d && d.sizeMiB !== undefined);
  const web2 = {
    ...first,
    name: 'web2',
    primary: 'node-a',
    secondary: 'node-b',
    hypervisor: tickerHypervisor('/dev/drbd1', 'tcg,tb-size=64', 'web2'),
    disks: [
      {
        resource: SECOND_RESOURCE,
        minor: 1,
        port: 7790,
        // Its tiebreaker's node-id too, where the first instance names one.
        ...(kernel === '9'
          ? {
              nodeIds: {
                ...DISK_NODE_IDS,
                ...(first.tiebreaker === undefined
                  ? {}
                  : { [first.tiebreaker]: NODE_IDS[first.tiebreaker as NodeName] }),
              },
            }
          : {}),
        ...(spare ? { sizeMiB: VOLUME_MIB[SECOND_RESOURCE]! } : {}),
      },
    ],
  };
  writeFileSync(
    tb.clusterPath,
    JSON.stringify({ ...cluster, instances: [...cluster.instances, web2] }, null, 2),
  );
  const guest = new QemuNode(new SshNode(tb.cluster.nodes[0]!), web2.hypervisor);
  await guest.start(false, 60_000);
  guest.shell.close();
}
