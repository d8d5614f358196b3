import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterFile } from '../src/cluster/index.js';
import { loadCluster } from '../src/cluster/index.js';
import { QemuNode } from '../src/drivers/qemu.js';
import {
  type Balancer,
  type RestateServer,
  registerDeployment,
  runOnRestate,
  startBalancer,
  startRestateServer,
} from '../src/restate/index.js';
import { SshNode } from '../src/ssh/index.js';
import { startWorker, type WorkerProcess } from './processes.js';
import { qemuRunning, ticks, ticksAcross, untilFile } from './testbed/common.js';
import { removeDir, startTestbed, type Testbed, testbedUnavailable } from './testbed/testbed.js';
import { tempDir } from './tmp.js';

/**
 * The Restate runtime on the namespace testbed: real sshd nodes, a real QEMU guest live-migrated
 * between them, two worker processes acting over SSH. The worker running the migration is SIGKILLed
 * while QEMU copies the guest's memory; the other worker finishes the run, and the guest counts on.
 */

const unavailable = testbedUnavailable();
if (unavailable !== null && process.env.CI === 'true') {
  throw new Error(`CI=true but the namespace testbed cannot start: ${unavailable}`);
}
if (unavailable !== null) console.warn(`SKIPPED test/restate-testbed.test.ts: ${unavailable}`);

describe.skipIf(unavailable !== null)('Restate on the namespace testbed: real sshd, real QEMU', () => {
  let tb: Testbed;
  let dir: string;
  let server: RestateServer;
  let balancer: Balancer;
  const workers: WorkerProcess[] = [];
  const runDir = (name: string) => tb.nodes.find((n) => n.name === name)!.runDir;
  const alive = (name: string) => qemuRunning(runDir(name));
  const serialOf = (name: string) => join(runDir(name), 'web1.serial');

  beforeAll(async () => {
    dir = tempDir('drbd-migrate-restate-testbed-');
    tb = await startTestbed(dir);
    const spec = tb.cluster.nodes.find((n) => n.name === 'node-a')!;
    const source = new QemuNode(
      new SshNode(spec as ClusterFile['nodes'][number]),
      tb.cluster.instances[0]!.hypervisor,
    );
    await source.start(false, 20_000);
    source.shell.close();
    await untilFile(serialOf('node-a'), (t) => ticks(t).length >= 2, '2 ticks on node-a');
    // A copy slow enough to kill its orchestrator in the middle of: 1 MiB/s for the 16 MiB guest.
    const cluster = await loadCluster(tb.clusterPath);
    writeFileSync(
      tb.clusterPath,
      JSON.stringify(
        // The prediction off: a tiny guest's measurement reads 0 or a few MiB/s by chance.
        {
          ...cluster,
          options: { bandwidthMiBps: 1, limits: { stepTimeoutMs: 20_000 }, convergence: { predict: false } },
        },
        null,
        2,
      ),
    );
    server = await startRestateServer({ dir: join(dir, 'restate') });
    workers.push(
      await startWorker(['--cluster', tb.clusterPath]),
      await startWorker(['--cluster', tb.clusterPath]),
    );
    // Only the first takes runs at first: the test knows which worker to kill.
    balancer = await startBalancer([{ port: workers[0]!.port }]);
    await registerDeployment(server.admin, balancer.url);
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await balancer?.close();
    await server?.stop();
    tb?.stop();
    if (dir) removeDir(dir);
  });

  it('a live migration whose worker is SIGKILLed during the memory copy is finished by the other worker; the guest counts on on node-b', async () => {
    const [first, second] = workers;
    const lastBefore = ticks(readFileSync(serialOf('node-a'), 'utf8')).length;
    let killed = false;
    const states: string[] = [];
    const output = await runOnRestate(
      server,
      'cluster',
      'migration',
      { instance: 'web1' },
      {
        pollMs: 100,
        onEvent: (e) => {
          if (e.type === 'state') states.push(e.value);
          if (killed || e.type !== 'progress' || e.kind !== 'memory') return;
          killed = true;
          first!.child.kill('SIGKILL');
          balancer.targets.splice(0, balancer.targets.length, { port: second!.port });
        },
      },
    );
    expect(killed).toBe(true);
    expect(output.error ?? null).toBeNull();
    expect(output).toMatchObject({ outcome: 'migrated', primaryNode: 'node-b' });
    expect(states.at(-1)).toBe('migrated');
    // One guest, on node-b, continuing the count it had on node-a.
    expect(alive('node-a')).toBe(false);
    expect(alive('node-b')).toBe(true);
    const onA = readFileSync(serialOf('node-a'), 'utf8');
    expect(ticks(onA).length).toBeGreaterThanOrEqual(lastBefore);
    await untilFile(serialOf('node-b'), (t) => ticks(t).length >= 2, 'two ticks on node-b');
    const { last, after } = ticksAcross(onA, readFileSync(serialOf('node-b'), 'utf8'));
    expect(after.slice(0, 2)).toEqual([last + 1, last + 2]);
    expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
      primary: 'node-b',
      secondary: 'node-a',
    });
  }, 120_000);
});
