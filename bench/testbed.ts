/**
 * On the namespace testbed (root only): a whole live migration through sshEffects, side by side with
 * the node operations themselves, and how soon the machine notices the copy completed.
 *   wall         the machine's run, first step to outcome
 *   qemu         QEMU's own total-time for the memory copy (query-migrate)
 *   detect       from the copy's completion (migrate issued + total-time) to the machine's
 *                "memory transfer complete" (event-driven; Ganeti polls every 1 s)
 * Run: npx tsx bench/testbed.ts [runs]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sshEffects } from '../src/backend/ssh.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { type EffectCall, type RunEvent, runMigration } from '../src/index.js';
import { SshNode } from '../src/ssh/index.js';
import { removeDir, startTestbed, testbedUnavailable } from '../test/testbed/testbed.js';
import { captureQemuTotalTime, median, runAlone, timePerEffect } from './common.js';

export interface TestbedFigures {
  runs: number;
  /** Medians, ms. */
  wall: number;
  qemu: number;
  detect: number;
  /** Time inside the effects (the node operations), summed over the run. */
  inEffects: number;
}

/** `runs` live migrations back and forth on a namespace testbed it starts and stops. */
export async function benchTestbed(runs: number, log = console.log): Promise<TestbedFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'drbd-migrate-bench-'));
  const tb = await startTestbed(dir);
  try {
    const spec = (n: string) => tb.cluster.nodes.find((x) => x.name === n)!;
    const hv = tb.cluster.instances[0]!.hypervisor;
    const start = new QemuNode(new SshNode(spec('node-a')), hv);
    await start.start(false, 20_000);
    start.shell.close();
    const rows: { wall: number; qemu: number; detect: number; inEffects: number }[] = [];
    let source = 'node-a';
    for (let i = 0; i < runs; i++) {
      const backend = await sshEffects(tb.clusterPath);
      const total = captureQemuTotalTime(backend, 'web1');
      const effects = timePerEffect();
      let begun = 0;
      let issued = 0;
      let noticed = 0;
      const out = await runMigration({ instance: 'web1' }, backend.effects, {
        onStart: () => {
          begun = performance.now();
        },
        onCall: (c: EffectCall) => {
          effects.onCall(c);
          if (c.effect === 'migrateInstance' && c.phase === 'start') issued = performance.now();
        },
        onEvent: (e: RunEvent) => {
          if (e.type === 'feedback' && e.message === '* memory transfer complete')
            noticed = performance.now();
        },
      });
      const wall = performance.now() - begun;
      backend.close();
      if (out.outcome !== 'migrated') throw new Error(`run ${i}: ${out.outcome}: ${out.error}`);
      const target = source === 'node-a' ? 'node-b' : 'node-a';
      const inEffects = Object.values(effects.spent).reduce((sum, t) => sum + t, 0);
      rows.push({ wall, qemu: total(), detect: noticed - issued - total(), inEffects });
      source = target;
    }
    const w = median(rows.map((r) => r.wall));
    const qm = median(rows.map((r) => r.qemu));
    const d = median(rows.map((r) => r.detect));
    const e = median(rows.map((r) => r.inEffects));
    log(
      `runs: ${runs}; medians (ms): wall ${w.toFixed(0)}, qemu total-time ${qm}, detection after completion ${d.toFixed(0)}`,
    );
    log(
      `wall / qemu copy: ${(w / qm).toFixed(1)}x; detection vs Ganeti's 1000 ms status poll: ${(1000 / Math.max(d, 1)).toFixed(0)}x sooner`,
    );
    log(`time inside the node operations (the effects) per run: ${e.toFixed(0)} ms of ${w.toFixed(0)}`);
    return { runs, wall: w, qemu: qm, detect: d, inEffects: e };
  } finally {
    tb.stop();
    removeDir(dir);
  }
}

await runAlone(import.meta.url, testbedUnavailable, (runs) => benchTestbed(runs), 6);
