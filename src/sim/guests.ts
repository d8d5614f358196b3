import type { RunState } from '../../machines/index.js';
import type { Vm, World } from './world.js';

/**
 * The guests' bookkeeping, kept beside the world so that a world of 20,000 guests costs nothing per
 * step for the guests a step does not touch. A guest's uptime is counted when it is looked at or
 * changes state, not at every tick of the clock (`vm.uptimeMs` holds the count up to the time
 * recorded here); each node's memory in use is kept up to date as guests come, go and balloon. Every
 * change to a node's guests goes through this module; the record is not part of the world (saved
 * worlds and snapshots are settled first, and a world loaded afresh starts a new record).
 */
const BOOKS = Symbol('guest books');
interface Books {
  countedTo: WeakMap<Vm, number>;
  usedMiB: Map<string, number>;
}
type Kept = World & { [BOOKS]?: Books };

function booksOf(world: World): Books {
  const w = world as Kept;
  let books = w[BOOKS];
  if (books === undefined) {
    // First look: every guest's count is exact as of now.
    books = { countedTo: new WeakMap(), usedMiB: new Map() };
    for (const node in world.vms)
      for (const instance in world.vms[node]) books.countedTo.set(world.vms[node]![instance]!, world.time);
    Object.defineProperty(w, BOOKS, { value: books, enumerable: false });
  }
  return books;
}

function vmsOf(world: World, node: string): Record<string, Vm> {
  const vms = world.vms[node];
  if (vms === undefined) throw new Error(`unknown node ${node}`);
  return vms;
}

/** Brings the guest's count up to the world's time. */
export function settleUptime(world: World, vm: Vm): Vm {
  const { countedTo } = booksOf(world);
  const since = countedTo.get(vm) ?? world.time;
  if (vm.state === 'running') vm.uptimeMs += world.time - since;
  countedTo.set(vm, world.time);
  return vm;
}

export function uptimeOf(world: World, vm: Vm): number {
  return settleUptime(world, vm).uptimeMs;
}

/** Every guest's count exact, before the world is copied or shown. */
export function settleAllUptimes(world: World): void {
  for (const node in world.vms)
    for (const instance in world.vms[node]) settleUptime(world, world.vms[node]![instance]!);
}

/** A guest changes state: what it ran so far counts, from now on at its new state's rate. */
export function setRunState(world: World, vm: Vm, state: RunState): void {
  settleUptime(world, vm);
  vm.state = state;
}

function addUsed(world: World, node: string, deltaMiB: number): void {
  const { usedMiB } = booksOf(world);
  const used = usedMiB.get(node);
  if (used !== undefined) usedMiB.set(node, used + deltaMiB);
}

/** Memory held by the guests on a node (QEMU processes in any state), MiB. */
export function usedMemoryMiB(world: World, node: string): number {
  const { usedMiB } = booksOf(world);
  let used = usedMiB.get(node);
  if (used === undefined) {
    used = 0;
    const vms = vmsOf(world, node);
    for (const instance in vms) used += vms[instance]!.memoryMiB;
    usedMiB.set(node, used);
  }
  return used;
}

/** A guest appears on a node now (booted, incoming, or left over). */
export function placeVm(world: World, node: string, instance: string, vm: Vm): Vm {
  const vms = vmsOf(world, node);
  const before = vms[instance];
  if (before !== undefined) addUsed(world, node, -before.memoryMiB);
  vms[instance] = vm;
  addUsed(world, node, vm.memoryMiB);
  booksOf(world).countedTo.set(vm, world.time);
  return vm;
}

/** The guest's QEMU is gone from the node (quit, killed, shut down). */
export function removeVm(world: World, node: string, instance: string): void {
  const vms = world.vms[node];
  const vm = vms?.[instance];
  if (vms === undefined || vm === undefined) return;
  addUsed(world, node, -vm.memoryMiB);
  delete vms[instance];
}

/** The balloon: the guest holds this much memory from now on. */
export function resizeVm(world: World, node: string, vm: Vm, memoryMiB: number): void {
  addUsed(world, node, memoryMiB - vm.memoryMiB);
  vm.memoryMiB = memoryMiB;
}

/** The node lost power: none of its guests is left. */
export function clearNode(world: World, node: string): void {
  world.vms[node] = {};
  booksOf(world).usedMiB.set(node, 0);
}
