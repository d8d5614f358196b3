import { setMaxListeners } from 'node:events';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createActor, createMachine, fromPromise } from 'xstate';
import {
  createSimCluster,
  EFFECT_NAMES,
  type EffectName,
  type Effects,
  runCleanup,
  runFailover,
  runMigration,
} from '../src/index.js';
import { machinePaths, replayPath, simWorld } from '../src/testing/index.js';
import { drbdTestbedUnavailable } from '../test/testbed/drbd.js';
import { testbedUnavailable } from '../test/testbed/testbed.js';
import { median } from './common.js';
import { benchDrbd } from './drbd.js';
import { drain } from './evacuation.js';
import { benchPrediction } from './prediction.js';
import { benchReplace } from './replace.js';
import { benchTestbed } from './testbed.js';

/**
 * `npm run bench`: what the orchestration itself costs, side by side in one process, as a Markdown
 * table written to docs/benchmarks.md. Every figure is a median of repeated rounds; every comparison
 * a ratio of figures measured in this same run. Nothing here is a test.
 */

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const ROUNDS = 7;

type Answers = Partial<Record<EffectName, unknown[]>>;

/** The answers a healthy run gives on the simulated cluster, effect by effect, in order. */
async function record(
  run: typeof runMigration,
  input: Parameters<typeof runMigration>[0],
  setup?: (s: ReturnType<typeof createSimCluster>) => void,
) {
  const sim = createSimCluster();
  setup?.(sim);
  const answers: Answers = {};
  const order: EffectName[] = [];
  await run(input, sim.effects, {
    clock: sim.clock,
    onCall: (c) => {
      if (c.phase === 'done') {
        answers[c.effect] ??= [];
        answers[c.effect]!.push(c.output);
      }
      if (c.phase === 'start') order.push(c.effect);
    },
  });
  return { answers, order };
}

/** Effects that answer at once with the recorded answers (zero latency: only the orchestration runs). */
function canned(answers: Answers): Effects {
  const next = Object.fromEntries(EFFECT_NAMES.map((n) => [n, 0])) as Record<EffectName, number>;
  return Object.fromEntries(
    EFFECT_NAMES.map((name) => [
      name,
      async () => {
        const list = answers[name] ?? [];
        return list[next[name]++ % Math.max(1, list.length)];
      },
    ]),
  ) as unknown as Effects;
}

/** CPU ms (user + system) per iteration of `once`, median of ROUNDS rounds of `n`. */
async function cpuPer(n: number, once: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(n, 20); i++) await once(); // warm-up
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < n; i++) await once();
    const used = process.cpuUsage(start);
    rounds.push((used.user + used.system) / 1000 / n);
  }
  return median(rounds);
}

/** CPU ms per iteration of each job, ROUNDS rounds of `n` each, the jobs interleaved round by round. */
async function cpuRounds<K extends string>(
  n: number,
  jobs: Record<K, () => Promise<unknown>>,
): Promise<Record<K, number[]>> {
  const names = Object.keys(jobs) as K[];
  for (const k of names) for (let i = 0; i < Math.min(n, 20); i++) await jobs[k](); // warm-up
  const out = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of names) {
      const start = process.cpuUsage();
      for (let i = 0; i < n; i++) await jobs[k]();
      const used = process.cpuUsage(start);
      out[k].push((used.user + used.system) / 1000 / n);
    }
  }
  return out;
}

/**
 * Heap bytes held per run with `count` runs in flight, each waiting on an effect that never answers;
 * then every run is stopped (as a dying orchestrator would) so nothing is left behind.
 */
async function heapPerInFlight(count: number): Promise<number> {
  const hang = Object.fromEntries(
    EFFECT_NAMES.map((n) => [n, () => new Promise(() => {})]),
  ) as unknown as Effects;
  gc();
  const before = process.memoryUsage().heapUsed;
  const stop = new AbortController();
  // Every run listens on this one signal; that many listeners is the point here, not a leak.
  setMaxListeners(0, stop.signal);
  const runs: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    runs.push(runMigration({ instance: 'web1' }, hang, { signal: stop.signal }).catch(() => undefined));
  }
  await new Promise((r) => setImmediate(r));
  gc();
  const held = (process.memoryUsage().heapUsed - before) / count;
  stop.abort();
  await Promise.all(runs);
  return held;
}

const rows: string[] = [];
const row = (what: string, value: string, note = '') => rows.push(`| ${what} | ${value} | ${note} |`);

// 1. Orchestration cost on zero-latency effects, beside its floors.
const migration = await record(runMigration, { instance: 'web1' });
const cleanup = await record(runCleanup, { instance: 'web1' });
const failover = await record(runFailover, { instance: 'web1', sourceIsDown: true }, (s) =>
  s.killNode('node-a'),
);
const calls = migration.order.length;
const N = 200;
const migrationOnce = () => runMigration({ instance: 'web1' }, canned(migration.answers));
const cleanupCpu = await cpuPer(N, () => runCleanup({ instance: 'web1' }, canned(cleanup.answers)));
const failoverCpu = await cpuPer(N, () =>
  runFailover({ instance: 'web1', sourceIsDown: true }, canned(failover.answers)),
);
// The floor: a plain async function making the same calls in the same order.
const floorEffects = canned(migration.answers) as unknown as Record<
  EffectName,
  (i: unknown, s: AbortSignal) => Promise<unknown>
>;
const plainOnce = async () => {
  const signal = new AbortController().signal;
  for (const effect of migration.order) await floorEffects[effect](undefined, signal);
};
// xstate's own cost: a bare machine of as many states, each invoking one trivial promise.
const bare = createMachine({
  id: 'bare',
  initial: 's0',
  states: Object.fromEntries(
    Array.from({ length: calls + 1 }, (_, i) => [
      `s${i}`,
      i === calls
        ? { type: 'final' as const }
        : { invoke: { src: fromPromise(async () => i), onDone: `s${i + 1}` } },
    ]),
  ),
});
const bareOnce = async () => {
  const actor = createActor(bare);
  const done = new Promise<void>((resolve) => actor.subscribe({ complete: () => resolve() }));
  actor.start();
  await done;
};
// Rounds of the three interleaved, so that a slower stretch of the machine hits all of them; each
// ratio is the median of the rounds' own ratios.
const paired = await cpuRounds(N, { migration: migrationOnce, bare: bareOnce, plain: plainOnce });
const migrationCpu = median(paired.migration);
const bareCpu = median(paired.bare);
const plainCpu = median(paired.plain);
const toBare = median(paired.migration.map((m, i) => m / paired.bare[i]!));
const toPlain = median(paired.migration.map((m, i) => m / paired.plain[i]!));
row('complete migration, zero-latency effects', `${migrationCpu.toFixed(2)} ms CPU`, `${calls} effect calls`);
row(
  'complete cleanup, zero-latency effects',
  `${cleanupCpu.toFixed(2)} ms CPU`,
  `${cleanup.order.length} calls`,
);
row(
  'complete failover (source down), zero-latency effects',
  `${failoverCpu.toFixed(2)} ms CPU`,
  `${failover.order.length} calls`,
);
row('plain async function, same calls in the same order', `${plainCpu.toFixed(3)} ms CPU`, 'the floor');
row(`bare xstate machine, ${calls} invoking states`, `${bareCpu.toFixed(2)} ms CPU`, "xstate's own cost");
row(
  'migration ÷ bare xstate',
  `${toBare.toFixed(1)}×`,
  'goal (issue 13): ≤ 2×; median of the rounds’ ratios',
);
row('migration ÷ plain async', `${toPlain.toFixed(0)}×`, '');

// 2. Heap per migration in flight.
for (const count of [100, 10_000]) {
  const bytes = await heapPerInFlight(count);
  row(
    `heap per migration in flight (${count.toLocaleString('en')} in flight)`,
    `${(bytes / 1024).toFixed(1)} KiB`,
    'goal (issue 13): < 20 KiB',
  );
}

// 3. The simulated cluster and the generated suite.
const simCpu = await cpuPer(50, async () => {
  const sim = createSimCluster();
  await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
});
row(
  'migration on the simulated cluster',
  `${simCpu.toFixed(1)} ms CPU`,
  `${(simCpu / migrationCpu).toFixed(1)}× the orchestration alone`,
);
const sample = machinePaths({ machine: 'migration' }).paths.filter((_, i) => i % 8 === 0);
let replayedCalls = 0;
const counted = (recipe: Parameters<typeof simWorld>[0]) => {
  const world = simWorld(recipe);
  const effects = Object.fromEntries(
    Object.entries(world.effects).map(([name, f]) => [
      name,
      (...args: unknown[]) => {
        replayedCalls++;
        return (f as (...a: unknown[]) => unknown)(...args);
      },
    ]),
  ) as unknown as Effects;
  return { ...world, effects };
};
for (const p of sample.slice(0, 20)) await replayPath(p, counted); // warm-up
const suiteRounds: { perSecond: number; callsPerCpuSecond: number }[] = [];
for (let r = 0; r < 3; r++) {
  replayedCalls = 0;
  const wall = performance.now();
  const cpu = process.cpuUsage();
  for (const p of sample) await replayPath(p, counted);
  const used = process.cpuUsage(cpu);
  suiteRounds.push({
    perSecond: (sample.length / (performance.now() - wall)) * 1000,
    callsPerCpuSecond: replayedCalls / ((used.user + used.system) / 1e6),
  });
}
row(
  'generated suite on the simulator',
  `${median(suiteRounds.map((x) => x.perSecond)).toFixed(0)} replays/s`,
  `${sample.length} migration paths, one core; ${median(suiteRounds.map((x) => x.callsPerCpuSecond)).toFixed(0)} effect calls replayed per CPU second`,
);

// 4. Scale: simulated evacuations of N instances on the drained node (as many elsewhere).
// A drain first, for nothing: code compiled on first use is not what a drain holds.
await drain(50, 4, gc);
const scale = [await drain(100, 4, gc), await drain(1_000, 4, gc)];
// Before the largest drain: what that one leaves behind for the collector would blur this one's figure.
const wide = await drain(1_000, 32, gc);
scale.push(await drain(10_000, 4, gc));
for (const s of scale) {
  row(
    `evacuation of ${s.n.toLocaleString('en')} instances, 4 at once (simulated)`,
    `${(s.wallMs / 1000).toFixed(1)} s wall, ${(s.cpuMs / s.n).toFixed(1)} ms CPU per instance`,
    `peak heap beyond the world ${(s.peakHeap / 2 ** 20).toFixed(1)} MiB; ${s.moved.toLocaleString('en')} moved`,
  );
}
for (const [from, to] of [
  [scale[0]!, scale[1]!],
  [scale[1]!, scale[2]!],
] as const) {
  row(
    `growth from ${from.n.toLocaleString('en')} to ${to.n.toLocaleString('en')} instances`,
    `wall ×${(to.wallMs / from.wallMs).toFixed(1)}, CPU ×${(to.cpuMs / from.cpuMs).toFixed(1)}, peak heap ×${(to.peakHeap / from.peakHeap).toFixed(1)}`,
    'linear would be ×10; the heap grows by what the plan and the outcome list hold per instance',
  );
}
// The full drain: every instance on n0 as primary or secondary (half of the world each way).
await drain(50, 4, gc, true);
const full = [await drain(500, 4, gc, true), await drain(5_000, 4, gc, true)];
for (const s of full) {
  row(
    `full drain (evacuate --all) of ${(2 * s.n).toLocaleString('en')} instances, 4 at once (simulated)`,
    `${(s.wallMs / 1000).toFixed(1)} s wall, ${(s.cpuMs / (2 * s.n)).toFixed(1)} ms CPU per instance`,
    `peak heap beyond the world ${(s.peakHeap / 2 ** 20).toFixed(1)} MiB; ${s.moved.toLocaleString('en')} left with nothing on n0 (half moved then replaced, half replaced)`,
  );
}
row(
  'evacuation of 1,000 instances, 32 at once (simulated)',
  `peak heap beyond the world ${(wide.peakHeap / 2 ** 20).toFixed(1)} MiB`,
  `×${(wide.peakHeap / scale[1]!.peakHeap).toFixed(1)} the heap at 4 at once: more runs in flight hold more`,
);

// 5. Real end to end, where this host can start the testbeds (root, QEMU, the kernel for the VMs).
const quiet = () => {};
const nsWhy = testbedUnavailable();
if (nsWhy === null) {
  const t = await benchTestbed(4, quiet);
  row(
    'live migration on the namespace testbed (real sshd, QEMU)',
    `${t.wall.toFixed(0)} ms wall`,
    `inside the node operations ${t.inEffects.toFixed(0)} ms (QEMU's own copy ${t.qemu} ms); median of ${t.runs}`,
  );
  row(
    'copy completion noticed (namespaces)',
    `${t.detect.toFixed(0)} ms after it`,
    "Ganeti's 1 s status poll: 500 ms on average",
  );
  for (const p of await benchPrediction(3, quiet)) {
    row(
      `predicted vs measured copy: ${p.guest} (namespaces, 32 MiB/s link)`,
      `QEMU ${p.measuredCopy} ms, predicted ${p.predictedCopy.toFixed(0)} ms`,
      `×${(p.measuredCopy / p.predictedCopy).toFixed(2)} of the prediction; downtime ${p.measuredDowntime} ms, predicted ${p.predictedDowntime} ms; measured dirty rate ${p.dirtyMiBps} MiB/s; median of ${p.runs}`,
    );
  }
} else row('namespace testbed', 'not measured here', nsWhy);
const vmWhy = drbdTestbedUnavailable();
if (vmWhy === null) {
  const d = await benchDrbd(3, quiet);
  row(
    'live migration on the DRBD 8.4 VMs (under TCG)',
    `${(d.wall / 1000).toFixed(1)} s wall`,
    `inside the node operations ${(d.inEffects / 1000).toFixed(1)} s (QEMU's copy ${d.qemu} ms, DRBD's resyncs ${d.resync.toFixed(0)} ms); boot ${(d.bootMs / 1000).toFixed(0)} s; median of ${d.runs}`,
  );
  row(
    'resync end noticed (DRBD VMs)',
    d.detect === null ? 'no resync ended during a wait' : `${d.detect} ms after it`,
    "Ganeti's 2 s sync poll: 1 s on average",
  );
  const rep = await benchReplace(3, quiet);
  row(
    `redundancy restored on a third node (DRBD 8.4 VMs, LVM, ${rep.sizeMiB} MiB disk)`,
    `${(rep.wall / 1000).toFixed(1)} s wall`,
    `DRBD's own resync ${(rep.resync / 1000).toFixed(1)} s of it; the orchestration's share ${((rep.wall - rep.resync) / 1000).toFixed(1)} s; median of ${rep.runs}`,
  );
} else row('DRBD VM testbed', 'not measured here', vmWhy);

const table = ['| what | figure | beside |', '|---|---|---|', ...rows].join('\n');
const header = [
  '<!-- written by `npm run bench`; figures from the machine named below, medians of repeated rounds -->',
  '',
  '# Benchmarks',
  '',
  `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.`,
  'CPU per run is user + system time over rounds of 200 runs (median of 7, the compared jobs interleaved',
  'round by round); every ratio compares figures measured in the same process. The real rows start the',
  'testbeds (root): the namespaces and the DRBD 8.4 VMs (`npm run bench:testbed`, `npm run bench:drbd`).',
  '',
].join('\n');
console.log(table);
writeFileSync('docs/benchmarks.md', `${header}${table}\n`);
console.log('\nwrote docs/benchmarks.md');
