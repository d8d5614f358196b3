/**
 * On the DRBD VM testbed (test/testbed/drbd.ts; Debian's kernel with DRBD 8.4.11 under TCG, QEMU
 * inside the nodes): whole live migrations through sshEffects, side by side with the node operations
 * themselves, and how soon the machine notices that a resync ended.
 *   wall     the machine's run, first step to outcome
 *   qemu     QEMU's own total-time for the memory copy (query-migrate on the source)
 *   resync   DRBD's own time in resync (SyncSource/SyncTarget until Established), summed over the
 *            run's reconnects, as DRBD's event stream reports it
 *   detect   from a resync's end (the event line's arrival at this host, a few ms after the kernel's
 *            change) to the machine's "sync 100%" for the wait that was under way; Ganeti polls
 *            every 2 s, so it notices 1 s later on average
 * and, to say where the wall time goes, the time spent in each effect, and the testbed's start-up.
 * Run: npx tsx bench/drbd.ts [runs]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ssh2';
import { sshEffects } from '../src/backend/ssh.js';
import { type ClusterFile, loadCluster } from '../src/cluster/index.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { type RunEvent, runMigration } from '../src/index.js';
import { fingerprint, SshNode } from '../src/ssh/index.js';
import { drbdTestbedUnavailable, startDrbdTestbed } from '../test/testbed/drbd.js';
import { captureQemuTotalTime, median, runAlone, timePerEffect } from './common.js';

/** DRBD's own event stream from a node, each line stamped with its arrival here. */
export function watchEvents(node: ClusterFile['nodes'][number]) {
  const lines: { at: number; line: string }[] = [];
  const client = new Client();
  const ready = new Promise<void>((resolve, reject) => {
    client.on('ready', () => {
      client.exec('timeout 300 /lib/drbd/drbdsetup-84 events2 web1-disk0', (error, stream) => {
        if (error) return reject(error);
        let buffer = '';
        stream.on('data', (chunk: Buffer) => {
          const at = Date.now();
          buffer += chunk.toString();
          const parts = buffer.split('\n');
          buffer = parts.pop() ?? '';
          for (const line of parts) lines.push({ at, line });
          // The "exists -" line ends the initial dump: from here on every line is a change.
          if (parts.some((l) => l === 'exists -')) resolve();
        });
        stream.stderr.on('data', () => {});
      });
    });
    client.on('error', reject);
  });
  client.connect({
    host: node.address,
    port: node.port,
    username: node.user,
    privateKey: readFileSync(node.privateKey!),
    hostVerifier: (key: Buffer) => fingerprint(key) === node.hostKey,
  });
  return { lines, ready, close: () => client.end() };
}

/** Resync periods (start, end) in a node's event lines. */
export function resyncs(lines: { at: number; line: string }[]) {
  const out: { start: number; end: number }[] = [];
  let start: number | null = null;
  for (const { at, line } of lines) {
    const r = /\sreplication:(\S+)/.exec(line)?.[1];
    if (r === undefined || !line.startsWith('change peer-device')) continue;
    if (/^(SyncSource|SyncTarget|PausedSync[ST])$/.test(r) && start === null) start = at;
    if (r === 'Established' && start !== null) {
      out.push({ start, end: at });
      start = null;
    }
  }
  return out;
}

export interface DrbdFigures {
  runs: number;
  /** The testbed's start-up, ms. */
  bootMs: number;
  /** Medians, ms. */
  wall: number;
  qemu: number;
  resync: number;
  /** Median detection after a resync's end, ms; null when no resync ended during a wait. */
  detect: number | null;
  /** Time inside the effects (the node operations), summed over the run. */
  inEffects: number;
}

/** `runs` live migrations on the DRBD VM testbed it boots and stops. */
export async function benchDrbd(runs: number, log = console.log): Promise<DrbdFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'drbd-migrate-bench-drbd-'));
  const booting = performance.now();
  const tb = await startDrbdTestbed(dir);
  const bootMs = performance.now() - booting;
  log(`testbed up (kernel cached, VMs booted, DRBD synced): ${bootMs.toFixed(0)} ms`);
  try {
    const hv = tb.cluster.instances[0]!.hypervisor;
    const start = new QemuNode(new SshNode(tb.cluster.nodes[0]!), hv);
    await start.start(false, 60_000);
    start.shell.close();
    const limits = (await loadCluster(tb.clusterPath)).options.limits ?? {};
    const rows: {
      wall: number;
      qemu: number;
      resync: number;
      detect: number[];
      spent: Record<string, number>;
    }[] = [];
    for (let i = 0; i < runs; i++) {
      const watchers = tb.cluster.nodes.map((n) => watchEvents(n));
      await Promise.all(watchers.map((w) => w.ready));
      const backend = await sshEffects(tb.clusterPath);
      const total = captureQemuTotalTime(backend, 'web1');
      const effects = timePerEffect();
      let begun = 0;
      const waits: { from: number; to: number }[] = [];
      const out = await runMigration({ instance: 'web1', limits }, backend.effects, {
        onCall: effects.onCall,
        onStart: () => {
          begun = Date.now();
        },
        onEvent: (e: RunEvent) => {
          if (e.type === 'state' && e.value.endsWith('.polling'))
            waits.push({ from: Date.now(), to: Number.NaN });
          if (e.type === 'progress' && e.kind === 'sync' && e.percent === 100) {
            const open = waits.at(-1);
            if (open !== undefined && Number.isNaN(open.to)) open.to = Date.now();
          }
        },
      });
      const wall = Date.now() - begun;
      backend.close();
      for (const w of watchers) w.close();
      if (out.outcome !== 'migrated') throw new Error(`run ${i}: ${out.outcome}: ${out.error}`);
      const periods = watchers.flatMap((w) => resyncs(w.lines));
      // Each wait that a resync's end finished: the last end inside the wait, against its answer.
      const detect = waits.flatMap((w) => {
        const ends = periods.map((p) => p.end).filter((e) => e >= w.from && e <= w.to);
        return ends.length === 0 ? [] : [w.to - Math.max(...ends)];
      });
      const resync = periods.reduce((sum, p) => sum + (p.end - p.start), 0) / 2; // seen from both nodes
      rows.push({ wall, qemu: total(), resync, detect, spent: effects.spent });
      log(
        `run ${i + 1}: wall ${wall} ms, qemu total-time ${total()} ms, DRBD resync ${resync.toFixed(0)} ms over ${periods.length / 2} resyncs, detection ${detect.map((d) => `${d} ms`).join(', ') || '(no resync ended during a wait)'}`,
      );
    }
    const detections = rows.flatMap((r) => r.detect);
    const w = median(rows.map((r) => r.wall));
    const q = median(rows.map((r) => r.qemu));
    const s = median(rows.map((r) => r.resync));
    log(
      `runs: ${runs}; medians (ms): wall ${w}, qemu total-time ${q}, DRBD resync ${s.toFixed(0)}, detection after a resync's end ${detections.length === 0 ? 'n/a' : median(detections)} (${detections.length} waits)`,
    );
    // Where the wall time goes: each effect's time per run (the DRBD reconnects, starting QEMU...).
    const names = [...new Set(rows.flatMap((r) => Object.keys(r.spent)))];
    const spent = names
      .map((n) => [n, median(rows.map((r) => r.spent[n] ?? 0))] as const)
      .sort((a, b) => b[1] - a[1]);
    log(
      `time in each effect per run, medians (ms): ${spent.map(([n, t]) => `${n} ${t.toFixed(0)}`).join(', ')}`,
    );
    if (detections.length > 0) {
      log(
        `detection vs Ganeti's 2000 ms sync poll (1000 ms later on average): ${(1000 / Math.max(median(detections), 1)).toFixed(0)}x sooner`,
      );
    }
    const inEffects = median(rows.map((r) => Object.values(r.spent).reduce((sum, t) => sum + t, 0)));
    return {
      runs,
      bootMs,
      wall: w,
      qemu: q,
      resync: s,
      detect: detections.length === 0 ? null : median(detections),
      inEffects,
    };
  } finally {
    tb.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await runAlone(import.meta.url, drbdTestbedUnavailable, (runs) => benchDrbd(runs), 4);
