import { setTimeout as delay } from 'node:timers/promises';
import { type Effects, type MigrationStatus, type NodeSync, noSelfFence } from '../../machines/index.js';
import {
  type ClusterInstance,
  type ClusterNode,
  clusterConfigEffects,
  loadCluster,
} from '../cluster/index.js';
import { drbdDrivers } from '../drivers/drbd.js';
import { parseSelfFence, selfFenceRead } from '../drivers/drbd9.js';
import { lvm, missingVolumes, parseReport, volumePath } from '../drivers/lvm.js';
import {
  drbdFamilyProblem,
  nodeInfoCommand,
  parseNodeInfo,
  RESYNC_HELPER_REFUSED,
  resyncHelperCommand,
  resyncHelperProblem,
} from '../drivers/node.js';
import { incomingCommands, migrationStatusOf, QemuNode, tuningCommands } from '../drivers/qemu.js';
import { type NodeShell, SshNode } from '../ssh/index.js';
import { ATTACH_ROUND_MS, drbdLinks as linksOf } from './plan.js';

/**
 * The effect contract over SSH: one persistent connection per node, DRBD and QEMU drivers behind it,
 * and the cluster file as the config store. The config effects (and the migration options) re-read
 * the file on every call, so it stays the one truth about where an instance runs; nodes, disks and
 * launch specs are read once, when the backend is made.
 */

export interface SshBackendOptions {
  /** Node connections; by default SSH to the addresses in the cluster file. Tests may inject their own. */
  shellFor?: (node: ClusterNode) => NodeShell;
  /** How often a long poll looks again when no event wakes it (ms). */
  pollMs?: number;
}

export interface SshBackend {
  effects: Effects;
  /** The QEMU of an instance on a node, through the backend's own connection (for tools and benches). */
  qemu(node: string, instance: string): QemuNode;
  /** Closes every node connection. */
  close(): void;
}

const MIB = 1024 * 1024;

/**
 * What a call over SSH may take beyond its own deadline: the command's round trip on a loaded node.
 * A long poll asked for the state now (timeoutMs 0) still needs it (seen on the DRBD VMs under load: a
 * status read over SSH took over the runner's default second). Runs on this backend pass it as graceMs.
 */
export const SSH_GRACE_MS = 5_000;

export async function sshEffects(clusterPath: string, options: SshBackendOptions = {}): Promise<SshBackend> {
  const initial = await loadCluster(clusterPath);
  const shells = new Map<string, NodeShell>();
  const qemus = new Map<string, QemuNode>();
  const pollMs = options.pollMs ?? 200;
  const makeShell = options.shellFor ?? ((n: ClusterNode) => new SshNode(n));

  const nodeSpec = (name: string) => {
    const n = initial.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`${name}: not a node of ${clusterPath}`);
    return n;
  };
  const shell = (name: string) => {
    let s = shells.get(name);
    if (s === undefined) {
      s = makeShell(nodeSpec(name));
      shells.set(name, s);
    }
    return s;
  };
  const instanceSpec = (name: string) => {
    const i = initial.instances.find((x) => x.name === name);
    if (i === undefined) throw new Error(`Instance '${name}' not known in ${clusterPath}`);
    return i;
  };
  const qemu = (node: string, instance: string) => {
    const key = `${node}\0${instance}`;
    let q = qemus.get(key);
    if (q === undefined) {
      q = new QemuNode(shell(node), instanceSpec(instance).hypervisor);
      qemus.set(key, q);
    }
    return q;
  };
  /** The links from `node`, towards the other end of `pair` when the call names the pair. */
  const drbdLinks = (inst: ClusterInstance, node: string, pair?: readonly string[]) =>
    linksOf(
      initial,
      inst,
      node,
      pair?.find((n) => n !== node),
    );
  const volumeGroup = (node: string) => nodeSpec(node).volumeGroup;
  const storageOf = async (node: string, timeoutMs: number, signal: AbortSignal) =>
    parseReport(
      (await shell(node).exec(lvm.report(volumeGroup(node)), { timeoutMs, signal })).stdout,
      volumeGroup(node),
    );
  const drbd = (node: string) => drbdDrivers[nodeSpec(node).drbd];
  const sharedDevices = (inst: ClusterInstance) =>
    inst.disks.flatMap((d) => ('device' in d ? [d.device] : []));
  const isShared = (inst: ClusterInstance) => inst.storage !== 'drbd';
  const noReplication = (inst: ClusterInstance) =>
    new Error(
      `Instance ${inst.name} is on shared storage (${inst.storage}): it has no replication to manage`,
    );
  const perNode = async <T>(nodes: readonly string[], fn: (node: string) => Promise<T>) =>
    Object.fromEntries(await Promise.all(nodes.map(async (n) => [n, await fn(n)] as const))) as Record<
      string,
      T
    >;

  const drbdStatus = async (
    inst: ClusterInstance,
    node: string,
    timeoutMs: number,
    signal: AbortSignal,
    pair?: readonly string[],
  ) =>
    Promise.all(
      drbdLinks(inst, node, pair).map(async (l) => {
        const outputs = await Promise.all(
          drbd(node)
            .statusReads(l)
            .map(async (argv) => (await shell(node).exec(argv, { timeoutMs, signal })).stdout),
        );
        return drbd(node).parseStatus(outputs, l);
      }),
    );
  // DRBD 9: a new copy's resource takes the primary's options (quorum, on-no-quorum), read from its
  // kernel, so that it votes and fences as the copies it joins do.
  const primaryResourceOptions = async (
    inst: ClusterInstance,
    resource: string,
    timeoutMs: number,
    signal: AbortSignal,
  ) => {
    const link = drbdLinks(inst, inst.primary).find((x) => x.resource === resource);
    const read = link === undefined ? null : drbd(inst.primary).resourceRead(link);
    if (read === null) return [];
    const show = (await shell(inst.primary).exec(read, { timeoutMs, signal })).stdout;
    return drbd(inst.primary).parseResourceOptions(show);
  };
  const config = clusterConfigEffects(clusterPath);
  const effects: Effects = {
    getInstance: config.getInstance,
    setPrimaryNode: config.setPrimaryNode,
    listInstances: config.listInstances,
    listNodes: config.listNodes,
    takeoverLoad: config.takeoverLoad,
    setNodeDrained: config.setNodeDrained,
    setSecondaryNode: config.setSecondaryNode,
    forgetFormerSecondary: config.forgetFormerSecondary,
    setThirdCopyNode: config.setThirdCopyNode,
    forgetFormerThirdCopy: config.forgetFormerThirdCopy,

    nodeStorage: ({ node, timeoutMs }, signal) => storageOf(node, timeoutMs, signal),

    // Ganeti's blockdev_create: what exists is kept; metadata is written only on a volume just made.
    createDisks: async ({ instance, node, disks, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      const vg = volumeGroup(node);
      // Before anything is made: a node whose resync helper would refuse gets no copy at all.
      for (const l of drbdLinks(inst, node)) {
        const helper = await shell(node).exec(resyncHelperCommand(l.resource), {
          timeoutMs,
          signal,
          okCodes: [RESYNC_HELPER_REFUSED],
        });
        if (helper.code === RESYNC_HELPER_REFUSED)
          throw new Error(resyncHelperProblem(node, l.resource, helper.stdout.trim()));
        // A copy of an instance whose failover trusts a self-fence only where the node would fence.
        if (inst.selfFenceMs !== undefined && nodeSpec(node).drbd === '9') {
          const fence = await shell(node).exec(selfFenceRead(l.resource), { timeoutMs, signal });
          if (!parseSelfFence(fence.stdout)) throw new Error(noSelfFence(node, instance, l.resource));
        }
      }
      const storage = await storageOf(node, timeoutMs, signal);
      for (const l of drbdLinks(inst, node)) {
        const disk = disks.find((d) => d.resource === l.resource);
        if (disk?.sizeMiB === undefined) throw new Error(`${node}: the size of ${l.resource} is not known`);
        const internal = disk.metaDisk === 'internal';
        const missing = missingVolumes(storage, l.resource, disk.sizeMiB, internal);
        for (const v of [missing.data, missing.meta])
          if (v !== null) await shell(node).exec(lvm.create(vg, v.name, v.sizeMiB), { timeoutMs, signal });
        if (storage.minors.includes(l.minor)) continue;
        const volumes = {
          data: volumePath(vg, `${l.resource}_data`),
          meta: internal ? null : volumePath(vg, `${l.resource}_meta`),
        };
        // Metadata is written only where its volume was just made: an existing copy is never wiped.
        const fresh = internal ? missing.data !== null : missing.meta !== null;
        const options = await primaryResourceOptions(inst, l.resource, timeoutMs, signal);
        for (const argv of drbd(node).createDevice(l, volumes, fresh, initial.options.resyncMiBps, options))
          await shell(node).exec(argv, { timeoutMs, signal });
      }
    },

    // Ganeti's blockdev_remove: the device down (refused by DRBD while it is Primary), the volumes gone.
    removeDisks: async ({ instance, node, disks, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      const vg = volumeGroup(node);
      const storage = await storageOf(node, timeoutMs, signal);
      for (const l of drbdLinks(inst, node).filter((x) => disks.some((d) => d.resource === x.resource))) {
        if (storage.minors.includes(l.minor))
          await shell(node).exec(drbd(node).down(l), { timeoutMs, signal });
        const present = [`${l.resource}_data`, `${l.resource}_meta`].filter((n) =>
          storage.volumes.some((v) => v.name === n),
        );
        if (present.length > 0) await shell(node).exec(lvm.remove(vg, present), { timeoutMs, signal });
      }
    },

    nodeInfo: async ({ instance, nodes, timeoutMs }, signal) => {
      // The drain mark is the config's, read now (an evacuation sets it while this backend lives).
      const drained = new Set(
        (await loadCluster(clusterPath)).nodes.filter((n) => n.drained).map((n) => n.name),
      );
      const inst = instanceSpec(instance);
      return perNode(nodes, async (node) => {
        const hv = inst.hypervisor;
        const r = await shell(node).exec(nodeInfoCommand(hv.binary), { timeoutMs, signal });
        const facts = parseNodeInfo(node, hv.binary, r.stdout);
        if (!isShared(inst)) {
          const problem = drbdFamilyProblem(node, nodeSpec(node).drbd, facts);
          if (problem !== null) throw new Error(problem);
        }
        return {
          memoryFreeMiB: facts.memoryFreeMiB,
          hypervisorVersion: facts.hypervisorVersion,
          drained: drained.has(node),
        };
      });
    },

    instanceInfo: async ({ instance, node, timeoutMs }, signal) => {
      const q = qemu(node, instance);
      const state = await q.status(timeoutMs, signal);
      if (state === null) return { running: false, state: null, memoryMiB: null };
      const size = (await (await q.mustQmp(timeoutMs, signal)).execute('query-memory-size-summary')) as {
        'base-memory'?: number;
      };
      return {
        running: state === 'running',
        state,
        memoryMiB: size['base-memory'] === undefined ? null : size['base-memory'] / MIB,
      };
    },

    instanceList: ({ instance, nodes, timeoutMs }, signal) =>
      // Only the instance at hand: the machines ask where it is, not what else the node runs.
      perNode(nodes, async (node) => {
        const state = await qemu(node, instance).status(timeoutMs, signal);
        return state === null ? [] : [{ name: instance, state }];
      }),

    diskStatus: async ({ instance, nodes, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      return perNode(nodes, (node) => drbdStatus(inst, node, timeoutMs, signal, nodes));
    },

    nodeDiskStatus: async ({ instance, node, timeoutMs, peer }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      return drbdStatus(inst, node, timeoutMs, signal, peer === undefined ? undefined : [node, peer]);
    },

    probeNode: async ({ instance, node, timeoutMs }, signal) => {
      // The probe's own deadline, half the step's: a node that does not answer by then is the answer.
      const probeMs = Math.max(1, Math.floor(timeoutMs / 2));
      try {
        // Not asked again: whether the node answers now is the probe's answer.
        await shell(node).exec(['true'], { timeoutMs: probeMs, signal, retry: false });
      } catch (error) {
        if (signal.aborted) throw error;
        shell(node).close();
        shells.delete(node);
        return { reachable: false, error: (error as Error).message, state: null };
      }
      return { reachable: true, error: null, state: await qemu(node, instance).status(timeoutMs, signal) };
    },

    // Nothing is asked of the node (it is cut off): its quorum-lost handler's bound is waited out.
    awaitSelfFence: async ({ withinMs }, signal) => {
      await delay(withinMs, undefined, { signal });
    },

    migrationInfo: async ({ instance, node, timeoutMs }, signal) => {
      const state = await qemu(node, instance).status(timeoutMs, signal);
      if (state === null) throw new Error(`${node}: instance ${instance} is not running`);
      return { state };
    },

    measureDirtyRate: async ({ instance, node, timeoutMs, calcSeconds, samplePages }, signal) => {
      const q = qemu(node, instance);
      const state = await q.status(timeoutMs, signal);
      if (state !== 'running')
        throw new Error(
          `${node}: instance ${instance} is ${state ?? 'not running'}: its dirty rate is measured only while it runs`,
        );
      return q.dirtyRate(calcSeconds, samplePages, timeoutMs, signal);
    },

    closeDisks: async ({ instance, node, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) {
        // A shared device is closed by the QEMU that held it; refuse while one still runs here.
        const state = await qemu(node, instance).status(timeoutMs, signal);
        if (state !== null)
          throw new Error(`${node}: the disks of ${instance} are held open by its QEMU (${state})`);
        return;
      }
      for (const l of drbdLinks(inst, node))
        await shell(node).exec(drbd(node).secondary(l), { timeoutMs, signal });
    },

    openDisks: async ({ instance, node, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) {
        for (const device of sharedDevices(inst)) {
          await shell(node)
            .exec(['test', '-b', device], { timeoutMs, signal })
            .catch(() => {
              throw new Error(`${node}: ${device} is not a block device on this node`);
            });
        }
        return;
      }
      for (const l of drbdLinks(inst, node))
        await shell(node).exec(drbd(node).primary(l), { timeoutMs, signal });
    },

    disconnectNet: async ({ instance, nodes, only, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      await perNode(only === undefined ? nodes : [only], async (node) => {
        for (const l of drbdLinks(inst, node, nodes)) {
          const read = drbd(node).peerRead(l);
          const show = read === null ? '' : (await shell(node).exec(read, { timeoutMs, signal })).stdout;
          for (const argv of drbd(node).disconnectPeer(l, show))
            await shell(node).exec(argv, { timeoutMs, signal, okCodes: drbd(node).alreadyStandAlone });
        }
      });
    },

    removePeer: async ({ instance, node, peer, disks, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      for (const l of drbdLinks(inst, node, [node, peer]).filter((x) =>
        disks.some((d) => d.resource === x.resource),
      )) {
        const read = drbd(node).peerRead(l);
        const show = read === null ? '' : (await shell(node).exec(read, { timeoutMs, signal })).stdout;
        for (const argv of drbd(node).removePeer(l, show))
          await shell(node).exec(argv, { timeoutMs, signal, okCodes: [0, ...drbd(node).alreadyStandAlone] });
      }
    },

    attachNet: async ({ instance, nodes, multimaster, discardOn, timeoutMs }, signal) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      // Ganeti's DrbdAttachNet: configure both sides, wait for the connection (DRBD's own wait, in
      // rounds), and configure again a side that dropped to StandAlone (its peer may have refused
      // a mismatching configuration), until connected or out of time.
      const start = Date.now();
      const roundS = Math.min(ATTACH_ROUND_MS, timeoutMs) / 1000;
      let standAlone = new Set(nodes.flatMap((n) => drbdLinks(inst, n, nodes).map((l) => `${n}/${l.minor}`)));
      // DRBD 9: a node that is not yet the other's peer (a new secondary) becomes it, beside the peers
      // it has (make-before-break); its resync at the cluster's fixed rate when the file gives one.
      await perNode(nodes, async (node) => {
        for (const l of drbdLinks(inst, node, nodes)) {
          const read = drbd(node).peerRead(l);
          if (read === null) continue;
          const show = (await shell(node).exec(read, { timeoutMs, signal })).stdout;
          for (const argv of drbd(node).addPeer(l, show, initial.options.resyncMiBps))
            await shell(node).exec(argv, { timeoutMs, signal });
        }
      });
      // DRBD 9 connects a StandAlone connection only (another answers "already configured"): one
      // connected or connecting already (a repair after a replace's commit finds them so) is left be.
      if (nodes.some((n) => nodeSpec(n).drbd === '9')) {
        const now = await perNode(nodes, (node) => drbdStatus(inst, node, timeoutMs, signal, nodes));
        standAlone = new Set(
          Object.entries(now).flatMap(([node, ds]) =>
            ds.filter((d) => d.connection === 'StandAlone').map((d) => `${node}/${d.minor}`),
          ),
        );
      }
      for (;;) {
        const left = () => Math.max(1, timeoutMs - (Date.now() - start));
        await perNode(nodes, async (node) => {
          for (const l of drbdLinks(inst, node, nodes)) {
            if (!standAlone.has(`${node}/${l.minor}`)) continue;
            for (const argv of drbd(node).connect(l, multimaster, discardOn === node))
              await shell(node).exec(argv, { timeoutMs: left(), signal });
          }
        });
        await perNode(nodes, async (node) => {
          for (const l of drbdLinks(inst, node, nodes)) {
            // Not connected yet is an answer here: the status read below tells.
            await shell(node)
              .exec(drbd(node).waitConnect(l, roundS), { timeoutMs: left(), signal })
              .catch(() => undefined);
          }
        });
        const disks = await perNode(nodes, (node) => drbdStatus(inst, node, left(), signal, nodes));
        const pending = Object.entries(disks).flatMap(([node, ds]) =>
          ds.filter((d) => d.connection !== 'Connected').map((d) => ({ node, d })),
        );
        if (pending.length === 0) return;
        if (Date.now() - start >= timeoutMs || signal.aborted) {
          throw new Error(
            `Timeout in disk reconnecting: ${pending.map(({ node, d }) => `${node}: ${d.resource} ${d.connection}`).join(', ')}`,
          );
        }
        standAlone = new Set(
          pending.filter(({ d }) => d.connection === 'StandAlone').map(({ node, d }) => `${node}/${d.minor}`),
        );
      }
    },

    waitSync: async ({ instance, nodes, timeoutMs }, signal, hurry) => {
      const inst = instanceSpec(instance);
      if (isShared(inst)) throw noReplication(inst);
      // DRBD's own wait (none when timeoutMs is 0), then the status, in one command per disk: it
      // answers as soon as the resync is done, bounded by the poll's deadline. Running out of time
      // is an answer here, not a failure: the status tells.
      const execMs = timeoutMs + SSH_GRACE_MS;
      return {
        nodes: await perNode(nodes, async (node): Promise<NodeSync> => {
          const disks = [];
          for (const l of drbdLinks(inst, node, nodes)) {
            // Hurried (an operator abort waits): the wait is cut, and the status read now instead.
            const waiting = hurry === undefined ? signal : AbortSignal.any([signal, hurry]);
            const argv = drbd(node).syncRead(l, hurry?.aborted ? 0 : timeoutMs / 1000);
            const output = await shell(node)
              .exec(argv, { timeoutMs: execMs, signal: waiting })
              .catch(async (error: unknown) => {
                if (signal.aborted || !hurry?.aborted) throw error;
                return shell(node).exec(drbd(node).syncRead(l, 0), { timeoutMs: execMs, signal });
              });
            const sync = drbd(node).parseSync(output.stdout, l);
            // No resync runs on a link that is down either: that is not a disk in sync (on real 8.4 a
            // new node's resync handler refused and the link dropped; the wait would have ended).
            if (sync.connection !== 'Connected')
              throw new Error(`${node}: DRBD device ${l.resource} is not in sync: ${sync.connection}`);
            disks.push(sync);
          }
          const syncing = disks.filter((d) => d.syncing);
          return {
            done: syncing.length === 0,
            percent: syncing.length === 0 ? null : Math.min(...syncing.map((d) => d.percent ?? 0)),
          };
        }),
        at: Date.now(),
      };
    },

    shutdownInstance: ({ instance, node, timeoutMs }, signal) =>
      qemu(node, instance).shutdown(timeoutMs, signal),

    startInstance: async ({ instance, node, timeoutMs }, signal) => {
      const q = qemu(node, instance);
      const state = await q.status(timeoutMs, signal);
      // Run again after a lost answer: it already runs.
      if (state === 'running') return;
      if (state !== null) throw new Error(`${node}: instance ${instance} is already ${state} here`);
      await q.start(false, timeoutMs, signal);
      const now = await q.status(timeoutMs, signal);
      if (now !== 'running')
        throw new Error(`${node}: instance ${instance} is ${now ?? 'gone'} after its start`);
    },

    balloonMemory: async ({ instance, node, memoryMiB, timeoutMs }, signal) => {
      await (await qemu(node, instance).mustQmp(timeoutMs, signal)).execute('balloon', {
        value: memoryMiB * MIB,
      });
    },

    acceptInstance: async ({ instance, node, postcopy, timeoutMs }, signal) => {
      const q = qemu(node, instance);
      const state = await q.status(timeoutMs, signal);
      if (state === null) await q.start(true, timeoutMs, signal);
      else if (state !== 'inmigrate')
        throw new Error(`${node}: instance ${instance} is already ${state} here`);
      const listening = (await q.queryMigrate(timeoutMs, signal))['socket-address'];
      if (listening === undefined || listening.length === 0) {
        const address = nodeSpec(node).replicationAddress;
        const qmp = await q.mustQmp(timeoutMs, signal);
        for (const [command, args] of incomingCommands(postcopy)) await qmp.execute(command, args);
        await qmp.execute('migrate-incoming', { uri: `tcp:${address}:0` });
      }
    },

    setMigrationParameters: async ({ instance, node, timeoutMs, ...change }, signal) => {
      const qmp = await qemu(node, instance).mustQmp(timeoutMs, signal);
      for (const [command, args] of tuningCommands(change)) await qmp.execute(command, args);
    },

    startPostcopy: async ({ instance, node, timeoutMs }, signal) => {
      const q = qemu(node, instance);
      // Run again after a lost answer: the switch was made.
      const now = (await q.queryMigrate(timeoutMs, signal)).status;
      if (now === 'postcopy-active' || now === 'completed') return;
      await (await q.mustQmp(timeoutMs, signal)).execute('migrate-start-postcopy');
    },

    migrateInstance: async ({ instance, node, target, live, timeoutMs }, signal) => {
      const source = qemu(node, instance);
      const now = (await source.queryMigrate(timeoutMs, signal)).status ?? 'none';
      // Run again after a lost answer: the copy already runs, or ran from here. A QEMU that itself
      // arrived by migration also reports 'completed' (its incoming one), but it runs: not a source yet.
      if (!['none', 'failed', 'cancelled', 'completed'].includes(now)) return;
      if (now === 'completed' && (await source.status(timeoutMs, signal)) === 'postmigrate') return;
      const listening = (await qemu(target, instance).queryMigrate(timeoutMs, signal))['socket-address']?.[0];
      if (listening === undefined)
        throw new Error(`${target}: no incoming migration is listening for ${instance}`);
      const qmp = await source.mustQmp(timeoutMs, signal);
      if (!live) await qmp.execute('stop');
      // MIGRATION events wake the long poll; the parameters were set by setMigrationParameters.
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      const address = nodeSpec(target).replicationAddress;
      await qmp.execute('migrate', { uri: `tcp:${address}:${listening.port}` });
    },

    migrationStatus: async ({ instance, node, timeoutMs }, signal, hurry) => {
      // A long poll: QEMU's MIGRATION and MIGRATION_PASS events wake it at once on a status change or
      // a new dirty pass; between events it looks at the copy's progress every pollMs, and answers
      // when it moved 5% (in the first pass: later ones are judged whole) or time is up.
      const q = qemu(node, instance);
      const start = Date.now();
      const read = async () => migrationStatusOf(await q.queryMigrate(timeoutMs, signal), Date.now());
      const first = await read();
      let now: MigrationStatus = first;
      for (;;) {
        const moved =
          (now.passes ?? 1) <= 1 &&
          (now.transferredMiB ?? 0) - (first.transferredMiB ?? 0) >= (now.totalMiB ?? Infinity) / 20;
        const newPass = now.passes !== first.passes;
        const left = timeoutMs - (Date.now() - start);
        const settled = now.status === 'completed' || now.status === 'failed' || now.status === 'cancelled';
        if (
          settled ||
          now.status !== first.status ||
          moved ||
          newPass ||
          left <= 0 ||
          signal.aborted ||
          hurry?.aborted
        )
          return now;
        const qmp = await q.mustQmp(timeoutMs, signal);
        const waiting = hurry === undefined ? signal : AbortSignal.any([signal, hurry]);
        await qmp.nextEvent(
          (e) => e === 'MIGRATION' || e === 'MIGRATION_PASS',
          Math.min(pollMs, left),
          waiting,
        );
        now = await read();
      }
    },

    finalizeMigrationSource: async ({ instance, node, success, timeoutMs }, signal) => {
      const q = qemu(node, instance);
      if (success) {
        // The migrated source still holds the disks open: quit it and wait until it is gone.
        await q.quit(timeoutMs, signal);
        return;
      }
      const state = await q.status(timeoutMs, signal);
      if (state === null)
        throw new Error(`${node}: instance ${instance} is not running here; nothing to resume`);
      const migration = await q.queryMigrate(timeoutMs, signal);
      if (migration.status === 'completed') {
        throw new Error(
          `${node}: refusing to resume ${instance}: its memory copy completed (the target may run it)`,
        );
      }
      const qmp = await q.mustQmp(timeoutMs, signal);
      if (migration.status !== undefined && !['none', 'failed', 'cancelled'].includes(migration.status)) {
        await qmp.execute('migrate_cancel');
        for (let s = migration.status; s !== 'cancelled' && s !== 'failed' && s !== 'completed'; ) {
          await qmp.nextEvent((e) => e === 'MIGRATION', pollMs, signal);
          if (signal.aborted)
            throw new Error(`${node}: cancelling the migration of ${instance} did not finish`);
          s = (await q.queryMigrate(timeoutMs, signal)).status ?? 'none';
          if (s === 'completed') {
            throw new Error(
              `${node}: the memory copy of ${instance} completed before the cancel took effect`,
            );
          }
        }
      }
      if ((await q.status(timeoutMs, signal)) !== 'running') await qmp.execute('cont');
    },

    finalizeMigrationTarget: async ({ instance, node, success, timeoutMs }, signal) => {
      const q = qemu(node, instance);
      if (!success) {
        await q.quit(timeoutMs, signal);
        return;
      }
      // The source reports 'completed' once it has sent everything; the target may still be loading
      // the last of it. Wait for it to leave inmigrate (its RESUME or STOP event wakes the wait).
      const start = Date.now();
      let state = await q.status(timeoutMs, signal);
      while (state === 'inmigrate' && Date.now() - start < timeoutMs && !signal.aborted) {
        await (await q.mustQmp(timeoutMs, signal)).nextEvent(
          (e) => e === 'RESUME' || e === 'STOP',
          pollMs,
          signal,
        );
        state = await q.status(timeoutMs, signal);
      }
      // A non-live copy was stopped on the source, so the target arrives paused: resume it.
      if (state === 'paused') {
        await (await q.mustQmp(timeoutMs, signal)).execute('cont');
        state = await q.status(timeoutMs, signal);
      }
      if (state !== 'running') {
        throw new Error(
          `${node}: instance ${instance} is ${state ?? 'not present'} here after the migration, not running`,
        );
      }
    },
  };

  return {
    effects,
    qemu,
    close: () => {
      for (const q of qemus.values()) q.dropSession();
      for (const s of shells.values()) s.close();
    },
  };
}
