import type { DiskRef, InstanceConfig, NodeConfig, NodeStorage } from './contract.js';

/**
 * Where a new secondary may go (Ganeti's iallocator checks for a relocation, without its scores):
 * one judgement of a candidate, used both to choose a node and to refuse the operator's choice.
 */

/** DRBD 8.4 internal metadata is not used: each disk has a metadata volume of its own, as Ganeti's. */
export const META_MIB = 128;

/** The two volumes of a DRBD disk, named from its resource (which is named from the instance). */
export const volumeNames = (resource: string) => ({ data: `${resource}_data`, meta: `${resource}_meta` });

/** Space a new copy of the disks takes in a volume group (data and metadata); null when a size is unknown. */
export function spaceNeededMiB(disks: readonly DiskRef[]): number | null {
  let total = 0;
  for (const d of disks) {
    if (d.sizeMiB === undefined) return null;
    total += d.sizeMiB + META_MIB;
  }
  return total;
}

/**
 * N+1 as Ganeti defines it: if the primary fails, its secondary starts every instance it holds the
 * secondary of, so it needs the memory of all of them (this one included) free.
 */
export function memoryNeededMiB(
  instances: readonly InstanceConfig[],
  self: InstanceConfig,
  node: string,
): number {
  const kin = instances.filter((i) => i.primaryNode === self.primaryNode && i.secondaryNode === node);
  return takeoverNeedMiB(self, {
    instances: kin.map((i) => i.name),
    memoryMiB: kin.reduce((a, i) => a + i.memoryMiB, 0),
  });
}

/** The same from the config's answer for the node (takeoverLoad): this instance counted once. */
export function takeoverNeedMiB(
  self: InstanceConfig,
  load: { instances: string[]; memoryMiB: number },
): number {
  return self.memoryMiB + load.memoryMiB - (load.instances.includes(self.name) ? self.memoryMiB : 0);
}

/** What is known of a candidate node; null where it did not answer. */
export interface CandidateFacts {
  node: string;
  config: NodeConfig | undefined;
  memoryFreeMiB: number | null;
  storage: NodeStorage | null;
}

/**
 * Whether the config lets the node take the copy: a node of the cluster, not the instance's (nor its
 * tiebreaker), not drained.
 */
export function nodeConfigProblem(self: InstanceConfig, node: string, config: NodeConfig | undefined) {
  if (config === undefined) return `${node} is not a node of the cluster`;
  if (node === self.primaryNode) return `${node} is the primary of ${self.name}`;
  if (node === self.secondaryNode) return `${node} is already the secondary of ${self.name}`;
  // A copy there would leave the resource two votes, and quorum no proof of anything.
  if (node === self.tiebreaker) return `${node} is the tiebreaker of ${self.name}'s resources`;
  if (node === (self.thirdCopy ?? null)) return `${node} holds the third copy of ${self.name}`;
  if (config.drained) return `${node} is drained (nothing new is placed there)`;
  return null;
}

/** Room in the node's volume group for every disk (data and metadata), and the disks' minors free there. */
export function storageProblem(self: InstanceConfig, node: string, storage: NodeStorage): string | null {
  const need = spaceNeededMiB(self.disks);
  if (need === null)
    return `the sizes of ${self.name}'s disks are not known (the cluster file gives each disk a sizeMiB)`;
  if (storage.freeMiB < need)
    return `${node} has ${Math.floor(storage.freeMiB)} MiB free in volume group ${storage.volumeGroup}; ${self.name}'s disks need ${need} MiB (data and ${META_MIB} MiB of metadata each)`;
  const taken = self.disks.filter((d) => storage.minors.includes(d.minor));
  if (taken.length > 0) return `DRBD minor ${taken.map((d) => d.minor).join(', ')} is in use on ${node}`;
  return null;
}

/** N+1: the memory to run the instance, and the others it would take over, if the primary fails. */
export function memoryProblem(
  self: InstanceConfig,
  node: string,
  freeMiB: number,
  needMiB: number,
): string | null {
  if (freeMiB >= needMiB) return null;
  return `${node} has ${Math.floor(freeMiB)} MiB of memory free; it needs ${needMiB} MiB to run ${self.name}${
    needMiB > self.memoryMiB ? ' and the other instances it would take over' : ''
  } if ${self.primaryNode} fails (N+1)`;
}

/** The first reason `facts.node` cannot hold the new copy of `self`, or null. */
export function candidateProblem(
  self: InstanceConfig,
  instances: readonly InstanceConfig[],
  facts: CandidateFacts,
): string | null {
  const { node } = facts;
  const config = nodeConfigProblem(self, node, facts.config);
  if (config !== null) return config;
  if (facts.storage === null) return `${node} did not answer (its storage could not be read)`;
  const storage = storageProblem(self, node, facts.storage);
  if (storage !== null) return storage;
  if (facts.memoryFreeMiB === null) return `${node} did not answer (its free memory could not be read)`;
  return memoryProblem(self, node, facts.memoryFreeMiB, memoryNeededMiB(instances, self, node));
}

export interface Placement {
  /** The node chosen, or null when none can hold the copy. */
  chosen: string | null;
  /** Why each other node was not chosen. */
  passedOver: { node: string; why: string }[];
}

/**
 * Chooses a new secondary: every candidate judged, then among those that can hold the copy, the one
 * holding the fewest copies it does not run, secondaries and third copies (spread), then the most
 * free space, then by name (the same answer every time).
 */
export function choosePlacement(
  self: InstanceConfig,
  instances: readonly InstanceConfig[],
  candidates: readonly CandidateFacts[],
): Placement {
  // A third copy takes the room and the resync a secondary does: both count as copies it holds.
  const copiesHeld = (node: string) =>
    instances.filter((i) => i.secondaryNode === node || (i.thirdCopy ?? null) === node).length;
  const passedOver: Placement['passedOver'] = [];
  const fit: CandidateFacts[] = [];
  for (const c of candidates) {
    if (c.node === self.primaryNode || c.node === self.secondaryNode) continue;
    const why = candidateProblem(self, instances, c);
    if (why === null) fit.push(c);
    else passedOver.push({ node: c.node, why });
  }
  fit.sort(
    (a, b) =>
      copiesHeld(a.node) - copiesHeld(b.node) ||
      (b.storage?.freeMiB ?? 0) - (a.storage?.freeMiB ?? 0) ||
      a.node.localeCompare(b.node),
  );
  const [chosen, ...rest] = fit;
  for (const c of rest) {
    const [mine, theirs] = [copiesHeld(c.node), copiesHeld(chosen!.node)];
    const room = (x: CandidateFacts) => Math.floor(x.storage?.freeMiB ?? 0);
    passedOver.push({
      node: c.node,
      why:
        mine !== theirs
          ? `holds ${mine} copies it does not run (secondary or third), ${chosen!.node} ${theirs}`
          : room(c) !== room(chosen!)
            ? `holds as many copies it does not run as ${chosen!.node} (${mine}) and has less room (${room(c)} MiB free, ${room(chosen!)})`
            : `holds as many copies it does not run and has as much room as ${chosen!.node}, which comes first by name`,
    });
  }
  return { chosen: chosen?.node ?? null, passedOver };
}
