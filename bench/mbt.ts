/**
 * Generation and replay of the whole model-based suite, sequentially in one process (the worst case:
 * vitest spreads the files over both cores). Run: npm run bench:mbt
 */
import { performance } from 'node:perf_hooks';
import { MACHINE_NAMES } from '../machines/index.js';
import { createSimCluster, runMigration } from '../src/index.js';
import { type GeneratedPath, machinePaths, replayPath, simWorld } from '../src/testing/index.js';

const time = async (fn: () => unknown) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

const asFault = (p: GeneratedPath, action: 'hang' | 'lost'): GeneratedPath => ({
  ...p,
  plan: p.plan.map((e, i, all) => (i === all.length - 1 ? { ...e, action } : e)),
});

// Baseline, measured in the same run: one healthy migration on the simulated cluster.
const happyRuns = 20;
const happy =
  (await time(async () => {
    for (let i = 0; i < happyRuns; i++) {
      const sim = createSimCluster();
      await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    }
  })) / happyRuns;

const rows: string[] = [];
let total = 0;
let replays = 0;
for (const machine of MACHINE_NAMES) {
  let set = machinePaths({ machine });
  const generation = await time(() => {
    set = machinePaths({ machine });
  });
  const failing = set.paths.filter((p) => p.steps.at(-1)?.event.startsWith('xstate.error'));
  const suites: [string, GeneratedPath[], boolean][] = [
    ['paths', set.paths, false],
    ['as hangs', failing.map((p) => asFault(p, 'hang')), false],
    ['as lost answers', failing.map((p) => asFault(p, 'lost')), false],
    ['crash + cleanup', set.paths, true],
  ];
  let replay = 0;
  for (const [, paths, crashAtEnd] of suites) {
    replay += await time(async () => {
      for (const p of paths) await replayPath(p, (r) => simWorld(r), { crashAtEnd });
    });
    replays += paths.length;
  }
  const runs = suites.reduce((n, [, p]) => n + p.length, 0);
  total += generation + replay;
  rows.push(
    `| ${machine} | ${set.paths.length} | ${runs} | ${generation.toFixed(0)} ms | ${replay.toFixed(0)} ms | ${(replay / runs / happy).toFixed(2)}× |`,
  );
}

console.log(`healthy migration on the simulated cluster: ${happy.toFixed(1)} ms (mean of ${happyRuns})\n`);
console.log(
  '| machine | paths | replays (paths, hangs, lost, crash) | generation | replay | one replay vs one healthy migration |',
);
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log(
  `\nwhole suite, one core: ${(total / 1000).toFixed(1)} s for ${replays} replays = ${(total / happy).toFixed(0)} healthy migrations`,
);
