import type { NodeStorage } from '../../machines/index.js';
import { META_MIB, volumeNames } from '../../machines/index.js';

/**
 * LVM on a node, the way Ganeti's storage layer uses it for DRBD: a data and a metadata volume per
 * disk, named from its resource, in the node's volume group. Sizes are in MiB throughout (`--units m`
 * prints MiB with a decimal part).
 */

export const volumePath = (vg: string, name: string) => `/dev/${vg}/${name}`;

export const lvm = {
  /**
   * The volume group, its volumes, and the DRBD minors in use (each minor is a /sys/block/drbdN),
   * in one command: sections split by `---`.
   */
  report: (vg: string) => [
    'sh',
    '-c',
    'vgs --noheadings --units m --nosuffix --separator : -o vg_name,vg_size,vg_free "$1" && echo --- && lvs --noheadings --units m --nosuffix --separator : -o lv_name,lv_size "$1" && echo --- && ls /sys/block',
    'node-storage',
    vg,
  ],
  create: (vg: string, name: string, sizeMiB: number) => [
    'lvcreate',
    '--yes',
    '--wipesignatures',
    'y',
    '-L',
    `${sizeMiB}m`,
    '-n',
    name,
    vg,
  ],
  remove: (vg: string, names: string[]) => ['lvremove', '-f', ...names.map((n) => `${vg}/${n}`)],
};

export class LvmParseError extends Error {
  override name = 'LvmParseError';
}

/** The answer of `lvm.report`. */
export function parseReport(output: string, vg: string): NodeStorage {
  const [vgs, lvs, blocks] = output.split(/^---$/m);
  if (vgs === undefined || lvs === undefined || blocks === undefined)
    throw new LvmParseError(`not a storage report: ${JSON.stringify(output.slice(0, 200))}`);
  const group = vgs
    .split('\n')
    .map((l) => l.trim().split(':'))
    .find((f) => f[0] === vg);
  if (group === undefined || group.length < 3)
    throw new LvmParseError(`volume group ${vg} is not in the vgs output: ${JSON.stringify(vgs.trim())}`);
  const mib = (text: string) => {
    const n = Number(text);
    if (!Number.isFinite(n)) throw new LvmParseError(`not a size in MiB: ${JSON.stringify(text)}`);
    return n;
  };
  return {
    volumeGroup: vg,
    sizeMiB: mib(group[1]!),
    freeMiB: mib(group[2]!),
    volumes: lvs
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .map((l) => {
        const [name, size] = l.split(':');
        return { name: name!, sizeMiB: mib(size ?? '') };
      }),
    minors: [...blocks.matchAll(/\bdrbd(\d+)\b/g)].map((m) => Number(m[1])).sort((a, b) => a - b),
  };
}

/**
 * What a new copy of one disk needs made, given what exists on the node: with internal metadata one
 * volume, as large as the data and the metadata volume together (the same room either way).
 */
export function missingVolumes(storage: NodeStorage, resource: string, sizeMiB: number, internal = false) {
  const names = volumeNames(resource);
  const has = (n: string) => storage.volumes.some((v) => v.name === n);
  return {
    data: has(names.data) ? null : { name: names.data, sizeMiB: internal ? sizeMiB + META_MIB : sizeMiB },
    meta: internal || has(names.meta) ? null : { name: names.meta, sizeMiB: META_MIB },
  };
}
