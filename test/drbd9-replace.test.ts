import { rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskStatus } from '../machines/index.js';
import { SSH_GRACE_MS, sshEffects } from '../src/backend/ssh.js';
import { inputWithLimits } from '../src/cli/cluster.js';
import { loadCluster } from '../src/cluster/index.js';
import { drbdDrivers } from '../src/drivers/drbd.js';
import type { DrbdLink } from '../src/drivers/drbd84.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { runMigration } from '../src/index.js';
import { SshNode } from '../src/ssh/index.js';
import { cli } from './processes.js';
import { tickerHypervisor, ticks, ticksAcross } from './testbed/common.js';
import {
  type DrbdTestbed,
  drbdTestbedUnavailable,
  NODE_IDS,
  type NodeName,
  RESOURCE,
  SECOND_RESOURCE,
  startDrbdTestbed,
  VOLUME_GROUP,
} from './testbed/drbd.js';
import { tempDir } from './tmp.js';

/**
 * Issues 20 and 21 on real DRBD 9: three node VMs, every node's disk an LVM volume group, node-c a
 * spare holding no copy. replace-secondary adds node-c as a further peer of node-a while node-b stays
 * connected, commits once node-c is UpToDate, and only then removes node-b (make-before-break): a
 * `drbdsetup events2` stream on node-a, running through the whole replace, shows two UpToDate copies
 * at every event. Then the new copy carries a live migration, and `evacuate node-b --all` empties
 * node-b.
 */
const unavailable = drbdTestbedUnavailable('9');
if (unavailable !== null && process.env.CI === 'true') {
  throw new Error(`CI=true but the DRBD 9 VM testbed cannot start: ${unavailable}`);
}
if (unavailable !== null) console.warn(`SKIPPED the DRBD 9 replace tests: ${unavailable}`);

const driver = drbdDrivers['9'];
const EVENTS = '/run/drbd-migrate/events2';

/**
 * The UpToDate copies of one resource after each event of a `drbdsetup events2` stream on the
 * primary (from the end of its initial dump on): its own disk, and each peer's disk it sees while
 * connected to it.
 */
export function copiesOverEvents(stream: string, resource: string): { copies: number; line: string }[] {
  let local = 'DUnknown';
  const peers = new Map<string, { connection: string; disk: string }>();
  const out: { copies: number; line: string }[] = [];
  // The state is whole once the initial dump ends ("exists -"): counted from there on.
  let whole = false;
  for (const line of stream.split('\n')) {
    if (line === 'exists -') whole = true;
    if (!line.includes(`name:${resource} `) && !line.endsWith(`name:${resource}`)) continue;
    const field = (k: string) => new RegExp(`\\b${k}:(\\S+)`).exec(line)?.[1];
    const peer = field('peer-node-id');
    if (/^(exists|create|change) device /.test(line) && field('disk') !== undefined) local = field('disk')!;
    if (peer !== undefined) {
      const p = peers.get(peer) ?? { connection: 'StandAlone', disk: 'DUnknown' };
      if (/^destroy connection /.test(line)) peers.delete(peer);
      else {
        if (/^\w+ connection /.test(line) && field('connection') !== undefined)
          p.connection = field('connection')!;
        if (/^\w+ peer-device /.test(line) && field('peer-disk') !== undefined) p.disk = field('peer-disk')!;
        peers.set(peer, p);
      }
    }
    if (!whole || !/^(exists|create|change|destroy) /.test(line)) continue;
    const copies =
      (local === 'UpToDate' ? 1 : 0) +
      [...peers.values()].filter((p) => p.connection === 'Connected' && p.disk === 'UpToDate').length;
    out.push({ copies, line });
  }
  return out;
}

describe.skipIf(unavailable !== null)(
  'DRBD 9: a secondary replaced make-before-break onto a third VM node (LVM)',
  () => {
    let tb: DrbdTestbed;
    let dir: string;

    const sh = (node: NodeName, script: string, okCodes = [0]) =>
      tb.exec(node, ['sh', '-c', script], okCodes);
    const serial = async (node: NodeName) =>
      (await sh(node, 'cat /run/drbd-migrate/web1.serial 2>/dev/null', [0, 1])).stdout;
    const waitForTick = (node: NodeName, n: number) =>
      sh(
        node,
        `timeout 60 sh -c 'until grep -q "disk-tick ${n.toString(16).padStart(4, '0')}" /run/drbd-migrate/web1.serial 2>/dev/null; do sleep 0.1; done'`,
      );
    /** The kernel's own view of a disk on NODE towards PEER (by node-id), read and parsed as the backend does. */
    const drbd = async (node: NodeName, peer: NodeName, resource = RESOURCE, minor = 0, port = 7789) => {
      const address = (n: NodeName) => tb.cluster.nodes.find((x) => x.name === n)!.replicationAddress;
      const l: DrbdLink = {
        resource,
        minor,
        local: { address: address(node), port },
        peer: { address: address(peer), port },
        peerNodeId: NODE_IDS[peer],
      };
      const outputs = await Promise.all(driver.statusReads(l).map((argv) => tb.exec(node, argv)));
      return driver.parseStatus(
        outputs.map((o) => o.stdout),
        l,
      ) as DiskStatus;
    };
    const volumes = async (node: NodeName) =>
      (await sh(node, `lvs --noheadings -o lv_name ${VOLUME_GROUP}`)).stdout
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith(RESOURCE));
    const hasResource = async (node: NodeName, resource = RESOURCE) =>
      (await sh(node, `drbdsetup status ${resource} >/dev/null 2>&1`, [0, 10])).code === 0;

    beforeAll(async () => {
      dir = tempDir('drbd-migrate-vms-');
      tb = await startDrbdTestbed(dir, '9', { spare: true });
      const source = new QemuNode(new SshNode(tb.cluster.nodes[0]!), tb.cluster.instances[0]!.hypervisor);
      await source.start(false, 60_000);
      source.shell.close();
      await waitForTick('node-a', 2);
    }, 600_000);

    afterAll(() => {
      tb?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('DRBD 9: replace-secondary adds node-c beside node-b, commits once it is UpToDate, then removes node-b: two UpToDate copies at every event on node-a', async () => {
      // node-a's kernel reports every state change of web1's disk from here to the end.
      await sh('node-a', `drbdsetup events2 ${RESOURCE} >${EVENTS} 2>&1 </dev/null & echo $! >${EVENTS}.pid`);
      const stateDir = tempDir('drbd-migrate-state-');
      let r: Awaited<ReturnType<typeof cli>>;
      try {
        r = await cli([
          'replace-secondary',
          'web1',
          '--new-secondary',
          'node-c',
          '--cluster',
          tb.clusterPath,
          '--state-dir',
          stateDir,
          '--json',
        ]);
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
      await sh('node-a', `kill $(cat ${EVENTS}.pid)`);
      const stream = (await sh('node-a', `cat ${EVENTS}`)).stdout;
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const lines = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { type: string; message?: string; outcome?: string });
      expect(lines.find((l) => l.type === 'result')).toMatchObject({ outcome: 'replaced' });
      const said = lines.filter((l) => l.type === 'feedback').map((l) => l.message ?? '');
      expect(said.some((m) => /has one copy/.test(m))).toBe(false);
      expect(said).toContain(
        '* adding node-c as a peer of node-a beside node-b (DRBD 9: web1 keeps its two copies throughout)',
      );

      // The kernel's own account: node-c (node-id 2) joined, resynced, and only then node-b (1) left.
      const events = copiesOverEvents(stream, RESOURCE);
      expect(events.length).toBeGreaterThan(0);
      expect(events.filter((e) => e.copies < 2).map((e) => e.line)).toEqual([]);
      const joined = events.findIndex((e) => /peer-node-id:2 .*peer-disk:UpToDate/.test(e.line));
      const left = events.findIndex((e) => /destroy connection .*peer-node-id:1/.test(e.line));
      expect(joined).toBeGreaterThanOrEqual(0);
      expect(left).toBeGreaterThan(joined);
      // Kept as a record of what the kernel said (a failure shows it).
      writeFileSync(`${dir}/replace.events2`, stream);

      const config = await loadCluster(tb.clusterPath);
      expect(config.instances[0]).toMatchObject({ primary: 'node-a', secondary: 'node-c' });
      expect(config.instances[0]!.formerSecondary).toBeUndefined();
      // node-c's node-id is the file's now; node-b's is gone with it.
      expect(config.instances[0]!.disks[0]).toMatchObject({ nodeIds: { 'node-a': 0, 'node-c': 2 } });
      expect(config.instances[0]!.disks[0]).not.toHaveProperty(['nodeIds', 'node-b']);
      for (const [node, peer] of [
        ['node-a', 'node-c'],
        ['node-c', 'node-a'],
      ] as const)
        expect(await drbd(node, peer)).toMatchObject({
          connection: 'Connected',
          diskState: 'UpToDate',
          peerDiskState: 'UpToDate',
        });
      // node-a has no connection to node-b left, and node-b's bitmap slot is free for the next peer.
      const shown = (await sh('node-a', `drbdsetup show ${RESOURCE}`)).stdout;
      expect(shown).not.toMatch(/_peer_node_id 1;/);
      expect(shown).toMatch(/_peer_node_id 2;/);
      // The new copy is LVM volumes on node-c, resyncing at the cluster's fixed rate; node-b holds nothing.
      expect((await volumes('node-c')).sort()).toEqual([`${RESOURCE}_data`, `${RESOURCE}_meta`]);
      expect((await sh('node-c', `drbdsetup show ${RESOURCE}`)).stdout).toMatch(/resync-rate\s+102400k;/);
      expect(await hasResource('node-b')).toBe(false);
      expect(await volumes('node-b')).toEqual([]);
      // The guest never stopped.
      const before = ticks(await serial('node-a')).at(-1)!;
      await waitForTick('node-a', before + 2);
      const all = ticks(await serial('node-a'));
      const at = all.lastIndexOf(before);
      expect(all.slice(at, at + 3)).toEqual([before, before + 1, before + 2]);
    }, 300_000);

    it('DRBD 9: the new copy carries a live migration to node-c, the guest counting on', async () => {
      const backend = await sshEffects(tb.clusterPath);
      try {
        const input = inputWithLimits(await loadCluster(tb.clusterPath), { instance: 'web1' });
        const out = await runMigration(input, backend.effects, { graceMs: SSH_GRACE_MS });
        expect(out.error ?? null).toBeNull();
        expect(out).toMatchObject({ outcome: 'migrated', primaryNode: 'node-c' });
      } finally {
        backend.close();
      }
      const left = await serial('node-a');
      const { last } = ticksAcross(left, await serial('node-c'));
      await waitForTick('node-c', last + 2);
      const { after } = ticksAcross(left, await serial('node-c'));
      expect(after.slice(0, 2)).toEqual([last + 1, last + 2]);
      expect((await drbd('node-c', 'node-a')).role).toBe('Primary');
    }, 300_000);

    it('DRBD 9: evacuate node-b --all empties it: web2’s copy moves to node-c make-before-break, node-b drained, no device or volume left', async () => {
      await tb.up(SECOND_RESOURCE, 1);
      const cluster = await loadCluster(tb.clusterPath);
      const web2 = {
        ...cluster.instances[0]!,
        name: 'web2',
        primary: 'node-a',
        secondary: 'node-b',
        hypervisor: tickerHypervisor('/dev/drbd1', 'tcg,tb-size=64', 'web2'),
        disks: [
          {
            resource: SECOND_RESOURCE,
            minor: 1,
            port: 7790,
            sizeMiB: 16,
            nodeIds: { 'node-a': NODE_IDS['node-a'], 'node-b': NODE_IDS['node-b'] },
          },
        ],
      };
      writeFileSync(
        tb.clusterPath,
        JSON.stringify({ ...cluster, instances: [...cluster.instances, web2] }, null, 2),
      );
      const guest = new QemuNode(new SshNode(tb.cluster.nodes[0]!), web2.hypervisor);
      await guest.start(false, 60_000);
      guest.shell.close();
      const stateDir = tempDir('drbd-migrate-state-');
      const r = await cli([
        'evacuate',
        'node-b',
        '--all',
        '--cluster',
        tb.clusterPath,
        '--state-dir',
        stateDir,
        '--json',
      ]);
      rmSync(stateDir, { recursive: true, force: true });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const result = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { type: string; outcome?: string; results?: unknown[] })
        .find((l) => l.type === 'result');
      expect(result).toMatchObject({
        outcome: 'evacuated',
        results: [
          { instance: 'web2', operation: 'changeSecondary', outcome: 'replaced', secondaryNode: 'node-c' },
        ],
      });
      const after = await loadCluster(tb.clusterPath);
      expect(after.nodes.find((n) => n.name === 'node-b')?.drained).toBe(true);
      expect(after.instances.map((i) => [i.name, i.primary, i.secondary])).toEqual([
        ['web1', 'node-c', 'node-a'],
        ['web2', 'node-a', 'node-c'],
      ]);
      expect((await sh('node-b', 'ls /sys/block | grep drbd', [0, 1])).stdout.trim()).toBe('');
      expect((await sh('node-b', `lvs --noheadings -o lv_name ${VOLUME_GROUP}`)).stdout.trim()).toBe('');
      for (const [node, peer, resource, minor, port] of [
        ['node-c', 'node-a', RESOURCE, 0, 7789],
        ['node-a', 'node-c', SECOND_RESOURCE, 1, 7790],
        ['node-c', 'node-a', SECOND_RESOURCE, 1, 7790],
      ] as const) {
        const s = await drbd(node, peer, resource, minor, port);
        expect([node, resource, s.connection, s.diskState, s.peerDiskState]).toEqual([
          node,
          resource,
          'Connected',
          'UpToDate',
          'UpToDate',
        ]);
      }
    }, 300_000);
  },
);
