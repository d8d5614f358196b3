/**
 * What the Restate runtime costs beside the file journal, and how soon a run goes on after its
 * worker dies. Side by side in one run, against one simulated cluster served over HTTP (so that
 * every runtime pays the same for its effects): migrations with no journal, with the file journal
 * (fsync per transition), and on a local Restate server (its default fsync) through a worker.
 * Run: npm run bench:restate [migrations]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  createSimCluster,
  FileJournal,
  FileLocks,
  remoteEffects,
  runJournaled,
  runMigration,
  type ServedCall,
  serveEffects,
} from '../src/index.js';
import {
  registerDeployment,
  runOnRestate,
  serveWorker,
  startBalancer,
  startRestateServer,
} from '../src/restate/index.js';
import type { RunEvent } from '../src/runner/index.js';
import { startStatus, withEvent } from '../src/runtime/status.js';
import { startWorker } from '../test/processes.js';
import { median } from './common.js';

const migrations = Number(process.argv[2] ?? 20);
const dir = await mkdtemp(join(tmpdir(), 'drbd-migrate-bench-restate-'));
try {
  const server = await startRestateServer({ dir: join(dir, 'restate') });
  try {
    // 1. Per-step cost, side by side.
    const sim = createSimCluster();
    let after: ((c: ServedCall) => Promise<void>) | undefined;
    let before: ((c: ServedCall) => void) | undefined;
    const served = await serveEffects(sim.effects, {
      cluster: 'bench',
      clock: sim.clock,
      onCall: (c) => before?.(c),
      afterCall: (c) => after?.(c),
    });
    const effects = remoteEffects(served.url);
    const worker = await serveWorker({ cluster: 'bench', effects });
    await registerDeployment(server.admin, worker.url);
    const journal = { store: new FileJournal(join(dir, 'state')), locks: new FileLocks(join(dir, 'state')) };
    const ways = {
      plain: () => runMigration({ instance: 'web1' }, effects),
      journal: () =>
        runJournaled('migration', { instance: 'web1' }, effects, { ...journal, nodes: ['node-a', 'node-b'] }),
      restate: () => runOnRestate(server, 'bench', 'migration', { instance: 'web1' }),
    };
    const spent: Record<keyof typeof ways, number[]> = { plain: [], journal: [], restate: [] };
    let steps = 0;
    for (let i = -1; i < migrations; i++) {
      for (const way of Object.keys(ways) as (keyof typeof ways)[]) {
        const from = served.calls.length;
        const t = performance.now();
        const out = await ways[way]();
        const ms = performance.now() - t;
        if (out.outcome !== 'migrated') throw new Error(`${way}: ${out.outcome} ${out.error}`);
        // The first round warms every path up and is not counted.
        if (i >= 0) spent[way].push(ms);
        steps = served.calls.length - from;
      }
    }
    await worker.close();

    // What a run writes to its object's state: the status record and each event once (told.ts),
    // against the status rewritten with its latest events at each event (as it was).
    const events: RunEvent[] = [];
    await runMigration({ instance: 'web1' }, effects, { onEvent: (e) => events.push(e) });
    let status = {
      ...startStatus('migration', { instance: 'web1' }),
      run: 'inv_1hYxCg8ov6lh3m7lzkyE3iEJd5wRfZ',
    };
    let rewritten = 0;
    let once = 0;
    for (const event of events) {
      status = { ...withEvent(status, event), run: status.run };
      rewritten += JSON.stringify(status).length;
      once +=
        JSON.stringify({ ...status, events: [] }).length +
        JSON.stringify({ n: status.told, item: event }).length;
    }

    // 2. From a worker's death to its run going on: two worker processes behind a balancer; the one
    // running a migration is SIGKILLed once QEMU's copy (simulated) has started and before its answer
    // is journaled; the clock stops when the retried step reaches the nodes from the other worker.
    const workers = [await startWorker(['--world', served.url]), await startWorker(['--world', served.url])];
    const balancer = await startBalancer(workers.map((w) => ({ port: w.port })));
    await registerDeployment(server.admin, balancer.url);
    const resumeMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      let killedAt: number | null = null;
      let killedStep: string | null = null;
      after = async (c) => {
        if (c.effect !== 'migrateInstance' || killedAt !== null) return;
        const w = workers.find((x) => String(x.pid) === c.worker?.split(':').pop())!;
        w.child.kill('SIGKILL');
        await Promise.all([w.exited, c.hungUp]);
        killedAt = performance.now();
        killedStep = c.step;
        const fresh = await startWorker(['--world', served.url]);
        workers.splice(workers.indexOf(w), 1, fresh);
        balancer.targets.splice(0, balancer.targets.length, ...workers.map((x) => ({ port: x.port })));
      };
      before = (c) => {
        if (killedAt !== null && c.step === killedStep && resumeMs.length === i)
          resumeMs.push(performance.now() - killedAt);
      };
      const out = await runOnRestate(server, 'bench', 'migration', { instance: 'web1' });
      after = undefined;
      before = undefined;
      if (out.outcome !== 'migrated') throw new Error(`after a kill: ${out.outcome} ${out.error}`);
    }
    for (const w of workers) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await balancer.close();
    await served.close();

    const per = (way: keyof typeof ways) => median(spent[way]);
    const step = (way: keyof typeof ways) => (per(way) - per('plain')) / steps;
    console.log(
      `${migrations} migrations each, interleaved, ${steps} effect calls (steps) per migration, effects over HTTP to one served simulated cluster.\n`,
    );
    console.log('| runtime | wall per migration (median) | added per step over no journal |');
    console.log('|---|---|---|');
    console.log(`| none (plain runner) | ${per('plain').toFixed(1)} ms | |`);
    console.log(
      `| file journal (fsync per transition) | ${per('journal').toFixed(1)} ms | ${step('journal').toFixed(2)} ms |`,
    );
    console.log(
      `| Restate, one node, default fsync | ${per('restate').toFixed(1)} ms | ${step('restate').toFixed(2)} ms |`,
    );
    console.log(
      `\nRestate / file journal, per added step: ${(step('restate') / step('journal')).toFixed(1)}x`,
    );
    console.log(
      `\nFrom a worker's SIGKILL (node command in flight, its answer lost) to that command asked again by the other worker: median ${median(resumeMs).toFixed(0)} ms (${resumeMs.map((m) => m.toFixed(0)).join(', ')} ms over ${resumeMs.length} kills)`,
    );
    console.log(
      `\nState a migration writes (${events.length} events): ${(once / 1024).toFixed(0)} KiB, the status record and each event once; ${(rewritten / 1024).toFixed(0)} KiB if the status were rewritten with its latest events at each`,
    );
  } finally {
    await server.stop();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
