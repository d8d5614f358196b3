import type { InstanceSpec, WorldSpec } from './world.js';

/**
 * A simulated cluster of any size, the same for the same seed: N nodes, M instances spread over
 * them as primaries with a secondary on another node, some stopped, some busy. For trying the
 * cluster-wide commands (evacuate, replace-secondary) without writing a world by hand.
 */
export interface ClusterShape {
  nodes: number;
  instances: number;
  seed?: number;
}

/** node-a … node-z, then node-aa …: names sort as they are numbered within one length. */
export function nodeNames(count: number): string[] {
  const name = (i: number): string => {
    let s = '';
    let n = i;
    do {
      s = String.fromCharCode(97 + (n % 26)) + s;
      n = Math.floor(n / 26) - 1;
    } while (n >= 0);
    return `node-${s}`;
  };
  return Array.from({ length: count }, (_, i) => name(i));
}

/** A small deterministic generator (a 32-bit LCG): the world must not depend on the platform. */
function random(seed: number) {
  let state = seed >>> 0 || 1;
  return (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 2 ** 32) * n);
  };
}

export function clusterSpec(shape: ClusterShape): WorldSpec {
  if (!Number.isInteger(shape.nodes) || shape.nodes < 2) throw new Error('a cluster needs at least 2 nodes');
  if (!Number.isInteger(shape.instances) || shape.instances < 0)
    throw new Error('the number of instances must be a whole number');
  const pick = random(shape.seed ?? 1);
  const names = nodeNames(shape.nodes);
  const instances: InstanceSpec[] = [];
  const load = new Map<string, number>(names.map((n) => [n, 0]));
  for (let i = 0; i < shape.instances; i++) {
    const primary = names[i % names.length]!;
    const secondary = names[(i + 1 + pick(names.length - 1)) % names.length]!;
    const memoryMiB = [1024, 2048, 4096][pick(3)]!;
    const stopped = pick(5) === 0;
    const busy = !stopped && pick(4) === 0;
    load.set(primary, load.get(primary)! + memoryMiB);
    instances.push({
      name: `web${i + 1}`,
      primary,
      secondary,
      memoryMiB,
      disksMiB: pick(2) === 0 ? [10240] : [10240, 4096],
      ...(stopped ? { running: false, adminState: 'down' as const } : {}),
      ...(busy ? { dirtyMiBps: 16 * (1 + pick(8)), workingSetMiB: memoryMiB / 8 } : {}),
    });
  }
  // Room for a node's own instances and the ones it would take over (N+1), and then some.
  const most = Math.max(0, ...load.values());
  const memoryMiB = Math.max(16384, 4 * most);
  return { nodes: Object.fromEntries(names.map((n) => [n, { memoryMiB }])), instances };
}
