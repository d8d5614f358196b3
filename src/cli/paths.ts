import { MACHINES, type MachineName, transitionsOf } from '../../machines/index.js';
import { machinePaths, replayPath, simWorld } from '../testing/index.js';

/** The generated paths of a machine, replayed on the simulated cluster to measure what they cover. */
export async function pathSummary(machine: MachineName) {
  const set = machinePaths({ machine });
  const covered = new Set<string>();
  for (const path of set.paths) {
    const result = await replayPath(path, (recipe) => simWorld(recipe));
    for (const k of result.covered) covered.add(k);
  }
  const all = transitionsOf(MACHINES[machine]);
  const uncovered = all.filter((t) => !covered.has(t.key)).map((t) => t.key);
  return {
    set,
    coverage: {
      machine,
      paths: set.paths.length,
      vertices: set.vertices,
      edges: set.edges,
      transitions: all.length,
      covered: all.length - uncovered.length,
      uncovered,
    },
  };
}
