import { rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskStatus } from '../machines/index.js';
import { SSH_GRACE_MS, sshEffects } from '../src/backend/ssh.js';
import { dryRun, inputWithLimits } from '../src/cli/cluster.js';
import { type ClusterFile, loadCluster } from '../src/cluster/index.js';
import { drbdDrivers } from '../src/drivers/drbd.js';
import { twoPrimariesAllowed } from '../src/drivers/drbd9.js';
import type { DrbdLink } from '../src/drivers/drbd84.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { type EffectCall, type RunEvent, runCleanup, runEvacuation, runMigration } from '../src/index.js';
import { SshNode } from '../src/ssh/index.js';
import { cli } from './processes.js';
import { ticks, ticksAcross } from './testbed/common.js';
import {
  addSecondInstance,
  DISK_NODE_IDS,
  type DrbdKernel,
  type DrbdTestbed,
  drbdTestbedUnavailable,
  NODE_IDS,
  RESOURCE,
  SECOND_RESOURCE,
  startDrbdTestbed,
} from './testbed/drbd.js';
import { planAgainstRun, type Recorded, recording, recordingShell } from './testbed/record.js';
import { tempDir } from './tmp.js';

/**
 * Tier B: the migration and cleanup machines through sshEffects against two VMs running Debian's
 * kernel with DRBD (its in-tree 8.4.11, or DRBD 9 built from LINBIT's source): a real dual-primary
 * window, a real resync, a real QEMU live migration (inside the node VMs) of a guest whose disk is
 * /dev/drbd0. One suite, run by one test file per DRBD version; every test's name starts with it.
 */
const NODES = ['node-a', 'node-b'] as const;
type Node = (typeof NODES)[number];

export function drbdVmSuite(kernel: DrbdKernel) {
  const unavailable = drbdTestbedUnavailable(kernel);
  if (unavailable !== null && process.env.CI === 'true') {
    throw new Error(`CI=true but the DRBD ${kernel} VM testbed cannot start: ${unavailable}`);
  }
  if (unavailable !== null) console.warn(`SKIPPED the DRBD ${kernel} VM tests: ${unavailable}`);
  const driver = drbdDrivers[kernel];
  const drbdsetup = kernel === '8.4' ? '/lib/drbd/drbdsetup-84' : 'drbdsetup';
  const version = kernel === '8.4' ? 'in-tree 8.4.11' : '9 built from source';
  /** A test's name, led by the DRBD it ran on (the CI log lists names without their suite's). */
  const named = (name: string) => `DRBD ${kernel}: ${name}`;

  describe.skipIf(unavailable !== null)(
    `DRBD ${kernel}: VM testbed (Debian's kernel, DRBD ${version}, QEMU inside the nodes)`,
    () => {
      let tb: DrbdTestbed;
      let dir: string;

      const sh = (node: Node, script: string, okCodes = [0]) => tb.exec(node, ['sh', '-c', script], okCodes);
      /** The kernel's own view of web1's disk on NODE, read and parsed as the backend does. */
      const drbd = async (node: Node): Promise<DiskStatus> => {
        const l = linkOf(node);
        const outputs = await Promise.all(driver.statusReads(l).map((argv) => tb.exec(node, argv)));
        return driver.parseStatus(
          outputs.map((o) => o.stdout),
          l,
        );
      };
      const serial = async (node: Node, instance = 'web1') =>
        (await sh(node, `cat /run/drbd-migrate/${instance}.serial 2>/dev/null`, [0, 1])).stdout;
      /** Waits on the node itself, bounded, until the guest printed tick N there. */
      const waitForTick = (node: Node, n: number, instance = 'web1') =>
        sh(
          node,
          `timeout 60 sh -c 'until grep -q "disk-tick ${n.toString(16).padStart(4, '0')}" /run/drbd-migrate/${instance}.serial 2>/dev/null; do sleep 0.1; done'`,
        );
      const qemuRuns = async (node: Node) =>
        // busybox's `kill -0 ""` succeeds: a missing pidfile must not count as a running QEMU.
        (
          await sh(
            node,
            'pid=$(cat /run/drbd-migrate/web1.pid 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid"',
            [0, 1],
          )
        ).code === 0;
      const setOptions = async (options: ClusterFile['options']) => {
        const cluster = await loadCluster(tb.clusterPath);
        writeFileSync(tb.clusterPath, JSON.stringify({ ...cluster, options }, null, 2));
      };

      /** Runs the CLI on the cluster, SIGKILLed by itself at journal transition N; its last state. */
      async function killedAt(n: number) {
        const stateDir = tempDir('drbd-migrate-state-');
        const common = ['--cluster', tb.clusterPath, '--state-dir', stateDir, '--json'];
        const killed = await cli(['migrate', 'web1', ...common, '--kill-at', String(n)]);
        expect(killed.signal).toBe('SIGKILL');
        const states = killed.stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { type: string; value?: string })
          .filter((e) => e.type === 'state');
        return { common, stateDir, lastState: states.at(-1)?.value };
      }

      async function run(
        machine: typeof runMigration,
        extra: {
          mode?: 'live' | 'non-live';
          abort?: AbortSignal;
          onEvent?: (e: RunEvent) => void;
          seen?: Recorded;
        } = {},
      ) {
        const seen = extra.seen;
        const backend = await sshEffects(tb.clusterPath, seen ? { shellFor: recordingShell(seen) } : {});
        // The cluster file's limits and copy options, as the CLI reads them.
        const input = inputWithLimits(await loadCluster(tb.clusterPath), {
          instance: 'web1',
          ...(extra.mode ? { mode: extra.mode } : {}),
        });
        try {
          return await machine(input, backend.effects, {
            // As the CLI runs on a cluster file: SSH's round trip on a loaded node counts beyond a deadline.
            graceMs: SSH_GRACE_MS,
            ...(extra.abort ? { abort: extra.abort } : {}),
            ...(extra.onEvent ? { onEvent: extra.onEvent } : {}),
            ...(seen
              ? {
                  onCall: (c: EffectCall) => {
                    if (c.phase === 'start') seen.effect = c.effect;
                  },
                }
              : {}),
          });
        } finally {
          backend.close();
        }
      }

      /**
       * Until both sides report the resync done. drbdsetup's own wait-sync can return between the
       * handshake and the resync's start (seen in CI: SyncSource at 0% right after it); the backend's
       * waitSync counts that window as a resync, so it is asked again until both are done, bounded.
       */
      async function untilInSync() {
        const backend = await sshEffects(tb.clusterPath);
        try {
          for (let round = 0; round < 12; round++) {
            const answer = await backend.effects.waitSync(
              {
                instance: 'web1',
                nodes: [...NODES],
                disks: [{ index: 0, resource: 'web1-disk0', minor: 0 }],
                timeoutMs: 10_000,
              },
              new AbortController().signal,
            );
            if (Object.values(answer.nodes).every((n) => n.done)) return;
          }
          throw new Error('web1-disk0: the resync did not finish within 12 waits of 10 s');
        } finally {
          backend.close();
        }
      }

      /** Single-master at rest: PRIMARY is the one Primary, in sync, and the kernel refuses a second. */
      async function expectSingleMaster(primary: Node) {
        const other = primary === 'node-a' ? 'node-b' : 'node-a';
        for (const node of NODES) {
          expect(await drbd(node)).toMatchObject({
            role: node === primary ? 'Primary' : 'Secondary',
            connection: 'Connected',
            replication: 'Established',
            diskState: 'UpToDate',
            peerDiskState: 'UpToDate',
            allowTwoPrimaries: false,
            syncPercent: null,
            outOfSyncKiB: 0,
          });
        }
        const promote = await tb.exec(other, driver.primary(linkOf(other)), [11]);
        expect(promote.stderr).toMatch(/Multiple primaries not allowed by config/);
      }

      beforeAll(async () => {
        dir = tempDir('drbd-migrate-vms-');
        tb = await startDrbdTestbed(dir, kernel);
        const source = new QemuNode(new SshNode(tb.cluster.nodes[0]!), tb.cluster.instances[0]!.hypervisor);
        await source.start(false, 60_000);
        source.shell.close();
        await waitForTick('node-a', 2);
      }, 240_000);

      afterAll(() => {
        tb?.stop();
        if (dir) rmSync(dir, { recursive: true, force: true });
      });

      it(
        named('starts single-master with node-a primary; check reads both nodes and finds web1 ready'),
        async () => {
          expect(await drbd('node-a')).toMatchObject({ role: 'Primary', connection: 'Connected' });
          expect(await drbd('node-b')).toMatchObject({ role: 'Secondary', diskState: 'UpToDate' });
          const ready = await cli(['check', 'web1', '--cluster', tb.clusterPath]);
          expect(ready.stderr).toBe('');
          expect(ready.code).toBe(0);
          expect(ready.stdout).toContain(
            'ok: a migration of web1 from node-a to node-b passes its checks now',
          );
          expect(ready.stdout).toContain(
            kernel === '9'
              ? "ok: were node-a to go silent, node-b's quorum would prove it cannot write"
              : "ok: were node-a to go silent, a failover would need the operator's --source-is-down",
          );
        },
      );

      it(
        named(
          'refuses a cluster file that names the other DRBD (its module read from the kernel); nothing touched',
        ),
        async () => {
          const cluster = await loadCluster(tb.clusterPath);
          const other = kernel === '8.4' ? '9' : '8.4';
          writeFileSync(
            tb.clusterPath,
            JSON.stringify({
              ...cluster,
              nodes: cluster.nodes.map((n) => ({ ...n, drbd: other })),
              instances: cluster.instances.map((i) => ({
                ...i,
                disks: i.disks.map((d) => ({ ...d, nodeIds: DISK_NODE_IDS })),
                // A self-fence bound and a tiebreaker are DRBD 9's (quorum): not named with 8.4 nodes.
                selfFenceMs: other === '9' ? i.selfFenceMs : undefined,
                tiebreaker: other === '9' ? i.tiebreaker : undefined,
              })),
            }),
          );
          try {
            const out = await run(runMigration);
            expect(out.outcome).toBe('rejected');
            expect(out.error).toMatch(
              new RegExp(
                `node-[ab]: its kernel runs DRBD ${kernel === '8.4' ? '8\\.4\\.\\d+' : '9\\.\\d+\\.\\d+'} but the cluster file says drbd: ${other}`,
              ),
            );
          } finally {
            writeFileSync(tb.clusterPath, JSON.stringify(cluster, null, 2));
          }
          expect(await qemuRuns('node-b')).toBe(false);
          await expectSingleMaster('node-a');
        },
      );

      // DRBD 9 only (its quorum-lost handler; 8.4 has no quorum): not registered for 8.4.
      if (kernel === '9')
        it(named(
          'refuses a migration onto node-b while it would not stop web1 on losing quorum (its usermode helper /bin/true, then a resource file without the handler); nothing touched; with node-a’s own helper /bin/true, check says a failover away from it could not rest on quorum',
        ), async () => {
          const helper = '/sys/module/drbd/parameters/usermode_helper';
          const was = (await sh('node-b', `cat ${helper}`)).stdout.trim();
          expect(was).toMatch(/drbdadm$/);
          const refused = async () => {
            const out = await run(runMigration);
            expect(out.outcome).toBe('rejected');
            expect(out.error).toMatch(
              /^node-b would not stop web1 on losing DRBD quorum: no quorum-lost handler runs there for web1-disk0 .* \(nothing was touched\)$/,
            );
            expect(await qemuRuns('node-b')).toBe(false);
            await expectSingleMaster('node-a');
          };
          // Ganeti's helper: DRBD would run no handler at all.
          await sh('node-b', `echo /bin/true >${helper}`);
          try {
            await refused();
          } finally {
            await sh('node-b', `echo ${was} >${helper}`);
          }
          // On the primary, no run reads it before a failover away from it relies on it: check does.
          const primaryWas = (await sh('node-a', `cat ${helper}`)).stdout.trim();
          await sh('node-a', `echo /bin/true >${helper}`);
          try {
            const found = await cli(['check', 'web1', '--cluster', tb.clusterPath]);
            expect(found.code).toBe(1);
            expect(found.stdout).toContain(
              'ok: a migration of web1 from node-a to node-b passes its checks now',
            );
            expect(found.stdout).toMatch(
              /^failover: node-a would not stop web1 on losing DRBD quorum: no quorum-lost handler runs there for web1-disk0/m,
            );
          } finally {
            await sh('node-a', `echo ${primaryWas} >${helper}`);
          }
          // drbdadm, but node-b's file names no handler for the resource.
          await sh(
            'node-b',
            'cp /etc/drbd.conf /run/drbd.conf.kept && sed -i "/quorum-lost/d" /etc/drbd.conf',
          );
          try {
            await refused();
          } finally {
            await sh('node-b', 'cp /run/drbd.conf.kept /etc/drbd.conf');
          }
          // As it was: the kernel and drbdadm there would stop web1 (the next test migrates).
          expect(await drbd('node-b')).toMatchObject({ quorumLostHandler: true });
        }, 120_000);

      it(named(
        'live-migrates to node-b through a real dual-primary window; the guest counts on and writes there, replicated to node-a',
      ), async () => {
        const sync: number[] = [];
        const states: string[] = [];
        const out = await run(runMigration, {
          onEvent: (e) => {
            if (e.type === 'state') states.push(e.value);
            if (e.type === 'progress' && e.kind === 'sync') sync.push(e.percent);
          },
        });
        expect(out.error ?? null).toBeNull();
        expect(out.outcome).toBe('migrated');
        expect(states).toContain('dualMaster.openingTarget');
        // It waited for the resyncs of what the guest wrote while StandAlone, to their end. (How far
        // along the first read finds one depends on timing; the parser tests cover the states.)
        expect(sync.length).toBeGreaterThan(0);
        expect(sync.at(-1)).toBe(100);
        expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({ primary: 'node-b' });
        expect(await qemuRuns('node-a')).toBe(false);
        const left = await serial('node-a');
        const last = ticks(left).at(-1)!;
        await waitForTick('node-b', last + 2);
        expect(ticksAcross(left, await serial('node-b')).after.slice(0, 2)).toEqual([last + 1, last + 2]);
        await expectSingleMaster('node-b');
        // node-b's guest wrote its first tick to /dev/drbd0; DRBD put it on node-a's backing disk.
        const sector = await sh(
          'node-a',
          `dd if=/dev/vda bs=512 skip=${8 + last + 1} count=1 iflag=direct status=none`,
        );
        expect(sector.stdout.startsWith(`disk-tick ${(last + 1).toString(16).padStart(4, '0')}`)).toBe(true);
      }, 180_000);

      it(named('migrates back non-live'), async () => {
        const out = await run(runMigration, { mode: 'non-live' });
        expect(out.outcome).toBe('migrated');
        const left = await serial('node-b');
        const last = ticks(left).at(-1)!;
        await waitForTick('node-a', last + 2);
        expect(ticksAcross(left, await serial('node-a')).after.slice(0, 2)).toEqual([last + 1, last + 2]);
        await expectSingleMaster('node-a');
      }, 180_000);

      it(named(
        'an operator abort during a throttled copy reverts: node-a runs on as the only primary',
      ), async () => {
        // The prediction off: a tiny guest's measurement reads 0 or a few MiB/s by chance.
        await setOptions({
          bandwidthMiBps: 0.01,
          limits: { stepTimeoutMs: 60_000 },
          convergence: { predict: false },
        });
        const abort = new AbortController();
        // DRBD 9: inside the window (the copy is throttled, so it stays open), the tiebreaker's own
        // view: both peers Primary, and two primaries allowed on node-a's connection to node-b only.
        let window: Promise<{ third: string; thirdShow: string; sourceShow: string }> | undefined;
        try {
          const out = await run(runMigration, {
            abort: abort.signal,
            onEvent: (e) => {
              if (e.type !== 'progress' || e.kind !== 'memory' || window !== undefined) return;
              if (!tb.nodes.includes('node-c')) return abort.abort();
              window = Promise.all([
                tb.exec('node-c', ['drbdsetup', 'status', RESOURCE, '--json']),
                tb.exec('node-c', ['drbdsetup', 'show', RESOURCE]),
                tb.exec('node-a', ['drbdsetup', 'show', RESOURCE]),
              ])
                .then(([third, thirdShow, sourceShow]) => ({
                  third: third.stdout,
                  thirdShow: thirdShow.stdout,
                  sourceShow: sourceShow.stdout,
                }))
                .finally(() => abort.abort());
            },
          });
          expect(out.outcome).toBe('reverted');
        } finally {
          await setOptions({ limits: { stepTimeoutMs: 60_000 } });
        }
        if (tb.nodes.includes('node-c')) {
          const seen = await window!;
          const [resource] = JSON.parse(seen.third) as {
            connections: { 'peer-node-id': number; 'peer-role': string }[];
          }[];
          expect(resource!.connections.map((c) => [c['peer-node-id'], c['peer-role']]).sort()).toEqual([
            [NODE_IDS['node-a'], 'Primary'],
            [NODE_IDS['node-b'], 'Primary'],
          ]);
          expect(twoPrimariesAllowed(seen.thirdShow, NODE_IDS['node-a'])).toBe(false);
          expect(twoPrimariesAllowed(seen.thirdShow, NODE_IDS['node-b'])).toBe(false);
          expect(twoPrimariesAllowed(seen.sourceShow, NODE_IDS['node-b'])).toBe(true);
          expect(twoPrimariesAllowed(seen.sourceShow, NODE_IDS['node-c'])).toBe(false);
        }
        expect(await qemuRuns('node-b')).toBe(false);
        const last = ticks(await serial('node-a')).at(-1)!;
        await waitForTick('node-a', last + 1);
        expect((await loadCluster(tb.clusterPath)).instances[0]?.primary).toBe('node-a');
        await expectSingleMaster('node-a');
      }, 180_000);

      it(named(
        'cleanup repairs what a crashed run left: both nodes Primary with two primaries allowed',
      ), async () => {
        // As a run that died inside the dual-master window leaves it.
        for (const node of NODES) {
          await tb.exec(node, driver.disconnect(linkOf(node)), [0, ...driver.alreadyStandAlone]);
        }
        for (const node of NODES) {
          for (const argv of driver.connect(linkOf(node), true)) await tb.exec(node, argv);
        }
        for (const node of NODES) await tb.exec(node, driver.waitConnect(linkOf(node), 60));
        await untilInSync();
        await tb.exec('node-b', driver.primary(linkOf('node-b')));
        expect(await drbd('node-b')).toMatchObject({
          role: 'Primary',
          peerRole: 'Primary',
          allowTwoPrimaries: true,
        });

        const out = await run(runCleanup);
        expect(out.error ?? null).toBeNull();
        expect(out.outcome).toBe('cleaned');
        await expectSingleMaster('node-a');
        const last = ticks(await serial('node-a')).at(-1)!;
        await waitForTick('node-a', last + 1);
      }, 180_000);

      it(named('--dry-run plans exactly the DRBD and QEMU commands a real run sends'), async () => {
        const lines: string[] = [];
        const limits = (await loadCluster(tb.clusterPath)).options.limits ?? {};
        const planned = await dryRun(tb.clusterPath, 'migration', { instance: 'web1', limits }, (l) =>
          lines.push(l),
        );
        const seen = recording();
        const out = await run(runMigration, { seen });
        expect(planned.outcome).toBe('migrated');
        expect(out.outcome).toBe('migrated');
        const { plan, real } = planAgainstRun(lines, seen);
        expect(plan.sh).toEqual(real.sh);
        expect(plan.qmp).toEqual(real.qmp);
        expect(real.sh.some((l) => l.includes('--allow-two-primaries=yes'))).toBe(true);
        await expectSingleMaster('node-b');
      }, 180_000);

      it(named(
        'a CLI killed inside the dual-master window is resumed from its journal: migrated, single-master',
      ), async () => {
        // The 13th transition is dualMaster.openingSource (a simulated run lists them: migrate --json).
        const { common, stateDir, lastState } = await killedAt(13);
        expect(lastState).toMatch(/^dualMaster\.opening/);
        // Left as the dead run left it: two primaries allowed, node-b (the source) Primary.
        expect(await drbd('node-b')).toMatchObject({ role: 'Primary', allowTwoPrimaries: true });
        // A new run refuses to start over it.
        const again = await cli(['migrate', 'web1', ...common]);
        expect(again.code).toBe(2);
        expect(again.stderr).toMatch(
          /unfinished migration of web1 .* run 'drbd-migrate resume web1 --cluster/,
        );

        const resumed = await cli(['resume', 'web1', ...common]);
        expect(resumed.stderr).toBe('');
        expect(resumed.code).toBe(0);
        expect(JSON.parse(resumed.stdout.trim().split('\n').at(-1)!)).toMatchObject({
          type: 'result',
          outcome: 'migrated',
          primaryNode: 'node-a',
        });
        await expectSingleMaster('node-a');
        const last = ticks(await serial('node-a')).at(-1)!;
        await waitForTick('node-a', last + 1);
        rmSync(stateDir, { recursive: true, force: true });
      }, 180_000);

      it(named(
        'a CLI killed inside the handover is resumed as a cleanup: the instance runs on one node, single-master',
      ), async () => {
        // The 16th: migrating.settingParameters, inside the handover.
        const { common, stateDir, lastState } = await killedAt(16);
        expect(lastState).toMatch(/^migrating\./);
        const resumed = await cli(['resume', 'web1', ...common]);
        // Continuing blind inside the handover is unsafe: the resume looks where the instance runs
        // (the source, and an incoming QEMU on the target) and cleans up.
        expect(resumed.stdout).toContain('Not resuming blind');
        expect(resumed.code).toBe(0);
        const result = JSON.parse(resumed.stdout.trim().split('\n').at(-1)!) as {
          outcome: string;
          primaryNode: Node;
        };
        expect(result.outcome).toBe('cleaned');
        const runsOn = (await qemuRuns('node-a')) ? 'node-a' : 'node-b';
        expect([await qemuRuns('node-a'), await qemuRuns('node-b')].filter(Boolean)).toHaveLength(1);
        expect(result.primaryNode).toBe(runsOn);
        await expectSingleMaster(runsOn);
        rmSync(stateDir, { recursive: true, force: true });
      }, 180_000);

      it(named(
        'attachNet configures again a side whose peer refused the handshake (mismatched two-primaries)',
      ), async () => {
        // node-b's first connect is sent with two primaries allowed, node-a's without: DRBD refuses
        // the connection ("incompatible allow-two-primaries settings") and drops to StandAlone.
        const seen = recording();
        let spoiled = false;
        const shellFor = (n: ClusterFile['nodes'][number]) => {
          const shell = recordingShell(seen)(n);
          return {
            ...shell,
            exec: (argv: readonly string[], o: Parameters<typeof shell.exec>[1]) => {
              // 8.4 sets a connection's options with its connect, 9 with net-options just before it.
              const first =
                n.name === 'node-b' && argv[1] === (kernel === '8.4' ? 'connect' : 'net-options') && !spoiled;
              if (first) spoiled = true;
              const spoilt = [
                ...argv.filter((a) => !a.startsWith('--allow-two-primaries')),
                '--allow-two-primaries=yes',
              ];
              return shell.exec(first ? spoilt : argv, o);
            },
          };
        };
        const backend = await sshEffects(tb.clusterPath, { shellFor });
        const input = {
          instance: 'web1',
          nodes: ['node-a', 'node-b'] as [string, string],
          disks: [{ index: 0, resource: 'web1-disk0', minor: 0 }],
          timeoutMs: 60_000,
        };
        try {
          await backend.effects.disconnectNet(input, new AbortController().signal);
          await backend.effects.attachNet({ ...input, multimaster: false }, new AbortController().signal);
        } finally {
          backend.close();
        }
        const connects = seen.sh.filter((l) => / connect web1-disk0 /.test(l));
        expect(connects.length).toBeGreaterThan(2);
        await untilInSync();
        await expectSingleMaster('node-a');
      }, 180_000);

      // Issue 11: the guest runs on node-a (as the test before leaves it); node-a is alive.
      it(named(
        'refuses a failover with --source-is-down while node-a answers and runs the guest; nothing touched',
      ), async () => {
        expect(await qemuRuns('node-a')).toBe(true);
        const stateDir = tempDir('drbd-migrate-state-');
        const before = await loadCluster(tb.clusterPath);
        const r = await cli([
          'failover',
          'web1',
          '--cluster',
          tb.clusterPath,
          '--state-dir',
          stateDir,
          '--source-is-down',
        ]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/node-a is said to be down, but it answers and web1 is running there/);
        expect(await loadCluster(tb.clusterPath)).toEqual(before);
        expect(await qemuRuns('node-a')).toBe(true);
        expect(await qemuRuns('node-b')).toBe(false);
        await expectSingleMaster('node-a');
      }, 120_000);

      it(named(
        'node-a loses power → failover to node-b → node-a boots → rejoin → live migration back',
      ), async () => {
        const stateDir = tempDir('drbd-migrate-state-');
        const common = ['--cluster', tb.clusterPath, '--state-dir', stateDir];
        const beforeCrash = ticks(await serial('node-a')).at(-1)!;
        tb.powerOff('node-a');
        // node-b's DRBD notices its peer is gone (DRBD's own ping timeout); bounded, on the node itself.
        await sh(
          'node-b',
          `timeout 90 sh -c 'until ${drbdsetup} events2 --now web1-disk0 | grep -q -E "connection:(Connecting|StandAlone)"; do sleep 0.2; done'`,
        );
        const over = await cli(['failover', 'web1', ...common, '--source-is-down']);
        expect(over.stderr).toBe('');
        expect(over.code).toBe(0);
        expect(over.stdout).toContain('outcome: failedOver');
        expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
          primary: 'node-b',
          secondary: 'node-a',
        });
        // The guest boots on node-b from its DRBD disk and counts on from the last tick that reached it.
        const first = ticks(
          await (async () => {
            await waitForTick('node-b', beforeCrash + 2);
            return serial('node-b');
          })(),
        )[0]!;
        expect(first).toBeGreaterThan(beforeCrash);
        const kept = await sh(
          'node-b',
          `dd if=/dev/drbd0 bs=512 skip=${8 + first - 1} count=1 status=none | head -c 14`,
        );
        expect(kept.stdout).toBe(`disk-tick ${(first - 1).toString(16).padStart(4, '0')}`);
        expect(await drbd('node-b')).toMatchObject({
          role: 'Primary',
          diskState: 'UpToDate',
          peerDiskState: 'DUnknown',
        });

        // node-a comes back; its boot brings the DRBD resource up, as a node's init would.
        await tb.powerOn('node-a');
        await sh('node-a', 'drbdadm up web1-disk0');
        expect(await qemuRuns('node-a')).toBe(false);
        const back = await cli(['rejoin', 'node-a', ...common]);
        expect(back.stderr).toBe('');
        expect(back.code).toBe(0);
        expect(back.stdout).toContain('outcome: rejoined');
        // The kernel's own word: node-b Primary, node-a Secondary, Connected, UpToDate/UpToDate.
        await expectSingleMaster('node-b');

        const home = await cli(['migrate', 'web1', ...common]);
        expect(home.code).toBe(0);
        expect(home.stdout).toContain('outcome: migrated');
        const left = await serial('node-b');
        const last = ticks(left).at(-1)!;
        await waitForTick('node-a', last + 2);
        expect(ticksAcross(left, await serial('node-a')).after.slice(0, 2)).toEqual([last + 1, last + 2]);
        expect(await qemuRuns('node-b')).toBe(false);
        await expectSingleMaster('node-a');
      }, 300_000);

      // DRBD 9 only (8.4 has no quorum): not registered for 8.4 rather than skipped.
      if (kernel === '9')
        it(named(
          'node-a cut off from every network while its guest runs → failover without the operator’s word (node-b holds quorum) → node-a stops its guest itself → links back → rejoin (what node-a wrote alone, at most an in-flight tick, discarded) → migrate back',
        ), async () => {
          const stateDir = tempDir('drbd-migrate-state-');
          const common = ['--cluster', tb.clusterPath, '--state-dir', stateDir];
          expect(await qemuRuns('node-a')).toBe(true);
          await tb.setLinks('node-a', false, true);
          try {
            // node-b's DRBD notices it lost node-a (and keeps quorum with node-c); bounded, on node-b.
            await sh(
              'node-b',
              `timeout 90 sh -c 'until drbdsetup events2 --now web1-disk0 | grep -q "conn-name:node-a connection:Connecting"; do sleep 0.2; done'`,
            );
            expect(await drbd('node-b')).toMatchObject({
              quorum: 'held',
              mayPromote: true,
              diskState: 'UpToDate',
            });
            const over = await cli(['failover', 'web1', ...common]);
            expect(over.stderr).toBe('');
            expect(over.code).toBe(0);
            expect(over.stdout).toContain('node-b holds DRBD quorum without it: node-a cannot write');
            expect(over.stdout).toContain('outcome: failedOver');
            expect(await qemuRuns('node-b')).toBe(true);
          } finally {
            await tb.setLinks('node-a', true, true);
          }
          // node-a's own record: its handler stopped the guest and made the disk Secondary.
          expect(await qemuRuns('node-a')).toBe(false);
          expect((await sh('node-a', 'cat /run/drbd-migrate/quorum-lost.log')).stdout).toMatch(
            /quorum-lost web1-disk0: web1 stopped, secondary rc=0/,
          );
          expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
            primary: 'node-b',
            secondary: 'node-a',
          });
          const back = await cli(['rejoin', 'node-a', ...common]);
          expect(back.stderr).toBe('');
          expect(back.code).toBe(0);
          // What node-a wrote alone is at most what it wrote between losing node-b and losing the
          // tiebreaker (one link drops before the other: seen here as one 4 KiB tick, written while
          // node-a still held quorum with node-c); it is discarded, and said, never kept.
          const alone = /node-a wrote (\d+(?:\.\d+)?) (KiB|MiB) while apart/.exec(back.stdout);
          if (alone !== null) {
            expect(Number(alone[1]) * (alone[2] === 'MiB' ? 1024 : 1)).toBeLessThanOrEqual(64);
            expect(back.stdout).toContain("node-a's writes are discarded, the survivor's data is kept");
          }
          expect(back.stdout).toContain('outcome: rejoined');
          await expectSingleMaster('node-b');
          const home = await cli(['migrate', 'web1', ...common]);
          expect(home.code).toBe(0);
          await expectSingleMaster('node-a');
        }, 300_000);

      // DRBD 9 only: quorum is DRBD 9's.
      if (kernel === '9')
        it(named(
          'the tiebreaker down too, node-a cut off: two votes of three gone on both sides, both freeze; the failover refuses, with --source-is-down too, naming node-c to bring back; node-c back, node-a primary again',
        ), async () => {
          const stateDir = tempDir('drbd-migrate-state-');
          const common = ['--cluster', tb.clusterPath, '--state-dir', stateDir];
          const handled = (await sh('node-a', 'cat /run/drbd-migrate/quorum-lost.log 2>/dev/null', [0, 1]))
            .stdout;
          tb.powerOff('node-c');
          await tb.setLinks('node-a', false, true);
          try {
            // node-b's DRBD notices it lost node-a; without node-c it has one vote of three.
            await sh(
              'node-b',
              `timeout 90 sh -c 'until drbdsetup events2 --now web1-disk0 | grep -q "conn-name:node-a connection:Connecting"; do sleep 0.2; done'`,
            );
            expect(await drbd('node-b')).toMatchObject({ quorum: 'lost', mayPromote: false });
            const over = await cli(['failover', 'web1', ...common]);
            expect(over.code).toBe(2);
            expect(over.stderr).toContain(
              'node-a does not answer, and node-b has lost DRBD quorum too on web1-disk0 (no majority on either side): DRBD will not promote node-b; bring node-a or node-c (the tiebreaker) back',
            );
            const claimed = await cli(['failover', 'web1', '--source-is-down', ...common]);
            expect(claimed.code).toBe(2);
            expect(claimed.stderr).toContain(
              'node-b has no DRBD quorum on web1-disk0, so DRBD will not promote it; bring node-a or node-c (the tiebreaker) back, or, if node-a is down for good, turn quorum off there first',
            );
            expect(await qemuRuns('node-b')).toBe(false);
            expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({ primary: 'node-a' });
          } finally {
            await tb.setLinks('node-a', true, true);
            rmSync(stateDir, { recursive: true, force: true });
          }
          // node-a lost quorum as well: its handler stopped the guest and demoted (it could not write).
          expect(await qemuRuns('node-a')).toBe(false);
          expect(
            (await sh('node-a', 'cat /run/drbd-migrate/quorum-lost.log')).stdout.slice(handled.length),
          ).toMatch(/quorum-lost web1-disk0: web1 stopped, secondary rc=0/);
          // The operator brings node-c back, then node-a up again as the primary.
          await tb.powerOn('node-c');
          await tb.exec('node-c', ['drbdadm', 'up', 'web1-disk0']);
          await sh(
            'node-a',
            `timeout 90 sh -c 'until drbdsetup events2 --now web1-disk0 | grep -q "conn-name:node-b volume:0 replication:Established peer-disk:UpToDate" && drbdsetup events2 --now web1-disk0 | grep -q "conn-name:node-c connection:Connected"; do sleep 0.2; done'`,
          );
          expect(await drbd('node-a')).toMatchObject({ quorum: 'held', diskState: 'UpToDate' });
          await sh('node-a', 'drbdsetup primary web1-disk0');
          // The guest goes on from the count its disk holds (sector 7): the one after the last tick
          // printed, or that tick again, or the one before (printed while the writes failed, before
          // the handler killed it); never further than it counted.
          const printed = ticks(await serial('node-a')).at(-1)!;
          const guest = new QemuNode(new SshNode(tb.cluster.nodes[0]!), tb.cluster.instances[0]!.hypervisor);
          await guest.start(false, 60_000);
          guest.shell.close();
          await sh(
            'node-a',
            `timeout 60 sh -c 'until [ "$(grep -c disk-tick /run/drbd-migrate/web1.serial)" -ge 2 ]; do sleep 0.1; done'`,
          );
          const [first, second] = ticks(await serial('node-a'));
          expect(first).toBeGreaterThanOrEqual(printed - 1);
          expect(first).toBeLessThanOrEqual(printed + 1);
          expect(second).toBe(first! + 1);
          await expectSingleMaster('node-a');
        }, 300_000);

      it(named(
        'evacuates node-a: two instances on two DRBD resources, both copies at once, each guest counting on node-b',
      ), async () => {
        // The second instance, set up as an operator would: its resource up and in sync, node-a primary.
        await addSecondInstance(tb);
        await waitForTick('node-a', 2, 'web2');

        const lastBefore = {
          web1: ticks(await serial('node-a')).at(-1)!,
          web2: ticks(await serial('node-a', 'web2')).at(-1)!,
        };
        const backend = await sshEffects(tb.clusterPath);
        let running = 0;
        let most = 0;
        try {
          const { limits } = inputWithLimits(await loadCluster(tb.clusterPath), { instance: 'web1' });
          const out = await runEvacuation(
            { node: 'node-a', concurrency: 2, perNode: 2, ...(limits ? { limits } : {}) },
            backend.effects,
            {
              graceMs: SSH_GRACE_MS,
              onRun: (n) => {
                running += n.phase === 'start' ? 1 : -1;
                most = Math.max(most, running);
              },
            },
          );
          expect(out.results.map((r) => [r.instance, r.outcome, r.primaryNode, r.error ?? null])).toEqual([
            ['web1', 'migrated', 'node-b', null],
            ['web2', 'migrated', 'node-b', null],
          ]);
          expect(out.outcome).toBe('evacuated');
        } finally {
          backend.close();
        }
        expect(most).toBe(2);
        // Each guest goes on counting on node-b from where it stopped on node-a: the same guest.
        for (const name of ['web1', 'web2'] as const) {
          const left = await serial('node-a', name);
          const last = ticks(left).at(-1)!;
          expect(last).toBeGreaterThanOrEqual(lastBefore[name]);
          await waitForTick('node-b', last + 2, name);
          expect(ticksAcross(left, await serial('node-b', name)).after.slice(0, 2)).toEqual([
            last + 1,
            last + 2,
          ]);
        }
        await expectSingleMaster('node-b');
        for (const node of NODES) {
          const events = await sh(node, `${drbdsetup} events2 --now ${SECOND_RESOURCE}`);
          expect(events.stdout).toMatch(node === 'node-b' ? /role:Primary/ : /role:Secondary/);
          expect(events.stdout).toMatch(/peer-disk:UpToDate/);
        }
      }, 300_000);
    },
  );
}

/** One side of a resource's link as the backend builds it (DRBD 9 names the peer by its node-id). */
function linkOf(node: Node, resource = 'web1-disk0', minor = 0, port = 7789): DrbdLink {
  const address = { 'node-a': '10.99.1.1', 'node-b': '10.99.1.2' };
  const peer = node === 'node-a' ? 'node-b' : 'node-a';
  return {
    resource,
    minor,
    local: { address: address[node], port },
    peer: { address: address[peer], port },
    peerNodeId: NODE_IDS[peer],
  };
}
