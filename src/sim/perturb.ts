import { z } from 'zod';
import { isConnected, linkDown, localOf, peerOf, resourceOf } from './drbd.js';
import type { World } from './world.js';

/**
 * Things that happen to a cluster by themselves, timed by tests: the replication link drops (and
 * comes back), a resync crawls, the target's QEMU dies, a postcopy copy loses its link.
 */
export const Perturbation = z.enum([
  'linkDown',
  'resyncStall',
  'resyncPending',
  'targetDies',
  'postcopyBreaks',
  'copyCompletes',
  'commitLands',
  'sourcePauses',
]);
export type Perturbation = z.infer<typeof Perturbation>;

/** How long a dropped link stays down, in simulated ms. */
const LINK_DOWN_MS = 2_000;
/** A burst of writes that the peer has to catch up on. */
const BURST_KIB = 64 * 1024;
/** A stalled resync: a gigabyte pending at a rate that moves no visible percent, for a minute and a half. */
const STALL_KIB = 1024 * 1024;
const STALL_KIBPS = 0.01;
const STALL_MS = 90_000;

export function perturb(world: World, kind: Perturbation, instance: string): void {
  const config = world.config.instances[instance];
  if (config === undefined) throw new Error(`instance ${instance} is not defined`);
  // Shared-storage disks have no replication to disturb.
  const resources = config.disks
    .filter((d) => world.resources[d.resource] !== undefined)
    .map((d) => resourceOf(world, d.resource));
  switch (kind) {
    case 'linkDown':
      for (const r of resources) linkDown(r, world.time + LINK_DOWN_MS);
      return;
    case 'resyncStall':
      for (const r of resources) {
        if (!isConnected(r)) continue;
        const source = r.nodes.find((n) => localOf(r, n).role === 'Primary') ?? r.nodes[0];
        r.syncSource = source;
        r.outOfSyncKiB += STALL_KIB;
        r.syncTotalKiB = r.outOfSyncKiB;
        r.resyncKiBps = STALL_KIBPS;
        r.slowUntil = world.time + STALL_MS;
        localOf(r, peerOf(r, source)).diskState = 'Inconsistent';
      }
      return;
    case 'targetDies':
      for (const vms of Object.values(world.vms)) {
        const vm = vms[instance];
        if (vm?.migration) delete world.vms[vm.migration.target]?.[instance];
      }
      return;
    case 'resyncPending':
      for (const r of resources) {
        if (!isConnected(r)) continue;
        const source = r.syncSource ?? r.nodes.find((n) => localOf(r, n).role === 'Primary') ?? r.nodes[0];
        if (localOf(r, peerOf(r, source)).role === 'Primary') continue;
        r.syncSource = source;
        r.outOfSyncKiB += BURST_KIB;
        r.syncTotalKiB = r.outOfSyncKiB;
        localOf(r, peerOf(r, source)).diskState = 'Inconsistent';
      }
      return;
    // The copy reaches its end right now (the last pages go while nobody watches).
    case 'copyCompletes':
      for (const vms of Object.values(world.vms)) {
        const m = vms[instance]?.migration;
        if (m !== undefined && m !== null && m.status === 'active') m.transferredMiB = m.totalMiB - 1e-9;
      }
      return;
    // A config write whose answer was lost had taken effect: the config names the other node.
    case 'commitLands':
      if (config.secondaryNode !== null) {
        [config.primaryNode, config.secondaryNode] = [config.secondaryNode, config.primaryNode];
        world.commits[instance] = (world.commits[instance] ?? 0) + 1;
      }
      return;
    // The guest on the config's primary stands paused (a non-live copy aborted without 'cont').
    case 'sourcePauses': {
      const vm = world.vms[config.primaryNode]?.[instance];
      if (vm?.state === 'running') vm.state = 'paused';
      return;
    }
    // Takes effect when (or as soon as) the copy runs in postcopy.
    case 'postcopyBreaks':
      for (const vms of Object.values(world.vms)) {
        const m = vms[instance]?.migration;
        if (m !== undefined && m !== null) m.breaksInPostcopy = true;
      }
      return;
  }
}
