import type { MigrationStatus } from '../../machines/index.js';
import { localOf, resourceOf } from './drbd.js';
import { placeVm, removeVm, resizeVm, setRunState, uptimeOf, usedMemoryMiB } from './guests.js';
import { sharedDiskOf, sharedOpenOn } from './shared.js';
import { FRESH_TUNING, type Migration, type Vm, type World } from './world.js';

/**
 * QEMU's behaviour as migration sees it: an incoming instance waits in 'inmigrate', the memory copy
 * takes time, on completion the source pauses in 'postmigrate' and the target runs, a killed target
 * fails the source's migration, and 'cont' resumes a paused source.
 */

export function vmOn(world: World, node: string, instance: string): Vm | undefined {
  return world.vms[node]?.[instance];
}

function instanceConfig(world: World, instance: string) {
  const config = world.config.instances[instance];
  if (config === undefined) throw new Error(`instance ${instance} is not defined`);
  return config;
}

/** A QEMU opens the instance's disks read-write: each must be Primary (DRBD) or activated (shared) here. */
function openDisksFor(world: World, node: string, instance: string): void {
  for (const disk of instanceConfig(world, instance).disks) {
    const shared = sharedDiskOf(world, disk.resource);
    if (shared !== undefined) {
      if (!sharedOpenOn(shared, node))
        throw new Error(`qemu: Could not open '${disk.resource}': not activated`);
    } else if (localOf(resourceOf(world, disk.resource), node).role !== 'Primary') {
      throw new Error(`qemu: Could not open '/dev/drbd${disk.minor}': Wrong medium type`);
    }
  }
}

export function memoryFreeMiB(world: World, node: string): number {
  return Math.max(0, (world.nodes[node]?.memoryMiB ?? 0) - usedMemoryMiB(world, node));
}

/** Start the target QEMU waiting for the incoming migration; it opens the DRBD devices read-write. */
export function acceptIncoming(
  world: World,
  node: string,
  instance: string,
  memoryMiB: number,
  postcopy = false,
): void {
  const existing = vmOn(world, node, instance);
  if (existing?.state === 'inmigrate') {
    existing.tuning.postcopy = postcopy;
    return;
  }
  if (existing !== undefined) throw new Error(`instance ${instance} is already ${existing.state} on ${node}`);
  openDisksFor(world, node, instance);
  if (memoryFreeMiB(world, node) < memoryMiB)
    throw new Error(`qemu: cannot allocate ${memoryMiB} MiB of guest memory`);
  placeVm(world, node, instance, {
    state: 'inmigrate',
    memoryMiB,
    uptimeMs: 0,
    migration: null,
    tuning: { ...FRESH_TUNING, postcopy },
  });
}

/** migrate-set-parameters and -capabilities; capabilities only while no copy runs, as QEMU. */
export function tune(
  world: World,
  node: string,
  instance: string,
  change: {
    bandwidthMiBps?: number | undefined;
    downtimeMs?: number | undefined;
    prepare?: { autoConverge: boolean; postcopy: boolean } | undefined;
    throttle?: true | undefined;
  },
): void {
  const vm = vmOn(world, node, instance);
  if (vm === undefined) throw new Error(`qemu: instance ${instance} is not running on ${node}`);
  const copying = vm.migration?.status === 'active' || vm.migration?.status === 'postcopy-active';
  if (change.prepare !== undefined) {
    if (copying) throw new Error(`qemu: There's a migration process in progress (${instance} on ${node})`);
    vm.tuning.autoConverge = change.prepare.autoConverge;
    vm.tuning.postcopy = change.prepare.postcopy;
    vm.tuning.throttlePercent = 0;
  }
  if (change.bandwidthMiBps !== undefined) vm.tuning.bandwidthMiBps = change.bandwidthMiBps;
  if (change.downtimeMs !== undefined) vm.tuning.downtimeMs = change.downtimeMs;
  if (change.throttle === true) {
    if (!vm.tuning.autoConverge)
      throw new Error(`qemu: auto-converge was not enabled before the copy of ${instance} on ${node}`);
    // At once to QEMU's max-cpu-throttle: QEMU ramps up pass by pass, which the machine waits out
    // (it reads the throttle in each status); the simulator spares the passes.
    vm.tuning.throttlePercent = 99;
  }
}

/** migrate-start-postcopy: the target runs the guest and pulls what is left. */
export function startPostcopy(world: World, node: string, instance: string): void {
  const vm = vmOn(world, node, instance);
  const m = vm?.migration;
  if (vm === undefined || m === undefined || m === null) {
    throw new Error(`qemu: no migration of ${instance} runs on ${node}`);
  }
  if (m.status === 'postcopy-active' || m.status === 'completed') return;
  if (m.status !== 'active') throw new Error(`qemu: the migration of ${instance} is ${m.status}`);
  if (!vm.tuning.postcopy || vmOn(world, m.target, instance)?.tuning.postcopy !== true) {
    throw new Error(`qemu: postcopy-ram was not enabled on both sides before the copy of ${instance}`);
  }
  m.status = 'postcopy-active';
  m.passLeftMiB = busyGuest(world, instance, m)
    ? Math.min(vm.memoryMiB, m.passLeftMiB + m.dirtiedMiB)
    : m.totalMiB - m.transferredMiB;
  m.dirtiedMiB = 0;
  switchOver(world, vm, m.target, instance);
}

/** A live copy of a guest that dirties memory: copied pass by pass (the others as one stream). */
function busyGuest(world: World, instance: string, m: Migration): boolean {
  return m.live && (world.guests[instance]?.dirtyMiBps ?? 0) > 0;
}

export function startMigration(
  world: World,
  source: string,
  target: string,
  instance: string,
  live: boolean,
): void {
  const vm = vmOn(world, source, instance);
  if (vm === undefined) throw new Error(`Instance ${instance} not running, cannot migrate`);
  if (vm.migration?.status === 'active' || vm.migration?.status === 'postcopy-active') return;
  if (vm.state !== 'running' && vm.state !== 'paused')
    throw new Error(`qemu: instance is ${vm.state}, cannot migrate`);
  if (vmOn(world, target, instance)?.state !== 'inmigrate') {
    throw new Error(`qemu: Failed to connect to ${target}: Connection refused`);
  }
  if (!live) setRunState(world, vm, 'paused');
  const migration: Migration = {
    target,
    live,
    status: 'active',
    transferredMiB: 0,
    totalMiB: vm.memoryMiB * (live ? world.settings.liveOverhead : 1),
    postcopy: world.settings.postcopy,
    breaksInPostcopy: false,
    passes: 1,
    passLeftMiB: vm.memoryMiB,
    dirtiedMiB: 0,
  };
  // A busy guest's copy is counted in passes: its total is the guest's memory, as QEMU's ram.total.
  if (busyGuest(world, instance, migration)) migration.totalMiB = vm.memoryMiB;
  vm.migration = migration;
}

export function migrationStatus(world: World, node: string, instance: string): Omit<MigrationStatus, 'at'> {
  const vm = vmOn(world, node, instance);
  const m = vm?.migration;
  if (m === undefined || m === null) {
    return {
      status: 'none',
      transferredMiB: null,
      totalMiB: null,
      remainingMiB: null,
      passes: null,
      throttlePercent: null,
    };
  }
  const remaining = busyGuest(world, instance, m) ? m.passLeftMiB : m.totalMiB - m.transferredMiB;
  return {
    status: m.status,
    transferredMiB: Math.round(m.transferredMiB),
    totalMiB: Math.round(m.totalMiB),
    remainingMiB: Math.round(Math.max(0, remaining)),
    passes: m.passes,
    throttlePercent: vm?.tuning.throttlePercent ? vm.tuning.throttlePercent : null,
  };
}

function switchOver(world: World, source: Vm, target: string, instance: string) {
  const incoming = vmOn(world, target, instance);
  if (incoming === undefined) return;
  incoming.uptimeMs = uptimeOf(world, source);
  setRunState(world, incoming, 'running');
  setRunState(world, source, 'postmigrate');
}

/** Whether a guest's memory is being copied (what `advanceVms` moves on). */
export function copying(vm: Vm | undefined): boolean {
  const status = vm?.migration?.status;
  return status === 'active' || status === 'postcopy-active';
}

/**
 * The memory copies of the given instances over dt simulated ms (the caller keeps the set of those
 * being copied: the others have nothing that moves with time but their uptime, counted lazily).
 */
export function advanceVms(world: World, dtMs: number, instances: Iterable<string>): void {
  for (const instance of instances) {
    for (const node in world.vms) {
      const vm = world.vms[node]![instance];
      if (vm === undefined || !copying(vm)) continue;
      const m = vm.migration!;
      if (vmOn(world, m.target, instance) === undefined) {
        // The target went away: QEMU fails the migration. Before the switch-over the source still
        // has the guest (running, or paused for a non-live copy); after a postcopy switch it has
        // only part of its memory and stays a leftover.
        m.status = 'failed';
        continue;
      }
      if (busyGuest(world, instance, m)) {
        copyPasses(world, vm, instance, m, dtMs);
        continue;
      }
      m.transferredMiB = Math.min(
        m.totalMiB,
        m.transferredMiB + (world.settings.migrationMiBps * dtMs) / 1000,
      );
      if (m.status === 'active' && m.postcopy) {
        m.status = 'postcopy-active';
        switchOver(world, vm, m.target, instance);
      }
      if (m.status === 'postcopy-active' && m.breaksInPostcopy) {
        m.status = 'postcopy-paused';
        const target = vmOn(world, m.target, instance);
        if (target !== undefined) setRunState(world, target, 'paused');
        continue;
      }
      if (m.transferredMiB >= m.totalMiB) {
        if (m.status === 'active') switchOver(world, vm, m.target, instance);
        m.status = 'completed';
      }
    }
  }
}

/**
 * The textbook precopy model: a pass sends what the last one left dirty; whatever the guest dirtied
 * meanwhile (at most its working set) is the next pass. When a pass would fit in the downtime limit
 * the guest is stopped and the rest sent. Auto-converge throttles the guest's CPUs, more each pass;
 * after a switch to postcopy nothing is dirtied on the source any more.
 */
function copyPasses(world: World, vm: Vm, instance: string, m: Migration, dtMs: number): void {
  const guest = world.guests[instance]!;
  const bandwidth = Math.min(world.settings.migrationMiBps, vm.tuning.bandwidthMiBps ?? Infinity);
  let left = dtMs / 1000;
  while (left > 0 && (m.status === 'active' || m.status === 'postcopy-active')) {
    if (vmOn(world, m.target, instance) === undefined) {
      m.status = 'failed';
      return;
    }
    if (m.status === 'postcopy-active' && m.breaksInPostcopy) {
      m.status = 'postcopy-paused';
      const target = vmOn(world, m.target, instance);
      if (target !== undefined) setRunState(world, target, 'paused');
      return;
    }
    const spent = Math.min(left, m.passLeftMiB / bandwidth);
    m.passLeftMiB -= spent * bandwidth;
    m.transferredMiB += spent * bandwidth;
    left -= spent;
    if (m.status === 'active') {
      const dirtyRate = guest.dirtyMiBps * (1 - vm.tuning.throttlePercent / 100);
      m.dirtiedMiB = Math.min(guest.workingSetMiB, m.dirtiedMiB + dirtyRate * spent);
    }
    if (m.passLeftMiB > 1e-9) continue;
    if (m.status === 'postcopy-active') {
      m.status = 'completed';
      return;
    }
    // The pass is sent: what was dirtied meanwhile either fits in the downtime, or is the next pass.
    if (m.dirtiedMiB <= (bandwidth * vm.tuning.downtimeMs) / 1000) {
      m.transferredMiB += m.dirtiedMiB;
      m.dirtiedMiB = 0;
      m.passLeftMiB = 0;
      switchOver(world, vm, m.target, instance);
      m.status = 'completed';
      return;
    }
    m.passes += 1;
    m.passLeftMiB = m.dirtiedMiB;
    m.dirtiedMiB = 0;
    if (vm.tuning.throttlePercent > 0)
      vm.tuning.throttlePercent = Math.min(99, vm.tuning.throttlePercent + 10);
  }
}

/** finalize_migration_src: on success quit the source; on failure cancel and resume it. */
export function finalizeSource(world: World, node: string, instance: string, success: boolean): void {
  const vm = vmOn(world, node, instance);
  if (vm === undefined) return;
  if (success) {
    if (vm.state === 'running')
      throw new Error(`qemu: refusing to quit ${instance}: it is still running here`);
    removeVm(world, node, instance);
    return;
  }
  // A driver checks reality before acting: a copy that completed handed the guest to the target.
  if (vm.migration?.status === 'completed' && vmOn(world, vm.migration.target, instance) !== undefined) {
    throw new Error(
      `qemu: refusing to resume ${instance}: its migration to ${vm.migration.target} completed`,
    );
  }
  if (vm.migration !== null && vm.migration.status === 'active') vm.migration.status = 'cancelled';
  if (vm.migration?.status === 'postcopy-active' || vm.migration?.status === 'postcopy-paused') {
    throw new Error(`qemu: cannot resume ${instance}: its memory has moved on with postcopy`);
  }
  // 'cont' resumes a paused or post-migrate source, as QEMU does.
  if (vm.state === 'paused' || vm.state === 'postmigrate' || vm.state === 'finish-migrate')
    setRunState(world, vm, 'running');
}

/** finalize_migration_dst: on success the target keeps running; on failure it is killed. */
export function finalizeTarget(world: World, node: string, instance: string, success: boolean): void {
  const vm = vmOn(world, node, instance);
  if (success) {
    if (vm === undefined || vm.state !== 'running') {
      throw new Error(
        `qemu: instance ${instance} is ${vm?.state ?? 'not present'} on ${node}, cannot finalize`,
      );
    }
    vm.migration = null;
    return;
  }
  if (vm !== undefined) removeVm(world, node, instance);
}

/** instance_start: boot the instance from its disks, which must be Primary (or open) here. */
export function startInstance(world: World, node: string, instance: string): void {
  const existing = vmOn(world, node, instance);
  if (existing?.state === 'running') return;
  if (existing !== undefined)
    throw new Error(`qemu: instance ${instance} is already ${existing.state} on ${node}`);
  const config = instanceConfig(world, instance);
  openDisksFor(world, node, instance);
  if (memoryFreeMiB(world, node) < config.memoryMiB)
    throw new Error(`qemu: cannot allocate ${config.memoryMiB} MiB of guest memory`);
  // A fresh boot: the guest's count starts again (from what its disk holds, on real nodes).
  placeVm(world, node, instance, {
    state: 'running',
    memoryMiB: config.memoryMiB,
    uptimeMs: 0,
    migration: null,
    tuning: { ...FRESH_TUNING },
  });
}

/** instance_shutdown: the guest is gone from the node afterwards (idempotent). */
export function shutdownInstance(world: World, node: string, instance: string): void {
  const vm = vmOn(world, node, instance);
  if (vm === undefined) return;
  if (
    vm.migration !== null &&
    ['active', 'postcopy-active', 'postcopy-paused'].includes(vm.migration.status)
  ) {
    throw new Error(
      `qemu: refusing to shut down ${instance} on ${node}: its migration is ${vm.migration.status}`,
    );
  }
  removeVm(world, node, instance);
}

export function balloon(world: World, node: string, instance: string, memoryMiB: number): void {
  const vm = vmOn(world, node, instance);
  if (vm === undefined) throw new Error(`Instance ${instance} not running on ${node}`);
  resizeVm(world, node, vm, memoryMiB);
}
