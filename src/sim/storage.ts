import { type DiskRef, META_MIB, type NodeStorage, volumeNames } from '../../machines/index.js';
import { linkConnected, linksOf, otherEnd, resourceOf } from './drbd.js';
import type { World } from './world.js';

/**
 * A node's LVM volume group and DRBD devices as a new copy needs them: volumes made and removed,
 * and refused as a real node refuses (no room, a minor taken, a device in use). Messages read as
 * lvcreate's and drbdsetup's.
 */

const usedMiB = (vg: { volumes: Record<string, number> }) =>
  Object.values(vg.volumes).reduce((a, b) => a + b, 0);

function groupOf(world: World, node: string) {
  const vg = world.storage[node];
  if (vg === undefined) throw new Error(`${node}: Volume group not found`);
  return vg;
}

export function nodeStorage(world: World, node: string): NodeStorage {
  const vg = groupOf(world, node);
  const minors = Object.values(world.resources)
    .filter((r) => r.local[node] !== undefined)
    .map((r) => r.minor);
  return {
    volumeGroup: vg.name,
    sizeMiB: vg.sizeMiB,
    freeMiB: vg.sizeMiB - usedMiB(vg),
    volumes: Object.entries(vg.volumes).map(([name, sizeMiB]) => ({ name, sizeMiB })),
    minors: minors.sort((a, b) => a - b),
  };
}

/**
 * The disk's data and metadata volumes, then its DRBD device on them (Secondary, Inconsistent,
 * without network). What exists is kept: a copy is never wiped by a call made twice.
 */
export function createDisk(world: World, node: string, disk: DiskRef): void {
  const r = resourceOf(world, disk.resource);
  const vg = groupOf(world, node);
  const names = volumeNames(r.name);
  const sizeMiB = disk.sizeMiB ?? Math.ceil(r.sizeKiB / 1024);
  // Internal metadata: one volume, as large as data and metadata volumes together.
  const internal = disk.metaDisk === 'internal';
  const missing = [
    ...(vg.volumes[names.data] === undefined
      ? [[names.data, internal ? sizeMiB + META_MIB : sizeMiB] as const]
      : []),
    ...(!internal && vg.volumes[names.meta] === undefined ? [[names.meta, META_MIB] as const] : []),
  ];
  const need = missing.reduce((a, [, mib]) => a + mib, 0);
  const free = vg.sizeMiB - usedMiB(vg);
  if (need > free)
    throw new Error(
      `${node}: Volume group "${vg.name}" has insufficient free space (${Math.floor(free)} MiB): ${need} MiB required.`,
    );
  if (r.local[node] === undefined) {
    const holder = Object.values(world.resources).find(
      (other) => other.name !== r.name && other.minor === r.minor && other.local[node] !== undefined,
    );
    if (holder !== undefined)
      throw new Error(
        `${node}: Failure: (161) Minor or volume exists already (delete it first): ${holder.name}`,
      );
  }
  for (const [name, mib] of missing) vg.volumes[name] = mib;
  r.local[node] ??= { role: 'Secondary', diskState: 'Inconsistent' };
}

/**
 * `drbdsetup down` then `lvremove` of both volumes; nothing there is nothing to do. A device that is
 * Primary, or a live end of the resource's connection, is refused: removing the copy a guest uses,
 * or the one keeping the mirror, is no cleanup.
 */
export function removeDisk(world: World, node: string, disk: DiskRef): void {
  const r = resourceOf(world, disk.resource);
  const local = r.local[node];
  if (local !== undefined) {
    if (local.role === 'Primary')
      throw new Error(`${node}: ${r.minor}: State change failed: (-12) Device is held open by someone`);
    const joining = r.links.find((l) => l.joining && l.ends.includes(node));
    if (joining !== undefined)
      throw new Error(
        `${node}: ${r.name} has ${otherEnd(joining, node)} as a peer: it is a copy in use, not a leftover`,
      );
    // The simulator keeps a resource's two ends configured: one whose peer still points at it (a
    // copy in use, or one a reconnect would go back to) is no leftover to remove.
    const link = linksOf(r, node)[0];
    if (link !== undefined) {
      throw new Error(
        `${node}: ${r.name} is ${linkConnected(link) ? 'connected to' : 'the configured peer of'} ${otherEnd(link, node)}: it is a copy in use, not a leftover`,
      );
    }
    delete r.local[node];
  }
  const vg = world.storage[node];
  if (vg === undefined) return;
  const names = volumeNames(r.name);
  delete vg.volumes[names.data];
  delete vg.volumes[names.meta];
}
