/**
 * On the DRBD VM testbed's spare layout (three DRBD 8.4 nodes, LVM): the time to restore an
 * instance's redundancy on a new node against DRBD's own resync of the copy, side by side in one run.
 *   wall     replace-secondary's run, first step to outcome (the machine over sshEffects)
 *   resync   DRBD's own time in resync on the primary (SyncSource until Established), from its event
 *            stream: what any tool would wait for
 *   share    wall − resync: the orchestration's steps (volumes, devices, the disconnect, the commit,
 *            the old copies removed)
 * Each run moves web1's secondary to the other spare node (node-b ↔ node-c) while its guest ticks.
 * Run: npx tsx bench/replace.ts [runs]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MACHINES } from '../machines/index.js';
import { SSH_GRACE_MS, sshEffects } from '../src/backend/ssh.js';
import { loadCluster } from '../src/cluster/index.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { runMachine } from '../src/runner/index.js';
import { SshNode } from '../src/ssh/index.js';
import { drbdTestbedUnavailable, startDrbdTestbed } from '../test/testbed/drbd.js';
import { median, runAlone } from './common.js';
import { resyncs, watchEvents } from './drbd.js';

export interface ReplaceFigures {
  runs: number;
  /** Medians, ms. */
  wall: number;
  resync: number;
  sizeMiB: number;
}

export async function benchReplace(runs: number, log = console.log): Promise<ReplaceFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'drbd-migrate-bench-replace-'));
  const tb = await startDrbdTestbed(dir, '8.4', { spare: true });
  try {
    const start = new QemuNode(new SshNode(tb.cluster.nodes[0]!), tb.cluster.instances[0]!.hypervisor);
    await start.start(false, 60_000);
    start.shell.close();
    const rows: { wall: number; resync: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const cluster = await loadCluster(tb.clusterPath);
      const to = cluster.instances[0]!.secondary === 'node-b' ? 'node-c' : 'node-b';
      const watcher = watchEvents(cluster.nodes.find((n) => n.name === 'node-a')!);
      await watcher.ready;
      const backend = await sshEffects(tb.clusterPath);
      const begun = performance.now();
      const out = await runMachine(
        MACHINES.changeSecondary,
        { instance: 'web1', newSecondary: to, limits: cluster.options.limits ?? {} },
        backend.effects,
        { graceMs: SSH_GRACE_MS },
      );
      const wall = performance.now() - begun;
      backend.close();
      watcher.close();
      if (out.outcome !== 'replaced') throw new Error(`run ${i}: ${out.outcome}: ${out.error}`);
      const resync = resyncs(watcher.lines).reduce((sum, r) => sum + (r.end - r.start), 0);
      rows.push({ wall, resync });
      log(`run ${i}: web1's secondary to ${to}: ${wall.toFixed(0)} ms, of which DRBD's resync ${resync} ms`);
    }
    const f: ReplaceFigures = {
      runs,
      wall: median(rows.map((r) => r.wall)),
      resync: median(rows.map((r) => r.resync)),
      sizeMiB: tb.cluster.instances[0]!.disks.reduce(
        (s, d) => s + ('sizeMiB' in d ? (d.sizeMiB ?? 0) : 0),
        0,
      ),
    };
    log(
      `medians: ${f.wall.toFixed(0)} ms to restore redundancy, DRBD's resync ${f.resync} ms of it (${f.sizeMiB} MiB); the orchestration's share ${(f.wall - f.resync).toFixed(0)} ms`,
    );
    return f;
  } finally {
    tb.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await runAlone(
  import.meta.url,
  () => drbdTestbedUnavailable('8.4'),
  (runs) => benchReplace(runs),
  3,
);
