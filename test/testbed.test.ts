import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sshEffects } from '../src/backend/ssh.js';
import { runCli } from '../src/cli/cli.js';
import { dryRun, inputWithLimits } from '../src/cli/cluster.js';
import { type ClusterFile, loadCluster } from '../src/cluster/index.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { type Convergence, type EffectCall, type RunEvent, runMigration } from '../src/index.js';
import { type NodeShell, SshNode } from '../src/ssh/index.js';
import { buildTicker, qemuRunning, ticks, ticksAcross, untilFile } from './testbed/common.js';
import { planAgainstRun, recording, recordingShell } from './testbed/record.js';
import { removeDir, startTestbed, type Testbed, testbedUnavailable } from './testbed/testbed.js';
import { tempDir } from './tmp.js';

/**
 * Tier A: the migration machine through sshEffects against two real nodes (network namespaces with
 * their own sshd) and a real QEMU live migration between them, on a shared loop device.
 */

const unavailable = testbedUnavailable();
if (unavailable !== null && process.env.CI === 'true') {
  throw new Error(`CI=true but the namespace testbed cannot start: ${unavailable}`);
}
if (unavailable !== null) console.warn(`SKIPPED test/testbed.test.ts: ${unavailable}`);

describe.skipIf(unavailable !== null)('namespace testbed: real sshd, real QEMU', () => {
  let tb: Testbed;
  let dir: string;
  const node = (name: string) => tb.nodes.find((n) => n.name === name)!;
  const qemuOn = (name: string): QemuNode => {
    const spec = tb.cluster.nodes.find((n) => n.name === name)!;
    return new QemuNode(
      new SshNode(spec as ClusterFile['nodes'][number]),
      tb.cluster.instances[0]!.hypervisor,
    );
  };
  const alive = (name: string) => qemuRunning(node(name).runDir);
  const ticksOn = (name: string) => ticks(tb.serial(name));
  const serialOf = (name: string) => join(node(name).runDir, 'web1.serial');
  const waitForTicks = (name: string, count: number) =>
    untilFile(serialOf(name), (t) => ticks(t).length >= count, `${count} ticks on ${name}`);
  const setOptions = async (options: ClusterFile['options']) => {
    const cluster = await loadCluster(tb.clusterPath);
    writeFileSync(tb.clusterPath, JSON.stringify({ ...cluster, options }, null, 2));
  };
  async function migrate(
    extra: {
      mode?: 'live' | 'non-live';
      convergence?: Partial<Convergence>;
      abort?: AbortSignal;
      onEvent?: (e: RunEvent) => void;
      shellFor?: (n: ClusterFile['nodes'][number]) => NodeShell;
      onCall?: (c: EffectCall) => void;
    } = {},
  ) {
    const backend = await sshEffects(tb.clusterPath, extra.shellFor ? { shellFor: extra.shellFor } : {});
    // The cluster file's limits and copy options, as the CLI reads them.
    const input = inputWithLimits(await loadCluster(tb.clusterPath), {
      instance: 'web1',
      ...(extra.mode ? { mode: extra.mode } : {}),
      ...(extra.convergence ? { convergence: extra.convergence } : {}),
    });
    try {
      return await runMigration(input, backend.effects, {
        ...(extra.abort ? { abort: extra.abort } : {}),
        ...(extra.onEvent ? { onEvent: extra.onEvent } : {}),
        ...(extra.onCall ? { onCall: extra.onCall } : {}),
      });
    } finally {
      backend.close();
    }
  }

  beforeAll(async () => {
    dir = tempDir('drbd-migrate-testbed-');
    tb = await startTestbed(dir);
    const source = qemuOn('node-a');
    await source.start(false, 20_000);
    source.shell.close();
    await waitForTicks('node-a', 2);
  }, 60_000);

  afterAll(() => {
    tb?.stop();
    if (dir) removeDir(dir);
  });

  it('live-migrates the instance to node-b: the guest keeps counting there and the file names node-b', async () => {
    const before = ticksOn('node-a').length;
    const out = await migrate();
    expect(out.error ?? null).toBeNull();
    expect(out.outcome).toBe('migrated');
    expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
      primary: 'node-b',
      secondary: 'node-a',
    });
    expect(alive('node-a')).toBe(false);
    expect(alive('node-b')).toBe(true);
    await waitForTicks('node-b', 2);
    const { last, after } = ticksAcross(tb.serial('node-a'), tb.serial('node-b'));
    expect(last).toBeGreaterThanOrEqual(before);
    // The target continues the source's count: the same guest, not a fresh boot.
    expect(after.slice(0, 2)).toEqual([last + 1, last + 2]);
    // And it writes to the shared disk: the sector of its first tick holds that tick. The guest prints
    // a tick before writing it, so tick last + 2 on the serial port means last + 1 is on disk.
    const sector = execFileSync('dd', [
      `if=${tb.loopDevice}`,
      'bs=512',
      `skip=${8 + last + 1}`,
      'count=1',
      'iflag=direct',
      'status=none',
    ]);
    expect(
      sector.toString('latin1').startsWith(`disk-tick ${(last + 1).toString(16).padStart(4, '0')}`),
    ).toBe(true);
  }, 60_000);

  it('migrates it back non-live', async () => {
    const out = await migrate({ mode: 'non-live' });
    expect(out.outcome).toBe('migrated');
    expect(alive('node-b')).toBe(false);
    expect(alive('node-a')).toBe(true);
    const last = ticksOn('node-b').at(-1)!;
    await untilFile(serialOf('node-a'), (t) => ticks(t).includes(last + 1), 'ticks on node-a');
    expect((await loadCluster(tb.clusterPath)).instances[0]?.primary).toBe('node-a');
  }, 60_000);

  it('an operator abort during a throttled copy cancels it: the source runs on, the target QEMU is gone', async () => {
    // The prediction off: a tiny guest's measurement (8 sampled pages) reads 0 or 2 MiB/s by chance.
    await setOptions({
      bandwidthMiBps: 0.01,
      limits: { stepTimeoutMs: 20_000 },
      convergence: { predict: false },
    });
    const abort = new AbortController();
    const out = await migrate({
      abort: abort.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.kind === 'memory') abort.abort();
      },
    });
    await setOptions({ limits: { stepTimeoutMs: 20_000 } });
    expect(out.outcome).toBe('reverted');
    expect(alive('node-b')).toBe(false);
    expect(alive('node-a')).toBe(true);
    const seen = ticksOn('node-a').length;
    await waitForTicks('node-a', seen + 1);
    expect((await loadCluster(tb.clusterPath)).instances[0]?.primary).toBe('node-a');
  }, 60_000);

  it('an operator abort cuts the status poll in flight short: without that it would block for the whole window', async () => {
    // A 10-minute poll window over a copy throttled to 10 KiB/s: the poll in flight answers only
    // when hurried (or the window ends, long after this test's own limit).
    const long = { stepTimeoutMs: 600_000, pollWindowMs: 600_000, migrationNoProgressMs: 600_000 };
    await setOptions({ bandwidthMiBps: 0.01, limits: long, convergence: { predict: false } });
    const abort = new AbortController();
    let hurried = false;
    try {
      const out = await migrate({
        abort: abort.signal,
        onCall: (c) => {
          const blocking = (c.input as { timeoutMs: number }).timeoutMs > 0;
          if (hurried || c.phase !== 'start' || c.effect !== 'migrationStatus' || !blocking) return;
          hurried = true;
          // Once the call is under way: the abort then waits for it, and hurries it.
          queueMicrotask(() => abort.abort());
        },
      });
      expect(hurried).toBe(true);
      expect(out.outcome).toBe('reverted');
    } finally {
      await setOptions({ limits: { stepTimeoutMs: 20_000 } });
    }
    expect(alive('node-b')).toBe(false);
    expect(alive('node-a')).toBe(true);
  }, 60_000);

  it('a target QEMU that dies mid-copy fails the copy: reverted, the source runs on', async () => {
    // The prediction off: a tiny guest's measurement (8 sampled pages) reads 0 or 2 MiB/s by chance.
    await setOptions({
      bandwidthMiBps: 0.01,
      limits: { stepTimeoutMs: 20_000 },
      convergence: { predict: false },
    });
    let killed = false;
    const out = await migrate({
      onEvent: (e) => {
        if (!killed && e.type === 'progress' && e.kind === 'memory') {
          killed = true;
          process.kill(Number(readFileSync(join(node('node-b').runDir, 'web1.pid'), 'utf8')), 'SIGKILL');
        }
      },
    });
    await setOptions({ limits: { stepTimeoutMs: 20_000 } });
    expect(killed).toBe(true);
    expect(out.outcome).toBe('reverted');
    expect(out.error).toMatch(/node-b|failed/);
    expect(alive('node-a')).toBe(true);
    const seen = ticksOn('node-a').length;
    await waitForTicks('node-a', seen + 1);
  }, 60_000);

  describe('security', () => {
    it('refuses a changed host key before running anything', async () => {
      const cluster = await loadCluster(tb.clusterPath);
      const good = structuredClone(cluster);
      cluster.nodes[1]!.hostKey = cluster.nodes[0]!.hostKey; // node-a's key pinned for node-b
      writeFileSync(tb.clusterPath, JSON.stringify(cluster, null, 2));
      try {
        const out = await migrate();
        expect(out.outcome).toBe('rejected');
        expect(out.error).toMatch(/node-b: cannot connect .*host key of .* CHANGED/);
        expect(alive('node-a')).toBe(true);
        expect(alive('node-b')).toBe(false);
      } finally {
        writeFileSync(tb.clusterPath, JSON.stringify(good, null, 2));
      }
    });

    it('rejects an instance name with shell metacharacters before any command runs', async () => {
      const seen = recording();
      const backend = await sshEffects(tb.clusterPath, { shellFor: recordingShell(seen) });
      try {
        const out = await runMigration({ instance: 'web1; touch /tmp/pwned' }, backend.effects, {});
        expect(out.outcome).toBe('rejected');
        expect(out.error).toMatch(/instance/i);
      } finally {
        backend.close();
      }
      expect(seen).toEqual({ sh: [], sockets: [], qmp: [] });
    });

    it('a connection the network resets is asked again within the deadline; a probe is not (issue 22 D.5)', async () => {
      // A front on loopback that resets the first connection, then carries the rest to node-b's sshd.
      const spec = tb.cluster.nodes.find((n) => n.name === 'node-b')! as ClusterFile['nodes'][number];
      let connections = 0;
      const front = createServer((socket) => {
        connections++;
        if (connections === 1) return socket.destroy();
        const up = connect(spec.port, spec.address);
        socket.on('error', () => up.destroy());
        up.on('error', () => socket.destroy());
        socket.pipe(up).pipe(socket);
      });
      await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
      const port = (front.address() as AddressInfo).port;
      const through = new SshNode({ ...spec, address: '127.0.0.1', port });
      try {
        expect((await through.exec(['echo', 'here'], { timeoutMs: 10_000 })).stdout).toBe('here\n');
        expect(connections).toBe(2);
        through.close();
        connections = 0;
        const probing = new SshNode({ ...spec, address: '127.0.0.1', port });
        await expect(probing.exec(['true'], { timeoutMs: 10_000, retry: false })).rejects.toThrow(
          /node-b: cannot connect to 127\.0\.0\.1:\d+: Connection lost before handshake/,
        );
        expect(connections).toBe(1);
        probing.close();
      } finally {
        through.close();
        await new Promise((resolve) => front.close(resolve));
      }
    });

    it('cuts off a node that stops answering at the step deadline', async () => {
      await setOptions({ limits: { stepTimeoutMs: 1_500 } });
      const sshdPid = Number(readFileSync(join(tb.dir, 'node-b', 'sshd.pid'), 'utf8'));
      process.kill(sshdPid, 'SIGSTOP');
      try {
        const out = await migrate();
        expect(out.outcome).toBe('rejected');
        expect(out.error).toMatch(/node-b: cannot connect .*did not finish within 1500 ms/);
        expect(alive('node-a')).toBe(true);
      } finally {
        process.kill(sshdPid, 'SIGCONT');
        await setOptions({ limits: { stepTimeoutMs: 20_000 } });
      }
    }, 30_000);
  });
  it('the CLI migrates it over SSH with the same events, output and exit codes as the simulator', async () => {
    const lines: string[] = [];
    const code = await runCli(
      ['migrate', 'web1', '--cluster', tb.clusterPath, '--json', '--state-dir', join(dir, 'state')],
      {
        out: (l) => lines.push(l),
        err: (l) => lines.push(l),
      },
    );
    const events = lines.map((l) => JSON.parse(l) as { type: string; outcome?: string });
    expect(code).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'result', outcome: 'migrated', primaryNode: 'node-b' });
    expect(events.some((e) => e.type === 'state')).toBe(true);
    expect(alive('node-b')).toBe(true);
    expect(alive('node-a')).toBe(false);
  }, 60_000);

  it('--dry-run prints each node’s commands and touches nothing', async () => {
    const before = readFileSync(tb.clusterPath, 'utf8');
    const lines: string[] = [];
    const code = await runCli(['migrate', 'web1', '--cluster', tb.clusterPath, '--dry-run'], {
      out: (l) => lines.push(l),
      err: (l) => lines.push(l),
    });
    expect(code).toBe(0);
    expect(lines).toContain(
      '  node-a$ sh -c \'cat /proc/meminfo; "$1" --version; head -n 1 /proc/drbd 2>/dev/null; true\' node-info /usr/bin/qemu-system-x86_64',
    );
    expect(
      lines.some((l) => l.startsWith('  node-a$ timeout -s KILL') && l.includes('-incoming defer')),
    ).toBe(true);
    expect(readFileSync(tb.clusterPath, 'utf8')).toBe(before);
    expect(alive('node-b')).toBe(true);
    expect(alive('node-a')).toBe(false);
  });

  it('--dry-run plans exactly the shell lines and QMP commands a real run sends', async () => {
    const seen = recording();
    const lines: string[] = [];
    const limits = (await loadCluster(tb.clusterPath)).options.limits ?? {};
    const planned = await dryRun(tb.clusterPath, 'migration', { instance: 'web1', limits }, (l) =>
      lines.push(l),
    );
    const out = await migrate({
      shellFor: recordingShell(seen),
      onCall: (c) => {
        if (c.phase === 'start') seen.effect = c.effect;
      },
    });
    expect(planned.outcome).toBe('migrated');
    expect(out.outcome).toBe('migrated');
    const { plan, real } = planAgainstRun(lines, seen);
    const parameters = seen.qmp.filter((c) => c.execute === 'migrate-set-parameters').map((c) => c.arguments);
    expect(plan.sh).toEqual(real.sh);
    expect(plan.qmp).toEqual(real.qmp);
    // Set on every migration, QEMU's defaults when the file names none: a QEMU keeps its parameters,
    // so a throttle from an earlier run (the abort test's) would otherwise carry over.
    expect(parameters).toEqual([{ 'max-bandwidth': 128 * 1024 * 1024, 'downtime-limit': 300 }]);
  }, 60_000);

  // Last: it leaves the busy guest running.
  it('a guest that dirties memory faster than a throttled link: without the policy the copy never converges and is reverted, saying so; with it, it migrates', async () => {
    const from = (await loadCluster(tb.clusterPath)).instances[0]!.primary;
    const to = from === 'node-a' ? 'node-b' : 'node-a';
    // The busy guest boots where the instance runs: it rewrites 512 KiB of memory between ticks.
    const lastIdle = Math.max(...ticksOn(from));
    const stopping = qemuOn(from);
    await stopping.quit(20_000);
    stopping.shell.close();
    const disk = openSync(tb.loopDevice, 'r+');
    writeSync(disk, readFileSync(buildTicker(dir, true)), 0, 512, 0);
    fsyncSync(disk);
    closeSync(disk);
    const starting = qemuOn(from);
    await starting.start(false, 20_000);
    starting.shell.close();
    // It goes on from the count on its disk: a higher tick is the busy guest running, past its BIOS.
    await untilFile(serialOf(from), (t) => ticks(t).some((n) => n > lastIdle + 1), 'the busy guest’s ticks');

    // 1 MiB/s and 300 ms let through about 300 KiB in one stop: never the 512 KiB it dirties. The
    // prediction is off: QEMU samples 8 pages of this 16 MiB guest, so it reads the busy guest at 0
    // or 2 MiB/s by chance (the refusal is tested on the simulator). It never converges, and is
    // reverted, saying so.
    const off = await migrate({ convergence: { bandwidthMiBps: 1, downtimeCapMs: 300, predict: false } });
    expect(off.outcome).toBe('reverted');
    expect(off.error).toMatch(/the memory copy did not converge .* tried: nothing/);
    expect(alive(from)).toBe(true);
    expect(alive(to)).toBe(false);
    await waitForTicks(from, ticksOn(from).length + 1);

    const on = await migrate({ convergence: { bandwidthMiBps: 1, downtimeCapMs: 4000, predict: false } });
    expect(on.error ?? null).toBeNull();
    expect(on.outcome).toBe('migrated');
    expect(on.tried?.[0]).toBe('downtime limit 300 → 600 ms');
    expect(alive(from)).toBe(false);
    const last = ticksOn(from).at(-1)!;
    await waitForTicks(to, 1);
    expect(ticksOn(to)[0]).toBe(last + 1);

    // Back, with no longer downtime allowed: QEMU's auto-converge throttles the guest's CPUs up to
    // 99% (this guest dirties its pages at 1% of a CPU too), then postcopy moves it (userfaultfd on
    // the incoming side): the point of no return, taken by the policy.
    const back = await migrate({
      convergence: {
        bandwidthMiBps: 1,
        downtimeCapMs: 300,
        autoConverge: true,
        postcopy: true,
        predict: false,
      },
    });
    expect(back.error ?? null).toBeNull();
    expect(back.outcome).toBe('migrated');
    expect(back.tried).toEqual(['auto-converge (guest CPUs throttled)', 'postcopy']);
    expect(alive(to)).toBe(false);
    const lastThere = ticksOn(to).at(-1)!;
    await waitForTicks(from, ticksOn(from).length + 1);
    expect(ticksOn(from)).toContain(lastThere + 1);
  }, 180_000);

  it('measures the running guest’s dirty rate through QMP, page sampling only (QEMU under TCG), and the guest runs on', async () => {
    const where = (await loadCluster(tb.clusterPath)).instances[0]!.primary;
    const seen = recording();
    const backend = await sshEffects(tb.clusterPath, { shellFor: recordingShell(seen) });
    try {
      const rate = await backend.effects.measureDirtyRate(
        { instance: 'web1', node: where, timeoutMs: 20_000, calcSeconds: 1, samplePages: 512 },
        new AbortController().signal,
      );
      expect(rate).toMatchObject({ calcSeconds: 1, mode: 'page-sampling' });
      expect(rate.dirtyMiBps).toBeGreaterThanOrEqual(0);
      console.log(`the busy ticker dirties ${rate.dirtyMiBps} MiB/s as QEMU measured it`);
    } finally {
      backend.close();
    }
    const asked = seen.qmp
      .filter((q) => q.execute === 'calc-dirty-rate')
      .map(({ node, execute, arguments: args }) => ({ node, execute, arguments: args }));
    expect(asked).toEqual([
      {
        node: where,
        execute: 'calc-dirty-rate',
        arguments: { 'calc-time': 1, 'sample-pages': 512, mode: 'page-sampling' },
      },
    ]);
    expect(seen.qmp.filter((q) => q.execute === 'query-dirty-rate').length).toBeGreaterThanOrEqual(1);
    expect(alive(where)).toBe(true);
    await waitForTicks(where, ticksOn(where).length + 1);
  }, 60_000);
});
