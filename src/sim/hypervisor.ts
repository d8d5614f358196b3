import type { MigrationStatus } from '../../machines/index.js';
import { localOf, resourceOf } from './drbd.js';
import { sharedDiskOf, sharedOpenOn } from './shared.js';
import type { Vm, World } from './world.js';

/**
 * QEMU's behaviour as migration sees it: an incoming instance waits in 'inmigrate', the memory copy
 * takes time, on completion the source pauses in 'postmigrate' and the target runs, a killed target
 * fails the source's migration, and 'cont' resumes a paused source.
 */

export function vmOn(world: World, node: string, instance: string): Vm | undefined {
  return world.vms[node]?.[instance];
}

function vmsOf(world: World, node: string) {
  const vms = world.vms[node];
  if (vms === undefined) throw new Error(`unknown node ${node}`);
  return vms;
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
  const used = Object.values(vmsOf(world, node)).reduce((sum, vm) => sum + vm.memoryMiB, 0);
  return Math.max(0, (world.nodes[node]?.memoryMiB ?? 0) - used);
}

/** Start the target QEMU waiting for the incoming migration; it opens the DRBD devices read-write. */
export function acceptIncoming(world: World, node: string, instance: string, memoryMiB: number): void {
  const existing = vmOn(world, node, instance);
  if (existing?.state === 'inmigrate') return;
  if (existing !== undefined) throw new Error(`instance ${instance} is already ${existing.state} on ${node}`);
  openDisksFor(world, node, instance);
  if (memoryFreeMiB(world, node) < memoryMiB)
    throw new Error(`qemu: cannot allocate ${memoryMiB} MiB of guest memory`);
  vmsOf(world, node)[instance] = { state: 'inmigrate', memoryMiB, uptimeMs: 0, migration: null };
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
  if (!live) vm.state = 'paused';
  vm.migration = {
    target,
    live,
    status: 'active',
    transferredMiB: 0,
    totalMiB: vm.memoryMiB * (live ? world.settings.liveOverhead : 1),
    postcopy: world.settings.postcopy,
    breaksInPostcopy: false,
  };
}

export function migrationStatus(world: World, node: string, instance: string): Omit<MigrationStatus, 'at'> {
  const m = vmOn(world, node, instance)?.migration;
  if (m === undefined || m === null) {
    return { status: 'none', transferredMiB: null, totalMiB: null, remainingMiB: null };
  }
  return {
    status: m.status,
    transferredMiB: Math.round(m.transferredMiB),
    totalMiB: Math.round(m.totalMiB),
    remainingMiB: Math.round(Math.max(0, m.totalMiB - m.transferredMiB)),
  };
}

function switchOver(world: World, source: Vm, target: string, instance: string) {
  const incoming = vmOn(world, target, instance);
  if (incoming === undefined) return;
  incoming.state = 'running';
  incoming.uptimeMs = source.uptimeMs;
  source.state = 'postmigrate';
}

/** Memory copy and guest uptime over dt simulated ms. */
export function advanceVms(world: World, dtMs: number): void {
  for (const vms of Object.values(world.vms)) {
    for (const [instance, vm] of Object.entries(vms)) {
      if (vm.state === 'running') vm.uptimeMs += dtMs;
      const m = vm.migration;
      if (m === null || (m.status !== 'active' && m.status !== 'postcopy-active')) continue;
      if (vmOn(world, m.target, instance) === undefined) {
        // The target went away: QEMU fails the migration. Before the switch-over the source still
        // has the guest (running, or paused for a non-live copy); after a postcopy switch it has
        // only part of its memory and stays a leftover.
        m.status = 'failed';
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
        if (target !== undefined) target.state = 'paused';
        continue;
      }
      if (m.transferredMiB >= m.totalMiB) {
        if (m.status === 'active') switchOver(world, vm, m.target, instance);
        m.status = 'completed';
      }
    }
  }
}

/** finalize_migration_src: on success quit the source; on failure cancel and resume it. */
export function finalizeSource(world: World, node: string, instance: string, success: boolean): void {
  const vm = vmOn(world, node, instance);
  if (vm === undefined) return;
  if (success) {
    if (vm.state === 'running')
      throw new Error(`qemu: refusing to quit ${instance}: it is still running here`);
    delete vmsOf(world, node)[instance];
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
    vm.state = 'running';
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
  if (vm !== undefined) delete vmsOf(world, node)[instance];
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
  vmsOf(world, node)[instance] = {
    state: 'running',
    memoryMiB: config.memoryMiB,
    uptimeMs: 0,
    migration: null,
  };
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
  delete vmsOf(world, node)[instance];
}

export function balloon(world: World, node: string, instance: string, memoryMiB: number): void {
  const vm = vmOn(world, node, instance);
  if (vm === undefined) throw new Error(`Instance ${instance} not running on ${node}`);
  vm.memoryMiB = memoryMiB;
}
