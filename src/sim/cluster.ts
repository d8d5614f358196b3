import {
  type DiskRef,
  EFFECT_NAMES,
  type EffectName,
  type Effects,
  type NodeSync,
  noSelfFence,
} from '../../machines/index.js';
import { SimClock } from './clock.js';
import {
  addPeer,
  advanceResource,
  configureNet,
  defaultPeer,
  demote,
  disconnect,
  handshake,
  isConnected,
  joinTiebreaker,
  linkBetween,
  linkConnected,
  linkFor,
  linkSyncing,
  onlyJoining,
  promote,
  quorumOf,
  removePeer,
  resourceOf,
  statusOf,
  switchPeer,
} from './drbd.js';
import { type Fault, faultFor } from './faults.js';
import { removeVm, settleAllUptimes, uptimeOf } from './guests.js';
import {
  acceptIncoming,
  advanceVms,
  balloon,
  copying,
  finalizeSource,
  finalizeTarget,
  memoryFreeMiB,
  migrationStatus,
  shutdownInstance,
  startInstance,
  startMigration,
  startPostcopy,
  tune,
  vmOn,
} from './hypervisor.js';
import { recordInvariants } from './invariants.js';
import { killNode, type Perturbation, perturb, reviveNode } from './perturb.js';
import { closeShared, openShared, sharedDiskOf } from './shared.js';
import { createDisk, nodeStorage, removeDisk } from './storage.js';
import { createWorld, type Resource, World, type WorldSpec } from './world.js';

export interface SimStep {
  effect: EffectName;
  call: number;
  input: unknown;
  at: number;
  /** Safety rules broken by this step. */
  violations: string[];
}

export interface SimClusterOptions {
  /** Simulated ms per wall ms; absent: as fast as the CPU allows. */
  pace?: number;
  faults?: Fault[];
  onStep?: (step: SimStep) => void;
}

export interface SimCluster {
  /** The live world; effects change it in place. Guests' uptimes in it are counted lazily: `snapshot` has them exact. */
  readonly world: World;
  readonly clock: SimClock;
  readonly effects: Effects;
  readonly calls: Record<EffectName, number>;
  faults: Fault[];
  onStep: ((step: SimStep) => void) | undefined;
  /** Awaited after every step (e.g. to save the world durably before the machine hears the answer). */
  afterStep: ((step: SimStep) => Promise<void>) | undefined;
  /** A deep copy of the world as it is now, for saving. */
  snapshot(): World;
  /**
   * The live world brought up to the clock's time, for a look without a copy (keep nothing of it:
   * the next step changes it; guests' uptimes in it are counted lazily, `snapshot` has them exact).
   */
  current(): World;
  /** Something happens to the cluster by itself, now (a link failure, a QEMU crash, …). */
  perturb(kind: Perturbation, instance: string): void;
  /**
   * The node loses power: its guests are gone, its DRBD devices with them, its peers wait. With
   * `wroteAlone` it had been cut off and written on its own first (its return is a split brain).
   */
  killNode(node: string, options?: { wroteAlone?: boolean }): void;
  /** The node boots again: nothing runs, its DRBD devices are Secondary and unconnected. */
  reviveNode(node: string): void;
}

/** How long a query (status read) takes on a node, in simulated ms. */
const QUERY_MS = 20;
/** How often a simulated long poll looks at the world again, in simulated ms. */
const POLL_MS = 250;

/**
 * The simulated cluster, the embedded default backend: two or more nodes with DRBD resources and a
 * hypervisor, obeying DRBD's and QEMU's rules, with faults injected by effect name and call number.
 */
export function createSimCluster(spec: WorldSpec | World = {}, options: SimClusterOptions = {}): SimCluster {
  const world: World = 'version' in spec ? World.parse(structuredClone(spec)) : createWorld(spec);
  const clock = new SimClock({
    start: world.time,
    ...(options.pace === undefined ? {} : { pace: options.pace }),
  });
  const calls = Object.fromEntries(EFFECT_NAMES.map((n) => [n, 0])) as Record<EffectName, number>;

  const cluster: SimCluster = {
    world,
    clock,
    calls,
    faults: options.faults ?? [],
    onStep: options.onStep,
    afterStep: undefined,
    effects: undefined as unknown as Effects,
    snapshot: () => {
      advance();
      settleAllUptimes(world);
      return structuredClone(world);
    },
    current: () => {
      advance();
      return world;
    },
    perturb: (kind, instance) => {
      advance();
      perturb(world, kind, instance);
      sortOutAll();
      if (quorate.length > 0) selfFence();
      recordInvariants(world);
    },
    killNode: (node, options = {}) => {
      advance();
      killNode(world, node, options.wroteAlone === true);
      sortOutAll();
      if (quorate.length > 0) selfFence();
      recordInvariants(world);
    },
    reviveNode: (node) => {
      advance();
      reviveNode(world, node);
      sortOutAll();
      if (quorate.length > 0) selfFence();
    },
  };

  /** Instances by resource: which guests write to a disk (instances' disks never change). */
  let writersOf: Map<string, string[]> | null = null;
  function instancesOf(resource: string): string[] {
    if (writersOf === null || writersOf.size === 0) {
      writersOf = new Map();
      for (const [name, config] of Object.entries(world.config.instances)) {
        for (const d of config.disks) writersOf.set(d.resource, [...(writersOf.get(d.resource) ?? []), name]);
      }
    }
    return writersOf.get(resource) ?? [];
  }

  /**
   * Resources that change with time (resyncing, disconnected, a link down or slow): the rest are
   * connected and in sync and stay so until a step acts on them. Every step re-sorts the resources
   * of its instance; a perturbation re-sorts them all.
   */
  const unsettled = new Set<string>();
  const settled = (r: Resource) =>
    r.slowUntil === null &&
    isConnected(r) &&
    r.links.every((l) => l.linkDownUntil === null && l.syncSource === null);
  function sortOut(names: Iterable<string>) {
    for (const name of names) {
      const r = world.resources[name];
      if (r === undefined || settled(r)) unsettled.delete(name);
      else unsettled.add(name);
    }
  }
  /** Instances whose memory is being copied somewhere: the only guests that change with time. */
  const copied = new Set<string>();
  function sortOutCopy(instance: string) {
    let any = false;
    for (const node in world.vms) any ||= copying(world.vms[node]![instance]);
    if (any) copied.add(instance);
    else copied.delete(instance);
  }
  const sortOutAll = () => {
    sortOut(Object.keys(world.resources));
    copied.clear();
    for (const node in world.vms) for (const instance in world.vms[node]) sortOutCopy(instance);
  };
  const sortOutInstance = (instance: string) => {
    sortOut((world.config.instances[instance]?.disks ?? []).map((d) => d.resource));
    sortOutCopy(instance);
  };
  sortOutAll();
  /** Resources with quorum (few or none: the self-fence looks at them only). */
  const quorate = Object.values(world.resources)
    .filter((r) => r.quorum)
    .map((r) => r.name);

  function advance() {
    const to = clock.now();
    // A self-fence due within the step happens at its time (quorum may come back later in it).
    // Each round stops a guest or clears a loss; the bound only guards against a model bug.
    for (let due = fenceDue(), round = 0; due !== null && due < to && round < 64; due = fenceDue(), round++) {
      advanceTo(due);
      selfFence();
    }
    advanceTo(to);
    if (quorate.length > 0) selfFence();
  }

  function advanceTo(to: number) {
    const dt = to - world.time;
    if (dt <= 0) return;
    for (const name of [...unsettled]) {
      const r = world.resources[name]!;
      const writers = new Set(
        Object.keys(r.local).filter((n) =>
          instancesOf(r.name).some((i) => world.vms[n]?.[i]?.state === 'running'),
        ),
      );
      advanceResource(world, r, dt, writers);
      if (settled(r)) unsettled.delete(name);
    }
    if (copied.size > 0) {
      advanceVms(world, dt, copied);
      for (const instance of [...copied]) sortOutCopy(instance);
    }
    world.time = to;
  }

  /** The earliest time a quorum-lost handler stops a guest, as the losses stand (null: none due). */
  function fenceDue(): number | null {
    let due: number | null = null;
    for (const name of quorate) {
      const r = world.resources[name];
      for (const [node, since] of Object.entries(r?.quorumLostSince ?? {})) {
        if (world.nodes[node]?.selfFences === false) continue;
        for (const instance of instancesOf(name)) {
          const fenceMs = world.config.instances[instance]?.selfFenceMs;
          if (fenceMs == null || world.vms[node]?.[instance] === undefined) continue;
          if (due === null || since + fenceMs < due) due = since + fenceMs;
        }
      }
    }
    return due;
  }

  /**
   * A quorum-lost handler at work (DRBD 9): a node running a guest that lost quorum on one of the
   * guest's disks, whatever the cause (cut off from everything, or its peer's link down with the
   * tiebreaker gone too), stops the guest once the instance's selfFenceMs has passed since the loss,
   * then demotes the disks it held (DRBD lets a Primary without quorum become Secondary once
   * nothing holds it open). A node whose handler does not run writes no more, but its guest runs on.
   */
  function selfFence() {
    for (const name of quorate) {
      const r = world.resources[name];
      if (r === undefined) continue;
      for (const node of Object.keys(r.local)) {
        const runsOne = instancesOf(r.name).some((i) => world.vms[node]?.[i] !== undefined);
        if (!runsOne || world.nodes[node]?.down === true || quorumOf(world, r, node).quorum !== 'lost') {
          delete r.quorumLostSince[node];
          continue;
        }
        // Cut off from everything: since the cut (the failover counts its bound from about then).
        r.quorumLostSince[node] ??= world.nodes[node]?.isolatedSince ?? world.time;
      }
    }
    for (const [node, vms] of Object.entries(world.vms)) {
      if (world.nodes[node]?.selfFences === false) continue;
      for (const instance of Object.keys(vms)) {
        const config = world.config.instances[instance];
        if (config === undefined || config.selfFenceMs === null) continue;
        const fenceMs = config.selfFenceMs;
        const lost = config.disks
          .map((d) => world.resources[d.resource])
          .filter((r): r is Resource => r?.quorumLostSince[node] !== undefined);
        if (!lost.some((r) => world.time >= r.quorumLostSince[node]! + fenceMs)) continue;
        removeVm(world, node, instance);
        for (const r of lost) {
          r.local[node]!.role = 'Secondary';
          delete r.quorumLostSince[node];
        }
      }
    }
  }

  async function sleep(ms: number, signal: AbortSignal) {
    if (!(await clock.sleep(ms, signal))) throw signal.reason ?? new Error('aborted');
    advance();
  }

  /**
   * One effect call: count it, take simulated time, apply an injected fault if one matches, act,
   * then check the safety rules on the world the step left.
   */
  async function act<T>(
    effect: EffectName,
    input: unknown,
    signal: AbortSignal,
    latencyMs: number,
    body: () => T | Promise<T>,
  ): Promise<T> {
    const call = ++calls[effect];
    const node =
      (input as { node?: string }).node ?? (input as { nodes?: string[] }).nodes?.join(',') ?? 'cluster';
    // A node that is down answers nothing: the call hangs until its deadline (a probe says so itself).
    // A call to one side of a link (disconnectNet's `only`) asks that node alone.
    const only = (input as { only?: string }).only;
    const on =
      only !== undefined
        ? [only]
        : [(input as { node?: string }).node, ...((input as { nodes?: string[] }).nodes ?? [])];
    const dead = on.find(
      (n) => n !== undefined && (world.nodes[n]?.down === true || world.nodes[n]?.unreachable === true),
    );
    // A probe and a self-fence wait are about a node that may not answer: they do not call it.
    if (dead !== undefined && effect !== 'probeNode' && effect !== 'awaitSelfFence') {
      await sleep((input as { timeoutMs?: number }).timeoutMs ?? 0, signal);
      throw new Error(`${dead}: cannot connect to ${dead}: timed out (the node is down)`);
    }
    await sleep(latencyMs, signal);
    const fault = faultFor(cluster.faults, effect, call);
    const injected = () => new Error(`${node}: injected fault: ${effect} failed (call ${call})`);
    const finish = async () => {
      // Its last look at quorum counts a loss the step caused from now.
      advance();
      const instance = (input as { instance?: unknown }).instance;
      // A step acts on its instance only (listInstances reads the config).
      const checked = typeof instance === 'string' ? [instance] : [];
      if (typeof instance === 'string') sortOutInstance(instance);
      const step = { effect, call, input, at: world.time, violations: recordInvariants(world, checked) };
      cluster.onStep?.(step);
      if (cluster.afterStep !== undefined) await clock.hold(cluster.afterStep(step));
    };
    if (fault?.kind === 'error') {
      await finish();
      throw injected();
    }
    if (fault?.kind === 'hang') {
      await new Promise((_, reject) =>
        signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
      );
    }
    try {
      const result = await body();
      if (fault?.kind === 'lost') throw injected();
      return result;
    } finally {
      await finish();
    }
  }

  const instanceOf = (name: string) => {
    const config = world.config.instances[name];
    if (config === undefined) throw new Error(`Instance '${name}' not known`);
    return config;
  };
  const onDisks = (disks: DiskRef[], fn: (disk: DiskRef) => void) => {
    for (const d of disks) fn(d);
  };
  const nodeSync = (node: string, disks: DiskRef[], pair: readonly string[] = []): NodeSync => {
    const towards = pair.find((n) => n !== node);
    const syncing = disks
      .map((d) => resourceOf(world, d.resource))
      .filter((r) => {
        const l = linkFor(r, node, towards);
        return l !== undefined && linkSyncing(l);
      });
    const percents = syncing
      .map((r) => statusOf(world, r, node, towards).syncPercent)
      .filter((p): p is number => p !== null);
    return { done: syncing.length === 0, percent: percents.length === 0 ? null : Math.min(...percents) };
  };
  const perNode = <T>(nodes: readonly string[], fn: (node: string) => T) =>
    Object.fromEntries(nodes.map((n) => [n, fn(n)])) as Record<string, T>;

  /** Long poll: answer when `changed` says so, when timeoutMs has passed, or at once when hurried. */
  async function longPoll<T>(
    timeoutMs: number,
    signal: AbortSignal,
    read: () => T,
    changed: (a: T, b: T) => boolean,
    hurry?: AbortSignal,
  ) {
    const start = clock.now();
    const first = read();
    let now = first;
    const wait = hurry === undefined ? signal : AbortSignal.any([signal, hurry]);
    while (!changed(first, now) && clock.now() - start < timeoutMs && !hurry?.aborted) {
      const elapsed = await clock.sleep(Math.min(POLL_MS, timeoutMs - (clock.now() - start)), wait);
      if (!elapsed && signal.aborted) throw signal.reason ?? new Error('aborted');
      advance();
      now = read();
    }
    return now;
  }

  const step = world.settings.stepMs;
  const effects: Effects = {
    getInstance: (input, signal) =>
      act('getInstance', input, signal, QUERY_MS, () => instanceOf(input.instance)),
    listInstances: (input, signal) =>
      act('listInstances', input, signal, QUERY_MS, () => Object.values(world.config.instances)),
    setPrimaryNode: (input, signal) =>
      act('setPrimaryNode', input, signal, QUERY_MS, () => {
        const config = instanceOf(input.instance);
        if (config.primaryNode === input.node) return;
        // Rule 3: the config may not name one node while the instance runs on another. (A failover
        // commits while the instance runs nowhere, then starts it where the config now says.)
        const elsewhere = Object.keys(world.vms).filter(
          (n) => n !== input.node && world.vms[n]?.[input.instance]?.state === 'running',
        );
        if (elsewhere.length > 0) {
          world.violations.push(
            `rule 3: config moved ${input.instance} to ${input.node} while it runs on ${elsewhere.join(', ')}`,
          );
        }
        // To the third copy: the old secondary becomes the third, in the same write.
        if (config.thirdCopy === input.node) config.thirdCopy = config.secondaryNode;
        config.secondaryNode = config.primaryNode;
        config.primaryNode = input.node;
        if (input.withdrawSelfFence === true) config.selfFenceMs = null;
        world.commits[input.instance] = (world.commits[input.instance] ?? 0) + 1;
      }),
    setSecondaryNode: (input, signal) =>
      act('setSecondaryNode', input, signal, QUERY_MS, () => {
        const config = instanceOf(input.instance);
        if (config.secondaryNode === input.node) return;
        if (world.nodes[input.node] === undefined) throw new Error(`${input.node}: node not known`);
        if (config.primaryNode === input.node)
          throw new Error(`${input.node} is the primary of ${input.instance}, not a secondary`);
        config.secondaryNode = input.node;
        config.formerSecondary = input.former;
      }),
    forgetFormerSecondary: (input, signal) =>
      act('forgetFormerSecondary', input, signal, QUERY_MS, () => {
        instanceOf(input.instance).formerSecondary = null;
      }),
    setThirdCopyNode: (input, signal) =>
      act('setThirdCopyNode', input, signal, QUERY_MS, () => {
        const config = instanceOf(input.instance);
        if (config.thirdCopy === input.node) return;
        if (world.nodes[input.node] === undefined) throw new Error(`${input.node}: node not known`);
        if (config.primaryNode === input.node || config.secondaryNode === input.node)
          throw new Error(`${input.node} holds a copy of ${input.instance} already, not a third copy`);
        if (config.thirdCopy !== input.former)
          throw new Error(`${input.former} is not the third copy of ${input.instance}`);
        config.thirdCopy = input.node;
        config.formerThirdCopy = input.former;
      }),
    forgetFormerThirdCopy: (input, signal) =>
      act('forgetFormerThirdCopy', input, signal, QUERY_MS, () => {
        instanceOf(input.instance).formerThirdCopy = null;
      }),
    takeoverLoad: (input, signal) =>
      act('takeoverLoad', input, signal, QUERY_MS, () => {
        const kin = Object.values(world.config.instances).filter(
          (i) => i.primaryNode === input.primary && i.secondaryNode === input.node,
        );
        return { instances: kin.map((i) => i.name), memoryMiB: kin.reduce((a, i) => a + i.memoryMiB, 0) };
      }),
    listNodes: (input, signal) =>
      act('listNodes', input, signal, QUERY_MS, () =>
        Object.entries(world.nodes).map(([name, n]) => ({ name, drained: n.drained })),
      ),
    setNodeDrained: (input, signal) =>
      act('setNodeDrained', input, signal, QUERY_MS, () => {
        const n = world.nodes[input.node];
        if (n === undefined) throw new Error(`${input.node}: node not known`);
        n.drained = input.drained;
      }),
    nodeStorage: (input, signal) =>
      act('nodeStorage', input, signal, QUERY_MS, () => nodeStorage(world, input.node)),
    createDisks: (input, signal) =>
      act('createDisks', input, signal, step, () => {
        // As the SSH backend: a copy of an instance with selfFenceMs only where it would self-fence.
        const config = world.config.instances[input.instance];
        const resource = input.disks[0]?.resource;
        if (
          config?.selfFenceMs != null &&
          config.drbdVersion === '9' &&
          resource !== undefined &&
          world.nodes[input.node]?.selfFences === false
        )
          throw new Error(noSelfFence(input.node, input.instance, resource));
        return onDisks(input.disks, (d) => createDisk(world, input.node, d));
      }),
    removeDisks: (input, signal) =>
      act('removeDisks', input, signal, step, () =>
        onDisks(input.disks, (d) => removeDisk(world, input.node, d)),
      ),
    nodeInfo: (input, signal) =>
      act('nodeInfo', input, signal, QUERY_MS, () =>
        perNode(input.nodes, (n) => {
          const node = world.nodes[n];
          if (node === undefined) throw new Error(`${n}: node not known`);
          return {
            memoryFreeMiB: memoryFreeMiB(world, n),
            hypervisorVersion: node.hypervisorVersion,
            drained: node.drained,
          };
        }),
      ),
    instanceInfo: (input, signal) =>
      act('instanceInfo', input, signal, QUERY_MS, () => {
        const vm = vmOn(world, input.node, input.instance);
        return {
          running: vm?.state === 'running',
          state: vm?.state ?? null,
          memoryMiB: vm?.memoryMiB ?? null,
        };
      }),
    instanceList: (input, signal) =>
      act('instanceList', input, signal, QUERY_MS, () =>
        // As the SSH backend: the machines ask where the instance is, not what else a node runs.
        perNode(input.nodes, (n) => {
          const vm = world.vms[n]?.[input.instance];
          return vm === undefined ? [] : [{ name: input.instance, state: vm.state }];
        }),
      ),
    diskStatus: (input, signal) =>
      act('diskStatus', input, signal, QUERY_MS, () =>
        perNode(input.nodes, (n) =>
          input.disks.map((d) =>
            statusOf(
              world,
              resourceOf(world, d.resource),
              n,
              input.nodes.find((x) => x !== n),
            ),
          ),
        ),
      ),
    nodeDiskStatus: (input, signal) =>
      act('nodeDiskStatus', input, signal, QUERY_MS, () => {
        const config = world.config.instances[input.instance];
        const towards =
          input.peer ??
          (config === undefined
            ? undefined
            : defaultPeer(input.node, config.primaryNode, config.secondaryNode));
        return input.disks.map((d) => statusOf(world, resourceOf(world, d.resource), input.node, towards));
      }),
    probeNode: (input, signal) =>
      act('probeNode', input, signal, QUERY_MS, async () => {
        const n = world.nodes[input.node];
        if (n?.down === true || n?.unreachable === true) {
          // The probe's own deadline, shorter than the step's: no answer is the answer.
          await sleep(Math.max(0, input.timeoutMs / 2), signal);
          return { reachable: false, error: `${input.node}: connection timed out`, state: null };
        }
        return {
          reachable: true,
          error: null,
          state: vmOn(world, input.node, input.instance)?.state ?? null,
        };
      }),
    awaitSelfFence: (input, signal) =>
      act('awaitSelfFence', input, signal, 0, async () => {
        await sleep(input.withinMs, signal);
      }),
    migrationInfo: (input, signal) =>
      act('migrationInfo', input, signal, QUERY_MS, () => {
        const vm = vmOn(world, input.node, input.instance);
        if (vm === undefined) throw new Error(`Instance ${input.instance} not running on ${input.node}`);
        return { memoryMiB: vm.memoryMiB, uptimeMs: uptimeOf(world, vm) };
      }),
    // Page sampling counts a page once per window: a guest rewriting its working set shows that
    // set's size per window, however often it rewrites it.
    measureDirtyRate: (input, signal) =>
      act('measureDirtyRate', input, signal, input.calcSeconds * 1000, () => {
        const vm = vmOn(world, input.node, input.instance);
        if (vm?.state !== 'running')
          throw new Error(
            `Instance ${input.instance} is ${vm?.state ?? 'not running'} on ${input.node}: its dirty rate is measured only while it runs`,
          );
        const guest = world.guests[input.instance];
        const rate =
          guest === undefined
            ? 0
            : Math.min(
                guest.dirtyMiBps * (1 - vm.tuning.throttlePercent / 100),
                guest.workingSetMiB / input.calcSeconds,
              );
        return { dirtyMiBps: rate, calcSeconds: input.calcSeconds, mode: 'page-sampling' as const };
      }),
    closeDisks: (input, signal) =>
      act('closeDisks', input, signal, step, () =>
        onDisks(input.disks, (d) => {
          const shared = sharedDiskOf(world, d.resource);
          if (shared !== undefined) closeShared(world, shared, input.node, input.instance);
          else demote(world, resourceOf(world, d.resource), input.node, input.instance);
        }),
      ),
    openDisks: (input, signal) =>
      act('openDisks', input, signal, step, () =>
        onDisks(input.disks, (d) => {
          const shared = sharedDiskOf(world, d.resource);
          if (shared !== undefined) openShared(shared, input.node, input.exclusive);
          else promote(world, resourceOf(world, d.resource), input.node);
        }),
      ),
    disconnectNet: (input, signal) =>
      act('disconnectNet', input, signal, step, () =>
        onDisks(input.disks, (d) => {
          const [a, b] = input.nodes;
          for (const n of input.only === undefined ? input.nodes : [input.only])
            disconnect(resourceOf(world, d.resource), n, n === a ? b : a);
        }),
      ),
    removePeer: (input, signal) =>
      act('removePeer', input, signal, step, () =>
        onDisks(input.disks, (d) => removePeer(world, resourceOf(world, d.resource), input.node, input.peer)),
      ),
    attachNet: (input, signal) =>
      act('attachNet', input, signal, step, async () => {
        // Ganeti's DrbdAttachNet: configure both sides, then wait for the connection, re-attaching a
        // side that dropped to StandAlone (the peer may have refused a mismatching configuration).
        const start = clock.now();
        // A node not yet the other's peer (a new secondary) becomes it: on DRBD 9 beside the pair,
        // on 8.4 in place of the old peer.
        const [a, b] = input.nodes;
        // DRBD 9: a new secondary and the resource's tiebreaker take each other as peers.
        const first = input.disks[0];
        const tiebreaker = first === undefined ? null : (world.resources[first.resource]?.tiebreaker ?? null);
        if (tiebreaker !== null && input.nodes.includes(tiebreaker)) {
          const node = a === tiebreaker ? b : a;
          for (;;) {
            await sleep(world.settings.connectMs, signal);
            const joined = input.disks.map((d) => joinTiebreaker(world, resourceOf(world, d.resource), node));
            if (joined.every(Boolean)) return;
            if (clock.now() - start >= input.timeoutMs)
              throw new Error(`${input.nodes.join(', ')}: Timeout in disk reconnecting`);
          }
        }
        onDisks(input.disks, (d) => {
          const r = resourceOf(world, d.resource);
          if (linkBetween(r, a, b) !== undefined) return;
          // The node that has peers already stays; the other (a new copy, no peer of its own yet
          // or only those it joined) joins it.
          const [stays, joins] = onlyJoining(r, a) ? [b, a] : [a, b];
          if (r.drbd === '9') addPeer(r, stays, joins);
          else switchPeer(r, stays, joins);
        });
        const link = (r: Resource) => linkBetween(r, a, b);
        for (;;) {
          onDisks(input.disks, (d) => {
            const r = resourceOf(world, d.resource);
            const l = link(r);
            if (l === undefined) return;
            for (const n of input.nodes)
              if ((l.connection[n] ?? 'StandAlone') === 'StandAlone')
                configureNet(l, n, input.multimaster, input.discardOn === n, r.name);
          });
          await sleep(world.settings.connectMs, signal);
          onDisks(input.disks, (d) => {
            const r = resourceOf(world, d.resource);
            const l = link(r);
            if (l !== undefined) handshake(world, r, l);
          });
          if (
            input.disks.every((d) => {
              const l = link(resourceOf(world, d.resource));
              return l !== undefined && linkConnected(l);
            })
          )
            return;
          if (clock.now() - start >= input.timeoutMs)
            throw new Error(`${input.nodes.join(', ')}: Timeout in disk reconnecting`);
        }
      }),
    waitSync: (input, signal, hurry) =>
      act('waitSync', input, signal, QUERY_MS, async () => {
        const read = () => perNode(input.nodes, (n) => nodeSync(n, input.disks, input.nodes));
        const key = (s: Record<string, NodeSync>) =>
          JSON.stringify(Object.values(s).map((x) => [x.done, Math.floor(x.percent ?? 100)]));
        for (const d of input.disks) {
          const r = resourceOf(world, d.resource);
          const l = linkFor(r, input.nodes[0], input.nodes[1]);
          if (l === undefined || !linkConnected(l))
            throw new Error(
              `${input.nodes.join(', ')}: DRBD device ${r.name} is not in sync: ${l?.connection[input.nodes[1]] ?? 'StandAlone'}`,
            );
        }
        const nodes = await longPoll(input.timeoutMs, signal, read, (a, b) => key(a) !== key(b), hurry);
        return { nodes, at: clock.now() };
      }),
    shutdownInstance: (input, signal) =>
      act('shutdownInstance', input, signal, step, () => shutdownInstance(world, input.node, input.instance)),
    startInstance: (input, signal) =>
      act('startInstance', input, signal, step, () => startInstance(world, input.node, input.instance)),
    balloonMemory: (input, signal) =>
      act('balloonMemory', input, signal, step, () =>
        balloon(world, input.node, input.instance, input.memoryMiB),
      ),
    acceptInstance: (input, signal) =>
      act('acceptInstance', input, signal, step, () => {
        const memoryMiB =
          vmOn(world, input.source, input.instance)?.memoryMiB ?? instanceOf(input.instance).memoryMiB;
        acceptIncoming(world, input.node, input.instance, memoryMiB, input.postcopy);
      }),
    setMigrationParameters: (input, signal) =>
      act('setMigrationParameters', input, signal, QUERY_MS, () =>
        tune(world, input.node, input.instance, input),
      ),
    startPostcopy: (input, signal) =>
      act('startPostcopy', input, signal, QUERY_MS, () => startPostcopy(world, input.node, input.instance)),
    migrateInstance: (input, signal) =>
      act('migrateInstance', input, signal, step, () =>
        startMigration(world, input.node, input.target, input.instance, input.live),
      ),
    migrationStatus: (input, signal, hurry) =>
      act('migrationStatus', input, signal, QUERY_MS, async () => {
        const read = () => migrationStatus(world, input.node, input.instance);
        // Answer on a status change, a new dirty pass (QEMU's MIGRATION_PASS event), or about every 5%
        // of the copy.
        // A busy guest's copy is judged pass by pass: it answers once a pass.
        const busy = () => (world.guests[input.instance]?.dirtyMiBps ?? 0) > 0;
        const changed = (a: ReturnType<typeof read>, b: ReturnType<typeof read>) =>
          a.status !== b.status ||
          a.passes !== b.passes ||
          (!busy() && (b.transferredMiB ?? 0) - (a.transferredMiB ?? 0) >= (b.totalMiB ?? 0) / 20);
        return { ...(await longPoll(input.timeoutMs, signal, read, changed, hurry)), at: clock.now() };
      }),
    finalizeMigrationSource: (input, signal) =>
      act('finalizeMigrationSource', input, signal, step, () =>
        finalizeSource(world, input.node, input.instance, input.success),
      ),
    finalizeMigrationTarget: (input, signal) =>
      act('finalizeMigrationTarget', input, signal, step, () =>
        finalizeTarget(world, input.node, input.instance, input.success),
      ),
  };
  (cluster as { effects: Effects }).effects = effects;
  return cluster;
}
