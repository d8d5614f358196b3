/**
 * Predicted vs measured on the namespace testbed (root only): each guest is measured as a migration
 * measures it (QEMU's calc-dirty-rate, page sampling, 1 s), its copy predicted, then migrated live
 * over a throttled link with the prediction off (so the run's own measurement does not change what
 * is compared); QEMU's own total-time and downtime (query-migrate) against the prediction.
 *   guests       the ticker (16 MiB, idle between ticks), and a larger one (256 MiB), idle and busy
 *                (the busy ticker rewrites 512 KiB between ticks); more sample pages than QEMU's
 *                default, so that a small guest's working set is sampled at all
 * Run: npx tsx bench/prediction.ts [runs]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Convergence, DEFAULT_CONVERGENCE, forecastCopy } from '../machines/index.js';
import { type SshBackend, sshEffects } from '../src/backend/ssh.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { runMigration } from '../src/index.js';
import { SshNode } from '../src/ssh/index.js';
import { removeDir, startTestbed, testbedUnavailable } from '../test/testbed/testbed.js';
import { median, runAlone } from './common.js';

export interface GuestFigures {
  guest: string;
  runs: number;
  dirtyMiBps: number;
  /** Medians, ms. */
  predictedCopy: number;
  measuredCopy: number;
  predictedDowntime: number;
  measuredDowntime: number;
}

const GUESTS = [
  { guest: 'ticker, 16 MiB, idle', memoryMiB: 16, busy: false },
  { guest: 'ticker, 256 MiB, idle', memoryMiB: 256, busy: false },
  { guest: 'busy ticker, 256 MiB', memoryMiB: 256, busy: true },
] as const;

/** A link slow enough that the copy is long beside the run's own steps. */
const POLICY: Convergence = { ...DEFAULT_CONVERGENCE, bandwidthMiBps: 32, predict: false };
const SAMPLE_PAGES = 8192;

/** QEMU's total-time and downtime of the copy, read from the source before the backend quits it. */
function captureCopy(backend: SshBackend, instance: string) {
  const finalize = backend.effects.finalizeMigrationSource;
  const last = { total: Number.NaN, downtime: Number.NaN };
  backend.effects.finalizeMigrationSource = async (input, signal, hurry) => {
    const info = await backend.qemu(input.node, instance).queryMigrate(5_000);
    last.total = info['total-time'] ?? Number.NaN;
    last.downtime = info.downtime ?? Number.NaN;
    return finalize(input, signal, hurry);
  };
  return last;
}

export async function benchPrediction(runs: number, log = console.log): Promise<GuestFigures[]> {
  const figures: GuestFigures[] = [];
  for (const g of GUESTS) {
    const dir = mkdtempSync(join(tmpdir(), 'drbd-migrate-bench-'));
    const tb = await startTestbed(dir, { memoryMiB: g.memoryMiB, busy: g.busy });
    try {
      const spec = (n: string) => tb.cluster.nodes.find((x) => x.name === n)!;
      const qemu = new QemuNode(new SshNode(spec('node-a')), tb.cluster.instances[0]!.hypervisor);
      await qemu.start(false, 20_000);
      qemu.shell.close();
      const rows: { rate: number; pc: number; mc: number; pd: number; md: number }[] = [];
      let source = 'node-a';
      for (let i = 0; i < runs; i++) {
        const backend = await sshEffects(tb.clusterPath);
        const rate = await backend.effects.measureDirtyRate(
          { instance: 'web1', node: source, calcSeconds: 1, samplePages: SAMPLE_PAGES, timeoutMs: 20_000 },
          new AbortController().signal,
        );
        const forecast = forecastCopy({
          memoryMiB: g.memoryMiB,
          dirtyMiBps: rate.dirtyMiBps,
          policy: POLICY,
          live: true,
          windowSeconds: rate.calcSeconds,
        });
        const copy = captureCopy(backend, 'web1');
        const out = await runMigration({ instance: 'web1', convergence: POLICY }, backend.effects);
        backend.close();
        if (out.outcome !== 'migrated') throw new Error(`${g.guest}, run ${i}: ${out.outcome}: ${out.error}`);
        rows.push({
          rate: rate.dirtyMiBps,
          pc: forecast.hopeful.copySeconds * 1000,
          mc: copy.total,
          pd: forecast.hopeful.downtimeMs,
          md: copy.downtime,
        });
        source = source === 'node-a' ? 'node-b' : 'node-a';
      }
      const f: GuestFigures = {
        guest: g.guest,
        runs,
        dirtyMiBps: median(rows.map((r) => r.rate)),
        predictedCopy: median(rows.map((r) => r.pc)),
        measuredCopy: median(rows.map((r) => r.mc)),
        predictedDowntime: median(rows.map((r) => r.pd)),
        measuredDowntime: median(rows.map((r) => r.md)),
      };
      log(
        `${f.guest}: measured ${f.dirtyMiBps} MiB/s dirty; copy predicted ${f.predictedCopy.toFixed(0)} ms, QEMU ${f.measuredCopy} ms (×${(f.measuredCopy / f.predictedCopy).toFixed(2)}); downtime predicted ${f.predictedDowntime} ms, QEMU ${f.measuredDowntime} ms; each run: ${rows.map((r) => `${r.mc}/${r.pc.toFixed(0)}`).join(', ')}`,
      );
      figures.push(f);
    } finally {
      tb.stop();
      removeDir(dir);
    }
  }
  return figures;
}

await runAlone(import.meta.url, testbedUnavailable, (runs) => benchPrediction(runs), 3);
