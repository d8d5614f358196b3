import { isIP } from 'node:net';
import { z } from 'zod';
import {
  Convergence,
  InstanceName,
  Limits,
  MAX_BANDWIDTH_MIBPS,
  MigrationMode,
  Minor,
  NodeName,
  ResourceName,
} from '../../machines/index.js';

/**
 * The cluster file: the nodes an operator points drbd-migrate at, and the instances on them. It is
 * also the config store: the commit point rewrites it (atomically, keeping the previous version), so
 * it always names the node where each instance runs.
 */

const Port = z.number().int().min(1).max(65535);
const AbsolutePath = z
  .string()
  .regex(/^\/[A-Za-z0-9._/-]*$/, 'must be an absolute path of letters, digits, ".", "_", "-" and "/"');
const Hostname =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const Address = z
  .string()
  .refine((a) => isIP(a) !== 0 || Hostname.test(a), 'must be an IP address or a host name');
const IpAddress = z.string().refine((a) => isIP(a) !== 0, 'must be an IP address');

export const ClusterNode = z
  .object({
    name: NodeName.describe('The node’s name, as instances refer to it.'),
    address: Address.describe('Where its sshd listens (IP address or host name).'),
    port: Port.default(22).describe('The sshd port.'),
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a plain user name')
      .default('root')
      .describe('The user to log in as (it runs drbdsetup and talks to QEMU).'),
    privateKey: AbsolutePath.optional().describe(
      'Private key file; without it the ssh agent ($SSH_AUTH_SOCK) is used.',
    ),
    hostKey: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'must be an OpenSSH SHA256 fingerprint (ssh-keygen -lf)')
      .optional()
      .describe('The pinned host key fingerprint, SHA256:… as ssh-keygen -lf prints it.'),
    knownHosts: AbsolutePath.optional().describe('A known_hosts file to check the host key against instead.'),
    replicationAddress: IpAddress.describe('The address DRBD replicates over (Ganeti’s secondary IP).'),
    // YAML reads an unquoted 9 or 8.4 as a number: the same version.
    drbd: z
      .preprocess((v) => (typeof v === 'number' ? String(v) : v), z.enum(['8.4', '9']).default('8.4'))
      .describe(
        'The DRBD kernel module’s version on this node: 8.4 (Debian’s, Ganeti’s target) or 9 (its disks then need nodeIds; resources with auto-promote off). A run reads the loaded module from /proc/drbd with the node’s memory and refuses, touching nothing, when it is the other one.',
      ),
    volumeGroup: z
      .string()
      .regex(/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$/, 'must be an LVM volume group name')
      .default('xenvg')
      .describe(
        'The LVM volume group new copies of disks are made in (replace-secondary); Ganeti’s default xenvg.',
      ),
    drained: z
      .boolean()
      .default(false)
      .describe('Marked for maintenance: nothing new is placed there, and no instance moves to it.'),
  })
  .strict()
  .refine((n) => n.hostKey !== undefined || n.knownHosts !== undefined, {
    message: 'needs hostKey or knownHosts: a host key is never trusted on first use',
    path: ['hostKey'],
  });

export const ClusterDisk = z
  .object({
    resource: ResourceName.describe('The DRBD resource name.'),
    minor: Minor.describe('The DRBD minor (/dev/drbdN) on both nodes.'),
    port: Port.describe('The TCP port DRBD replicates this resource over.'),
    sizeMiB: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'The disk’s size, MiB: a new copy of it (replace-secondary) is made this size, with a 128 MiB metadata volume.',
      ),
    metaDisk: z
      .enum(['external', 'internal'])
      .optional()
      .describe(
        'Where a new copy’s DRBD metadata goes (replace-secondary): its own 128 MiB volume NAME_meta (external, Ganeti’s layout; the default), or the end of the data volume NAME_data, then made 128 MiB larger (internal). Copies that exist are read as their resource files say.',
      ),
    nodeIds: z
      .record(NodeName, z.number().int().min(0).max(31))
      .optional()
      .describe(
        'DRBD 9 only: each node’s node-id in this resource, as in its DRBD configuration; name every node the resource has (a tiebreaker too): a new secondary takes the lowest id not named here, and replace-secondary writes it here.',
      ),
  })
  .strict()
  .describe('A DRBD disk (storage: drbd): one resource mirrored between the two nodes.');

/**
 * A node's DRBD 9 node-id in a disk's resource: the one the file names, or for a node the resource
 * does not have yet (a new secondary) the lowest id the file does not name. Undefined on DRBD 8.4
 * (no nodeIds). The same answer for every caller until the replace's commit writes it down.
 */
export function drbdNodeId(disk: z.infer<typeof ClusterDisk>, node: string): number | undefined {
  const ids = disk.nodeIds;
  if (ids === undefined) return undefined;
  const named = ids[node];
  if (named !== undefined) return named;
  const taken = new Set(Object.values(ids));
  let id = 0;
  while (taken.has(id)) id++;
  return id;
}

export const ClusterSharedDisk = z
  .object({
    name: ResourceName.describe('The disk’s name.'),
    device: AbsolutePath.describe(
      'The block device, at the same path on both nodes (a SAN LUN, a multipath device).',
    ),
  })
  .strict()
  .describe('A shared disk (storage: blockdev): one block device both nodes reach.');

export const ClusterHypervisor = z
  .object({
    kind: z.literal('qemu').describe('The hypervisor (QEMU/KVM).'),
    binary: AbsolutePath.describe('The QEMU binary on the nodes.'),
    args: z
      .array(z.string())
      .describe('Its arguments (the same on both nodes; the target adds -incoming defer).'),
    qmpSocket: AbsolutePath.describe('The QMP unix socket on the node, reached through the SSH connection.'),
  })
  .strict();

export const ClusterInstance = z
  .object({
    name: InstanceName.describe('The instance’s name, as the commands take it.'),
    primary: NodeName.describe('The node the instance runs on: rewritten at the commit point.'),
    secondary: NodeName.describe('The node holding the other DRBD replica: where it migrates to.'),
    formerSecondary: NodeName.optional().describe(
      'Written by replace-secondary: a replaced secondary whose copies are still to be removed (it was down, or the replace stopped after its commit).',
    ),
    selfFenceMs: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'DRBD 9 with quorum only: within how many ms a node that lost quorum stops this instance itself (a quorum-lost handler, see cluster.md), counted from when the target sees it gone: the node’s own, possibly later, detection (DRBD’s ping interval and timeout) and the handler must fit in it. With it a failover takes the target’s quorum as proof that a silent source cannot write, and waits this long before starting the instance; without it --source-is-down is needed.',
      ),
    thirdCopy: NodeName.optional().describe(
      'DRBD 9 only: a third node holding a diskful copy of every disk, connected to both of the pair (as LINSTOR places a third replica); its node-id is in every disk’s nodeIds. `migrate --target` and `failover --target` may name it: the commit then makes it the primary, the old primary the secondary and the old secondary the third copy, in one write. A rejoin reconnects the returning node to the survivor and the third copy; replace-secondary joins the new copy to the primary and the third before the old secondary leaves either; replace-third-copy moves it to another node the same way.',
    ),
    formerThirdCopy: NodeName.optional().describe(
      'Written by replace-third-copy: a replaced third copy whose copies are still to be removed (its node was down, or the replace stopped after its commit).',
    ),
    tiebreaker: NodeName.optional().describe(
      'DRBD 9 with quorum only: the node holding the third vote of this instance’s resources, diskless (it holds no copy and never runs the instance); its node-id is in every disk’s nodeIds. Needed with selfFenceMs: with two votes neither side keeps quorum without the other, so nothing would ever prove a silent node cannot write. Errors then say which node to bring back.',
    ),
    memoryMiB: z.number().int().positive().describe('Its memory, MiB.'),
    minMemoryMiB: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Least memory it may be ballooned to; default memoryMiB.'),
    migrationMode: MigrationMode.default('live').describe('How it migrates when the command names no mode.'),
    storage: z
      .enum(['drbd', 'blockdev'])
      .default('drbd')
      .describe(
        'drbd: DRBD mirrors, moved through a dual-master window. blockdev: a block device both nodes reach (Ganeti’s shared-storage migration).',
      ),
    hypervisor: ClusterHypervisor.describe('How its QEMU is started and reached.'),
    disks: z
      .array(z.union([ClusterDisk, ClusterSharedDisk]))
      .min(1)
      .describe('Its disks: DRBD resources, or shared block devices for storage: blockdev.'),
  })
  .strict()
  .superRefine((inst, ctx) => {
    inst.disks.forEach((d, j) => {
      const drbd = 'resource' in d;
      if (drbd !== (inst.storage === 'drbd')) {
        ctx.addIssue({
          code: 'custom',
          path: ['disks', j],
          message:
            inst.storage === 'drbd'
              ? 'a DRBD disk needs resource, minor and port'
              : 'a blockdev disk needs name and device',
        });
      }
    });
  });

export const ClusterFile = z
  .object({
    version: z.literal(1).describe('The format of this file.'),
    nodes: z.array(ClusterNode).min(2).describe('The nodes, at least the two of every instance.'),
    instances: z.array(ClusterInstance).describe('The DRBD-backed instances drbd-migrate may move.'),
    options: z
      .object({
        bandwidthMiBps: Convergence.shape.bandwidthMiBps.optional(),
        downtimeMs: Convergence.shape.downtimeMs.optional(),
        resyncMiBps: z
          .number()
          .positive()
          .max(MAX_BANDWIDTH_MIBPS)
          .optional()
          .describe(
            "The rate a DRBD resync goes at on these links, MiB/s: a drain predicts each new secondary's resync from it (default 100, DRBD's c-max-rate), and a new copy's device (replace-secondary) gets it as a fixed resync rate (c-plan-ahead 0, resync-rate; unset: DRBD's own dynamic controller). An existing device's options are never changed.",
          ),
        convergence: Convergence.omit({ bandwidthMiBps: true, downtimeMs: true })
          .partial()
          .optional()
          .describe(
            'What is done for a live copy that does not converge: stallPasses, downtimeCapMs, autoConverge, postcopy, postcopyAfterPasses (defaults 3, 2000, false, false, 2).',
          ),
        limits: Limits.partial()
          .optional()
          .describe(
            'Deadlines overriding the defaults, each in ms from 1 to 2147483647 (about 24.8 days, the longest timer); unknown keys are refused.',
          ),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((file, ctx) => {
    const nodes = new Set<string>();
    file.nodes.forEach((n, i) => {
      if (nodes.has(n.name))
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', i, 'name'],
          message: `node ${n.name} is defined twice`,
        });
      nodes.add(n.name);
    });
    const names = new Set<string>();
    const resources = new Set<string>();
    const used = new Map<string, string>();
    file.instances.forEach((inst, i) => {
      const at = (...p: (string | number)[]) => ['instances', i, ...p];
      if (names.has(inst.name))
        ctx.addIssue({ code: 'custom', path: at('name'), message: `instance ${inst.name} is defined twice` });
      names.add(inst.name);
      for (const key of ['primary', 'secondary'] as const) {
        if (!nodes.has(inst[key]))
          ctx.addIssue({ code: 'custom', path: at(key), message: `${inst[key]} is not a node of this file` });
      }
      // A mixed pair cannot replicate: DRBD 9.2 speaks protocols 118-123, 8.4 86-101 (/proc/drbd of each).
      const families = new Set(
        [inst.primary, inst.secondary].map((n) => file.nodes.find((x) => x.name === n)?.drbd),
      );
      if (inst.storage === 'drbd' && families.size > 1) {
        ctx.addIssue({
          code: 'custom',
          path: at('secondary'),
          message: `${inst.primary} and ${inst.secondary} run different DRBD (8.4 and 9): their resources cannot connect (DRBD 9.2 speaks protocols 118-123, 8.4 86-101); upgrade both nodes of ${inst.name} before it is moved`,
        });
      }
      // Quorum, and so a self-fence bound, exist on DRBD 9 only.
      if (
        inst.selfFenceMs !== undefined &&
        [inst.primary, inst.secondary].some((n) => file.nodes.find((x) => x.name === n)?.drbd !== '9')
      ) {
        ctx.addIssue({
          code: 'custom',
          path: at('selfFenceMs'),
          message: `needs DRBD 9 on ${inst.primary} and ${inst.secondary} (quorum is DRBD 9's): set their "drbd" to "9", or leave selfFenceMs out`,
        });
      }
      const tiebreaker = inst.tiebreaker;
      if (tiebreaker !== undefined) {
        if (
          !nodes.has(tiebreaker) ||
          [inst.primary, inst.secondary, inst.formerSecondary].includes(tiebreaker)
        )
          ctx.addIssue({
            code: 'custom',
            path: at('tiebreaker'),
            message: `${tiebreaker} must be a node of this file other than the primary, the secondary and a former secondary (a tiebreaker holds no copy)`,
          });
        else if (file.nodes.find((x) => x.name === tiebreaker)?.drbd !== '9' || families.has('8.4'))
          ctx.addIssue({
            code: 'custom',
            path: at('tiebreaker'),
            message: `needs DRBD 9 on ${tiebreaker}, ${inst.primary} and ${inst.secondary} (a diskless tiebreaker is DRBD 9's, 9.0.18 or later): set their "drbd" to "9", or leave tiebreaker out`,
          });
      }
      // Two votes: a node cut from its peer keeps no majority, on either side, so a target's quorum
      // could never prove anything; the bound would only promise a failover that is always refused.
      if (
        inst.selfFenceMs !== undefined &&
        tiebreaker === undefined &&
        families.has('9') &&
        families.size === 1
      ) {
        ctx.addIssue({
          code: 'custom',
          path: at('selfFenceMs'),
          message: `needs a tiebreaker: with two votes, ${inst.primary} and ${inst.secondary} each lose quorum without the other, so quorum never proves a silent node cannot write; name the resource's diskless third node in tiebreaker`,
        });
      }
      const third = inst.thirdCopy;
      if (third !== undefined) {
        if (
          !nodes.has(third) ||
          [inst.primary, inst.secondary, inst.formerSecondary, inst.tiebreaker].includes(third)
        )
          ctx.addIssue({
            code: 'custom',
            path: at('thirdCopy'),
            message: `${third} must be a node of this file other than the primary, the secondary, a former secondary and the tiebreaker`,
          });
        else if (file.nodes.find((x) => x.name === third)?.drbd !== '9' || families.has('8.4'))
          ctx.addIssue({
            code: 'custom',
            path: at('thirdCopy'),
            message: `needs DRBD 9 on ${third}, ${inst.primary} and ${inst.secondary} (8.4 connects two copies only): set their "drbd" to "9", or leave thirdCopy out`,
          });
        inst.disks.forEach((d, j) => {
          if ('resource' in d && d.nodeIds?.[third] === undefined)
            ctx.addIssue({
              code: 'custom',
              path: at('disks', j, 'nodeIds'),
              message: `nodeIds must give the node-id of the third copy ${third} too`,
            });
        });
      }
      if (
        inst.formerThirdCopy !== undefined &&
        (inst.thirdCopy === undefined ||
          !nodes.has(inst.formerThirdCopy) ||
          [inst.primary, inst.secondary, inst.thirdCopy, inst.tiebreaker].includes(inst.formerThirdCopy))
      ) {
        ctx.addIssue({
          code: 'custom',
          path: at('formerThirdCopy'),
          message: `${inst.formerThirdCopy} must be a node of this file other than the instance's copies and tiebreaker, beside a thirdCopy`,
        });
      }
      if (
        inst.formerSecondary !== undefined &&
        (!nodes.has(inst.formerSecondary) || [inst.primary, inst.secondary].includes(inst.formerSecondary))
      ) {
        ctx.addIssue({
          code: 'custom',
          path: at('formerSecondary'),
          message: `${inst.formerSecondary} must be a node of this file other than the primary and the secondary`,
        });
      }
      if (inst.primary === inst.secondary) {
        ctx.addIssue({
          code: 'custom',
          path: at('secondary'),
          message: 'primary and secondary must be two different nodes',
        });
      }
      inst.disks.forEach((d, j) => {
        if (!('resource' in d)) return;
        if (resources.has(d.resource)) {
          ctx.addIssue({
            code: 'custom',
            path: at('disks', j, 'resource'),
            message: `resource ${d.resource} is used twice`,
          });
        }
        resources.add(d.resource);
        const drbd9 = file.nodes.some(
          (n) => n.drbd === '9' && (n.name === inst.primary || n.name === inst.secondary),
        );
        const ids = Object.values(d.nodeIds ?? {});
        if (new Set(ids).size !== ids.length) {
          ctx.addIssue({
            code: 'custom',
            path: at('disks', j, 'nodeIds'),
            message: 'two nodes have the same node-id',
          });
        }
        if (drbd9 && tiebreaker !== undefined && d.nodeIds?.[tiebreaker] === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: at('disks', j, 'nodeIds'),
            message: `nodeIds must give the node-id of the tiebreaker ${tiebreaker} too (a new secondary must not take its id)`,
          });
        }
        if (drbd9 && [inst.primary, inst.secondary].some((n) => d.nodeIds?.[n] === undefined)) {
          ctx.addIssue({
            code: 'custom',
            path: at('disks', j, 'nodeIds'),
            message: `a node of ${inst.name} runs DRBD 9: nodeIds must give the node-id of ${inst.primary} and ${inst.secondary}`,
          });
        }
        // A former secondary's device still holds its minor and port until it is removed.
        const holders = [
          inst.primary,
          inst.secondary,
          ...(inst.formerSecondary ? [inst.formerSecondary] : []),
          ...(inst.thirdCopy ? [inst.thirdCopy] : []),
          ...(inst.formerThirdCopy ? [inst.formerThirdCopy] : []),
        ];
        for (const node of holders) {
          for (const [what, value] of [
            ['minor', d.minor],
            ['port', d.port],
          ] as const) {
            const key = `${node}/${what}/${value}`;
            const other = used.get(key);
            if (other !== undefined) {
              ctx.addIssue({
                code: 'custom',
                path: at('disks', j, what),
                message: `${what} ${value} on ${node} is already used by ${other}`,
              });
            }
            used.set(key, d.resource);
          }
        }
      });
    });
  });

export type ClusterFile = z.infer<typeof ClusterFile>;
export type ClusterNode = z.infer<typeof ClusterNode>;
export type ClusterInstance = z.infer<typeof ClusterInstance>;
