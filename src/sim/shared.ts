import type { SharedDisk, World } from './world.js';

/**
 * Shared storage (Ganeti's ext-mirror templates, here a block device both nodes reach): no
 * replication, only which node has the disk open and how. Opening it on a node beside an exclusive
 * opener is refused, as is closing it under a guest that holds it.
 */

export const sharedDiskOf = (world: World, name: string): SharedDisk | undefined => world.sharedDisks[name];

export function openShared(d: SharedDisk, node: string, exclusive: boolean): void {
  const others = d.nodes.filter((n) => n !== node && d.open[n] !== undefined);
  if (exclusive && others.length > 0) {
    throw new Error(`${d.name}: cannot open exclusively, also open on ${others.join(', ')}`);
  }
  if (others.some((n) => d.open[n] === 'exclusive')) {
    throw new Error(`${d.name}: held exclusively by ${others.join(', ')}`);
  }
  d.open[node] = exclusive ? 'exclusive' : 'shared';
}

export function closeShared(world: World, d: SharedDisk, node: string, instance: string): void {
  if (world.vms[node]?.[instance] !== undefined) {
    throw new Error(`${d.name}: device is held open by instance ${instance}`);
  }
  delete d.open[node];
}

/** The disk may carry a guest on this node: open there (an incoming QEMU opens it too). */
export const sharedOpenOn = (d: SharedDisk, node: string) => d.open[node] !== undefined;
