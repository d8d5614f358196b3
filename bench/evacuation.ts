import { createSimCluster, runEvacuation, type WorldSpec } from '../src/index.js';

/**
 * Simulated evacuations of N instances (half of them on the drained node), as the bench's scale
 * part: wall and CPU time, and the heap the drain holds at its peak beyond the simulated world it
 * acts on, at several N and several concurrencies. `gc` must be exposed by the caller.
 */
export function drainSpec(n: number): WorldSpec {
  const nodes = ['n0', 'n1', 'n2', 'n3', 'n4'];
  return {
    nodes: Object.fromEntries(nodes.map((x) => [x, { memoryMiB: 1e9, diskMiB: 1e9 }])),
    settings: { stepMs: 50 },
    instances: Array.from({ length: 2 * n }, (_, i) => {
      const other = nodes[1 + (i % 4)]!;
      return {
        name: `vm${i}`,
        primary: i % 2 === 0 ? 'n0' : other,
        secondary: i % 2 === 0 ? other : 'n0',
        memoryMiB: 256 + (i % 8) * 128,
        disksMiB: [256],
      };
    }),
  };
}

export interface DrainFigures {
  n: number;
  concurrency: number;
  wallMs: number;
  cpuMs: number;
  /** Peak live heap during the drain beyond the heap with the world built, bytes (sampled after a gc). */
  peakHeap: number;
  moved: number;
}

/**
 * `full`: the node emptied (evacuate --all): its primaries moved, then every instance whose secondary
 * it is given a new one; `moved` counts those the node holds nothing of afterwards.
 */
export async function drain(
  n: number,
  concurrency: number,
  gc: () => void,
  full = false,
): Promise<DrainFigures> {
  const sim = createSimCluster(drainSpec(n));
  // What an earlier drain left settles first (its last callbacks run a turn after its outcome).
  await new Promise((resolve) => setTimeout(resolve, 50));
  gc();
  gc();
  const base = process.memoryUsage().heapUsed;
  let peak = 0;
  let starts = 0;
  // The sampling's own cost (a full collection each time) is left out of the drain's time.
  let samplingCpu = 0;
  let samplingWall = 0;
  // What the drain holds (collected first, every twentieth of the way): not the garbage it makes.
  const every = Math.max(1, Math.floor(n / 20));
  const sample = () => {
    if (++starts % every !== 0) return;
    const wall = performance.now();
    const cpu = process.cpuUsage();
    gc();
    peak = Math.max(peak, process.memoryUsage().heapUsed - base);
    const used = process.cpuUsage(cpu);
    samplingCpu += (used.user + used.system) / 1000;
    samplingWall += performance.now() - wall;
  };
  const cpu = process.cpuUsage();
  const start = performance.now();
  const asked = {
    node: 'n0',
    concurrency,
    perNode: concurrency,
    ...(full ? { secondaries: true, drain: true } : {}),
  };
  const out = await runEvacuation(asked, sim.effects, {
    clock: sim.clock,
    onRun: sample,
  });
  const used = process.cpuUsage(cpu);
  return {
    n,
    concurrency,
    wallMs: performance.now() - start - samplingWall,
    cpuMs: (used.user + used.system) / 1000 - samplingCpu,
    peakHeap: peak,
    moved: out.counts.moved,
  };
}
