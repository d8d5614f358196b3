/**
 * What journaling costs: the same migrations on the simulated cluster with and without the journal
 * (atomic write + fsync of file and directory per transition), side by side in one run.
 * Run: npm run bench:journal
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSimCluster, FileJournal, FileLocks, runJournaled, runMigration } from '../src/index.js';

const runs = 20;
let writes = 0;
let transitions = 0;

async function plain() {
  const sim = createSimCluster();
  await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
}

async function journaled(dir: string) {
  const sim = createSimCluster();
  let last = '';
  await runJournaled('migration', { instance: 'web1' }, sim.effects, {
    clock: sim.clock,
    store: new FileJournal(dir),
    locks: new FileLocks(dir),
    nodes: ['node-a', 'node-b'],
    afterWrite: (_n, state) => {
      writes++;
      if (state !== last) transitions++;
      last = state;
    },
  });
}

const dir = await mkdtemp(join(tmpdir(), 'drbd-migrate-bench-'));
// warm up both paths, then alternate so both see the same machine state
await plain();
await journaled(dir);
writes = 0;
transitions = 0;
let a = 0;
let b = 0;
for (let i = 0; i < runs; i++) {
  let t = performance.now();
  await plain();
  a += performance.now() - t;
  t = performance.now();
  await journaled(dir);
  b += performance.now() - t;
}
await rm(dir, { recursive: true, force: true });

const perRunA = a / runs;
const perRunB = b / runs;
const perWrite = (b - a) / writes;
console.log(`| | wall per migration (simulated cluster, free-running clock) |`);
console.log('|---|---|');
console.log(`| without journal | ${perRunA.toFixed(1)} ms |`);
console.log(`| with journal | ${perRunB.toFixed(1)} ms (${(perRunB / perRunA).toFixed(2)}×) |`);
console.log(
  `\n${(writes / runs).toFixed(0)} journal writes per migration (${(transitions / runs).toFixed(0)} state changes, the rest context updates such as progress);` +
    ` ${perWrite.toFixed(2)} ms each, so ${((perWrite * writes) / runs).toFixed(0)} ms per migration.`,
);
console.log(
  `Against the migration itself (16.2 s of simulated time here, seconds to minutes on real nodes) that is ${(((perWrite * writes) / runs / 16_200) * 100).toFixed(2)} %.`,
);
