import type { EffectName } from '../../machines/index.js';
import { META_MIB } from '../../machines/index.js';
import { type ClusterFile, type ClusterInstance, drbdNodeId } from '../cluster/index.js';
import { drbdDrivers } from '../drivers/drbd.js';
import { selfFenceRead } from '../drivers/drbd9.js';
import type { DrbdLink } from '../drivers/drbd84.js';
import { lvm, volumePath } from '../drivers/lvm.js';
import { nodeInfoCommand, resyncHelperCommand } from '../drivers/node.js';
import { incomingCommands, startCommand, tuningCommands, waitExitCommand } from '../drivers/qemu.js';
import type { WorldSpec } from '../sim/index.js';
import { shellLine } from '../ssh/shell.js';

/**
 * What the SSH backend would run for one effect call, node by node: the exact shell lines, and the
 * QMP commands it would send through the node's SSH connection. Reads (query-*) are listed where the
 * backend may make them; whether it does depends on what it finds (no QEMU, no QMP socket to read). Used by --dry-run, which drives the
 * machine on a simulated copy of the cluster file and prints this for every call.
 */

/** How long one of attachNet's waits for the connection lasts before it looks again. */
export const ATTACH_ROUND_MS = 5_000;

export interface PlannedCommand {
  node: string;
  /** A shell line run over SSH, or a QMP command sent to the socket. */
  kind: 'sh' | 'qmp' | 'file';
  text: string;
}

type AnyInput = {
  instance: string;
  node?: string;
  nodes?: string[];
  only?: string;
  drained?: boolean;
  former?: string;
  peer?: string;
  multimaster?: boolean;
  discardOn?: string;
  live?: boolean;
  success?: boolean;
  target?: string;
  timeoutMs: number;
  memoryMiB?: number;
  postcopy?: boolean;
  bandwidthMiBps?: number;
  calcSeconds?: number;
  samplePages?: number;
  downtimeMs?: number;
  prepare?: { autoConverge: boolean; postcopy: boolean };
  throttle?: true;
};

export function plannedCommands(
  cluster: ClusterFile,
  clusterPath: string,
  effect: EffectName,
  input: AnyInput,
): PlannedCommand[] {
  if (effect === 'listInstances' || effect === 'listNodes' || effect === 'takeoverLoad')
    return [{ node: 'config', kind: 'file', text: `read ${clusterPath}` }];
  if (effect === 'setNodeDrained')
    return [
      {
        node: 'config',
        kind: 'file',
        text: `rewrite ${clusterPath} (${input.node} drained: ${input.drained}), keep ${clusterPath}.prev`,
      },
    ];
  if (effect === 'nodeStorage' && input.node !== undefined) {
    const vg = cluster.nodes.find((n) => n.name === input.node)?.volumeGroup ?? 'xenvg';
    return [{ node: input.node, kind: 'sh', text: shellLine(lvm.report(vg)) }];
  }
  const inst = cluster.instances.find((i) => i.name === input.instance);
  if (inst === undefined) return [];
  const nodes = input.nodes ?? (input.node === undefined ? [] : [input.node]);
  const sh = (node: string, argv: readonly string[]): PlannedCommand => ({
    node,
    kind: 'sh',
    text: shellLine(argv),
  });
  const qmp = (node: string, command: string, args?: unknown): PlannedCommand => ({
    node,
    kind: 'qmp',
    text: `${inst.hypervisor.qmpSocket} ${JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }) })}`,
  });
  // A link call names its pair: each end links towards the other (a replace's new secondary too).
  const links = (node: string) =>
    drbdLinks(
      cluster,
      inst,
      node,
      // A one-node read towards a named peer (DRBD 9) reads that connection.
      input.nodes?.find((n) => n !== node) ?? (effect === 'nodeDiskStatus' ? input.peer : undefined),
    );
  const drbd = (node: string) => drbdDrivers[cluster.nodes.find((n) => n.name === node)?.drbd ?? '8.4'];
  const ofInstance = [
    inst.primary,
    inst.secondary,
    inst.formerSecondary,
    inst.tiebreaker,
    inst.thirdCopy,
    inst.formerThirdCopy,
  ];
  const knownPeer = (node: string) => {
    const peer = input.nodes?.find((n) => n !== node);
    return peer !== undefined && ofInstance.includes(peer) && ofInstance.includes(node);
  };
  const shared = inst.storage !== 'drbd';
  const seconds = input.timeoutMs / 1000;
  switch (effect) {
    case 'getInstance':
      return [{ node: 'config', kind: 'file', text: `read ${clusterPath}` }];
    case 'setSecondaryNode':
      return [
        {
          node: 'config',
          kind: 'file',
          text: `rewrite ${clusterPath} (secondary: ${input.node}, formerSecondary: ${input.former}), keep ${clusterPath}.prev`,
        },
      ];
    case 'forgetFormerSecondary':
      return [
        {
          node: 'config',
          kind: 'file',
          text: `rewrite ${clusterPath} (no formerSecondary), keep ${clusterPath}.prev`,
        },
      ];
    case 'setThirdCopyNode':
      return [
        {
          node: 'config',
          kind: 'file',
          text: `rewrite ${clusterPath} (thirdCopy: ${input.node}, formerThirdCopy: ${input.former}), keep ${clusterPath}.prev`,
        },
      ];
    case 'forgetFormerThirdCopy':
      return [
        {
          node: 'config',
          kind: 'file',
          text: `rewrite ${clusterPath} (no formerThirdCopy), keep ${clusterPath}.prev`,
        },
      ];
    case 'nodeStorage':
      return [];
    case 'createDisks':
      // As sshEffects does it: the resync helper, the volume group, what is missing, then the device.
      return nodes.flatMap((n) => {
        const vg = cluster.nodes.find((x) => x.name === n)?.volumeGroup ?? 'xenvg';
        return [
          // The resync helper checked first (see resyncHelperCommand), and with selfFenceMs on DRBD 9
          // the node's quorum-lost handler (see selfFenceRead).
          ...links(n).flatMap((l) => [
            sh(n, resyncHelperCommand(l.resource)),
            ...(inst.selfFenceMs !== undefined && cluster.nodes.find((x) => x.name === n)?.drbd === '9'
              ? [sh(n, selfFenceRead(l.resource))]
              : []),
          ]),
          sh(n, lvm.report(vg)),
          ...links(n).flatMap((l) => {
            const disk = inst.disks.find((d) => 'resource' in d && d.resource === l.resource);
            const sizeMiB = disk !== undefined && 'sizeMiB' in disk ? (disk.sizeMiB ?? 0) : 0;
            const internal = disk !== undefined && 'metaDisk' in disk && disk.metaDisk === 'internal';
            const data = `${l.resource}_data`;
            const meta = `${l.resource}_meta`;
            const create = (): string[][] => {
              try {
                return drbd(n).createDevice(
                  l,
                  { data: volumePath(vg, data), meta: internal ? null : volumePath(vg, meta) },
                  true,
                  cluster.options.resyncMiBps,
                );
              } catch (error) {
                return [['#', (error as Error).message]];
              }
            };
            // DRBD 9: the primary's resource options read first; new-resource takes them (planned
            // without them: what they are is the primary kernel's answer).
            const primaryLink = drbdLinks(cluster, inst, inst.primary).find((x) => x.resource === l.resource);
            const optionsRead =
              primaryLink === undefined ? null : drbd(inst.primary).resourceRead(primaryLink);
            return [
              ...(internal
                ? [sh(n, lvm.create(vg, data, sizeMiB + META_MIB))]
                : [sh(n, lvm.create(vg, data, sizeMiB)), sh(n, lvm.create(vg, meta, META_MIB))]),
              ...(optionsRead === null
                ? []
                : [
                    sh(inst.primary, optionsRead),
                    sh(n, ['#', "new-resource takes the resource options the primary's show prints"]),
                  ]),
              ...create().map((argv) => sh(n, argv)),
            ];
          }),
        ];
      });
    case 'removeDisks':
      return nodes.flatMap((n) => {
        const vg = cluster.nodes.find((x) => x.name === n)?.volumeGroup ?? 'xenvg';
        return [
          sh(n, lvm.report(vg)),
          ...links(n).flatMap((l) => [
            sh(n, drbd(n).down(l)),
            sh(n, lvm.remove(vg, [`${l.resource}_data`, `${l.resource}_meta`])),
          ]),
        ];
      });
    case 'setPrimaryNode':
      return [
        {
          node: 'config',
          kind: 'file',
          text: `rewrite ${clusterPath} (primary: ${input.node}), keep ${clusterPath}.prev`,
        },
      ];
    case 'nodeInfo':
      return nodes.map((n) => sh(n, nodeInfoCommand(inst.hypervisor.binary)));
    case 'instanceInfo':
      return nodes.flatMap((n) => [qmp(n, 'query-status'), qmp(n, 'query-memory-size-summary')]);
    case 'measureDirtyRate':
      return nodes.flatMap((n) => [
        qmp(n, 'query-status'),
        qmp(n, 'calc-dirty-rate', {
          'calc-time': input.calcSeconds,
          'sample-pages': input.samplePages,
          mode: 'page-sampling',
        }),
        qmp(n, 'query-dirty-rate'),
      ]);
    case 'instanceList':
    case 'migrationInfo':
      return nodes.map((n) => qmp(n, 'query-status'));
    case 'probeNode':
      return nodes.flatMap((n) => [sh(n, ['true']), qmp(n, 'query-status')]);
    case 'awaitSelfFence':
      // A wait: nothing is sent to the node, which is cut off.
      return [];
    case 'diskStatus':
    case 'nodeDiskStatus':
      return nodes.flatMap((n) =>
        links(n).flatMap((l) =>
          drbd(n)
            .statusReads(l)
            .map((argv) => sh(n, argv)),
        ),
      );
    case 'closeDisks':
      return shared
        ? nodes.map((n) => qmp(n, 'query-status'))
        : nodes.flatMap((n) => links(n).map((l) => sh(n, drbd(n).secondary(l))));
    case 'openDisks':
      return shared
        ? nodes.flatMap((n) =>
            inst.disks.flatMap((d) => ('device' in d ? [sh(n, ['test', '-b', d.device])] : [])),
          )
        : nodes.flatMap((n) => links(n).map((l) => sh(n, drbd(n).primary(l))));
    case 'disconnectNet':
      return (input.only === undefined ? nodes : [input.only]).flatMap((n) =>
        links(n).flatMap((l) => {
          const read = drbd(n).peerRead(l);
          // Planned as on a node that has the peer (DRBD 9 reads its peers first).
          const show = `_peer_node_id ${l.peerNodeId};`;
          return [
            ...(read === null ? [] : [sh(n, read)]),
            ...drbd(n)
              .disconnectPeer(l, show)
              .map((argv) => sh(n, argv)),
          ];
        }),
      );
    case 'removePeer': {
      const n = input.node ?? '';
      return drbdLinks(cluster, inst, n, input.peer).flatMap((l) => {
        const read = drbd(n).peerRead(l);
        // Planned as on a node that has the peer: its removal, then its bitmap slot freed.
        const show = `_peer_node_id ${l.peerNodeId};`;
        return [
          ...(read === null ? [] : [sh(n, read)]),
          ...drbd(n)
            .removePeer(l, show)
            .map((argv) => sh(n, argv)),
        ];
      });
    }
    case 'attachNet':
      return [
        // DRBD 9: each side's peers read, and a new secondary made one (new-peer, new-path).
        ...nodes.flatMap((n) =>
          links(n).flatMap((l) => {
            const read = drbd(n).peerRead(l);
            return read === null
              ? []
              : [
                  sh(n, read),
                  // Planned as the file has it: the instance's own nodes are peers already.
                  ...drbd(n)
                    .addPeer(
                      l,
                      knownPeer(n) ? `_peer_node_id ${l.peerNodeId};` : '',
                      cluster.options.resyncMiBps,
                    )
                    .map((argv) => sh(n, argv)),
                ];
          }),
        ),
        // DRBD 9: each side's state read first; only a StandAlone connection is connected (planned
        // as the run that finds them so).
        ...(nodes.some((n) => cluster.nodes.find((x) => x.name === n)?.drbd === '9')
          ? nodes.flatMap((n) =>
              links(n).flatMap((l) =>
                drbd(n)
                  .statusReads(l)
                  .map((argv) => sh(n, argv)),
              ),
            )
          : []),
        ...nodes.flatMap((n) =>
          links(n).flatMap((l) =>
            drbd(n)
              .connect(l, input.multimaster === true, input.discardOn === n)
              .map((argv) => sh(n, argv)),
          ),
        ),
        ...nodes.flatMap((n) =>
          links(n).map((l) =>
            sh(n, drbd(n).waitConnect(l, Math.min(ATTACH_ROUND_MS, input.timeoutMs) / 1000)),
          ),
        ),
        // Then it reads each side's state, and configures again a side that dropped to StandAlone.
        ...nodes.flatMap((n) =>
          links(n).flatMap((l) =>
            drbd(n)
              .statusReads(l)
              .map((argv) => sh(n, argv)),
          ),
        ),
      ];
    case 'waitSync':
      // timeoutMs 0 asks for the state now: no wait.
      return nodes.flatMap((n) => links(n).flatMap((l) => [sh(n, drbd(n).syncRead(l, seconds))]));
    case 'shutdownInstance':
      return nodes.flatMap((n) => [
        qmp(n, 'system_powerdown'),
        qmp(n, 'quit'),
        sh(n, waitExitCommand(inst.hypervisor, input.timeoutMs)),
      ]);
    case 'startInstance':
      return nodes.flatMap((n) => [
        qmp(n, 'query-status'),
        sh(n, startCommand(inst.hypervisor, false, input.timeoutMs)),
        qmp(n, 'query-status'),
      ]);
    case 'balloonMemory':
      return nodes.map((n) => qmp(n, 'balloon', { value: (input.memoryMiB ?? 0) * 1024 * 1024 }));
    case 'acceptInstance': {
      // As sshEffects does it: look, start QEMU waiting, ask where it listens, make it listen.
      const address = cluster.nodes.find((x) => x.name === input.node)?.replicationAddress;
      return nodes.flatMap((n) => [
        qmp(n, 'query-status'),
        sh(n, startCommand(inst.hypervisor, true, input.timeoutMs)),
        qmp(n, 'query-migrate'),
        ...incomingCommands(input.postcopy === true).map(([c, a]) => qmp(n, c, a)),
        qmp(n, 'migrate-incoming', { uri: `tcp:${address}:0` }),
      ]);
    }
    case 'setMigrationParameters':
      return nodes.flatMap((n) =>
        tuningCommands({
          bandwidthMiBps: input.bandwidthMiBps,
          downtimeMs: input.downtimeMs,
          prepare: input.prepare,
          throttle: input.throttle,
        }).map(([c, a]) => qmp(n, c, a)),
      );
    case 'startPostcopy':
      return nodes.flatMap((n) => [qmp(n, 'query-migrate'), qmp(n, 'migrate-start-postcopy')]);
    case 'migrateInstance': {
      const target = input.target ?? '';
      const address = cluster.nodes.find((x) => x.name === target)?.replicationAddress;
      return nodes.flatMap((n) => [
        qmp(n, 'query-migrate'),
        qmp(target, 'query-migrate'),
        ...(input.live === false ? [qmp(n, 'stop')] : []),
        qmp(n, 'migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] }),
        qmp(n, 'migrate', { uri: `tcp:${address}:PORT` }),
      ]);
    }
    case 'migrationStatus':
      return nodes.map((n) => qmp(n, 'query-migrate'));
    case 'finalizeMigrationSource':
      return nodes.flatMap((n) =>
        input.success
          ? [qmp(n, 'quit'), sh(n, waitExitCommand(inst.hypervisor, input.timeoutMs))]
          : [qmp(n, 'migrate_cancel'), qmp(n, 'cont')],
      );
    case 'finalizeMigrationTarget':
      return nodes.flatMap((n) =>
        input.success
          ? [qmp(n, 'query-status')]
          : [qmp(n, 'quit'), sh(n, waitExitCommand(inst.hypervisor, input.timeoutMs))],
      );
  }
}

/**
 * The instance's DRBD links as seen from `node`, towards `peer` (by default its peer in the cluster
 * file; a replace links the primary with a node the file does not name yet).
 */
export function drbdLinks(
  cluster: ClusterFile,
  inst: ClusterInstance,
  node: string,
  peer = node === inst.primary ? inst.secondary : inst.primary,
): DrbdLink[] {
  const address = (name: string) => cluster.nodes.find((n) => n.name === name)?.replicationAddress ?? '';
  return inst.disks.flatMap((d) => {
    if (!('resource' in d)) return [];
    // DRBD 9: a new secondary's node-id is the one the file will name once the replace commits.
    const peerNodeId = drbdNodeId(d, peer);
    const localNodeId = drbdNodeId(d, node);
    return [
      {
        resource: d.resource,
        minor: d.minor,
        local: { address: address(node), port: d.port },
        peer: { address: address(peer), port: d.port },
        ...(peerNodeId === undefined ? {} : { peerNodeId, peerName: peer }),
        ...(localNodeId === undefined ? {} : { localNodeId }),
      },
    ];
  });
}

/** A simulated copy of the cluster file, for --dry-run: the same nodes and instances, all healthy. */
export function simSpecOf(cluster: ClusterFile): WorldSpec {
  const resync = cluster.options.resyncMiBps;
  return {
    // A dry run's resyncs go at the rate the cluster says its resyncs reach.
    ...(resync === undefined ? {} : { settings: { resyncKiBps: resync * 1024 } }),
    nodes: Object.fromEntries(cluster.nodes.map((n) => [n.name, { drained: n.drained }])),
    instances: cluster.instances.map((i) => ({
      name: i.name,
      primary: i.primary,
      secondary: i.secondary,
      memoryMiB: i.memoryMiB,
      ...(i.minMemoryMiB === undefined ? {} : { minMemoryMiB: i.minMemoryMiB }),
      migrationMode: i.migrationMode,
      diskTemplate: i.storage,
      disksMiB: i.disks.map((d) => ('sizeMiB' in d ? (d.sizeMiB ?? 1024) : 1024)),
      // A third copy: a dry run of a migration to it has it to go to.
      ...(i.thirdCopy === undefined ? {} : { thirdCopy: i.thirdCopy }),
    })),
  };
}
