import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Effects, MACHINES } from '../machines/index.js';
import { SSH_GRACE_MS, sshEffects } from '../src/backend/ssh.js';
import { inputWithLimits } from '../src/cli/cluster.js';
import { loadCluster } from '../src/cluster/index.js';
import { twoPrimariesAllowed } from '../src/drivers/drbd9.js';
import { QemuNode } from '../src/drivers/qemu.js';
import { runMigration } from '../src/index.js';
import { runMachine } from '../src/runner/index.js';
import { SshNode } from '../src/ssh/index.js';
import { spareTestbed } from './drbd-replace.js';
import { cli } from './processes.js';
import { ticks, ticksAcross } from './testbed/common.js';
import {
  type DrbdTestbed,
  drbdTestbedUnavailable,
  NODE_IDS,
  type NodeName,
  RESOURCE,
  startDrbdTestbed,
  VOLUME_GROUP,
} from './testbed/drbd.js';
import { tempDir } from './tmp.js';

/**
 * Issues 20 and 21 on real DRBD 9: four node VMs, node-a and node-b holding the copies, node-c a
 * spare holding none (every diskful node's disk an LVM volume group), node-d the resources' diskless
 * tiebreaker, with quorum, named in the cluster file. replace-secondary adds node-c as a further peer
 * of node-a while node-b stays connected, and of node-d, commits once node-c is UpToDate, and only
 * then removes node-b from both (make-before-break): a `drbdsetup events2` stream on node-a, running
 * through the whole replace, shows two UpToDate copies at every event, and node-c holds quorum with
 * node-d. Then a repair after a commit, the new copy carrying a live migration, `evacuate node-b
 * --all` emptying node-b, and node-b back as a third diskful copy of web1 while a live migration runs
 * between the other two (the kernel's own view of the third during the copy); then the file names
 * another two of the three as the pair, and a migration runs between those. A second testbed, node-d
 * a second spare instead of the tiebreaker, replaces the secondary of a three-copy instance.
 */
const unavailable = drbdTestbedUnavailable('9');
if (unavailable !== null && process.env.CI === 'true') {
  throw new Error(`CI=true but the DRBD 9 VM testbed cannot start: ${unavailable}`);
}
if (unavailable !== null) console.warn(`SKIPPED the DRBD 9 replace tests: ${unavailable}`);

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
    const { sh, serial, waitForTick, drbd, volumes, replaceOntoNodeC, afterTheReplace } = spareTestbed(
      '9',
      () => tb,
    );
    const hasResource = async (node: NodeName, resource = RESOURCE) =>
      (await sh(node, `drbdsetup status ${resource} >/dev/null 2>&1`, [0, 10])).code === 0;

    beforeAll(async () => {
      dir = tempDir('drbd-migrate-vms-');
      tb = await startDrbdTestbed(dir, '9', { spare: true, tiebreaker: true });
      const source = new QemuNode(new SshNode(tb.cluster.nodes[0]!), tb.cluster.instances[0]!.hypervisor);
      await source.start(false, 60_000);
      source.shell.close();
      await waitForTick('node-a', 2);
    }, 600_000);

    afterAll(() => {
      tb?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** The peers node-d, the tiebreaker, has for web1's disk (their node-ids). */
    const tiebreakerPeers = async () =>
      [...(await sh('node-d', `drbdsetup show ${RESOURCE}`)).stdout.matchAll(/_peer_node_id (\d+);/g)]
        .map((m) => Number(m[1]))
        .sort();

    it('DRBD 9: replace-secondary adds node-c beside node-b (a peer of node-a and of the tiebreaker node-d), commits once it is UpToDate, then removes node-b from both: two UpToDate copies at every event on node-a, quorum carried over', async () => {
      expect(await tiebreakerPeers()).toEqual([0, 1]);
      // node-a's kernel reports every state change of web1's disk from here to the end.
      await sh('node-a', `drbdsetup events2 ${RESOURCE} >${EVENTS} 2>&1 </dev/null & echo $! >${EVENTS}.pid`);
      const r = await replaceOntoNodeC('--json');
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
      expect(said).toContain('* adding node-c as a peer of node-d, the tiebreaker');
      expect(said).toContain('* removing node-b as a peer of node-d, the tiebreaker');
      // The tiebreaker votes for node-a and node-c now; node-c holds quorum, and could be promoted.
      expect(await tiebreakerPeers()).toEqual([0, 2]);
      expect(await drbd('node-c', 'node-a')).toMatchObject({ quorum: 'held' });

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

    it('DRBD 9: a replace stopped after its commit (node-c’s removal as a peer failed) is finished by --cleanup: the peers it finds connected stay so; then back onto node-c', async () => {
      const backend = await sshEffects(tb.clusterPath);
      let failed = false;
      try {
        const effects: Effects = {
          ...backend.effects,
          // The first removal of an old peer fails before it reaches node-a (a dropped SSH session).
          removePeer: (input, signal) => {
            if (failed) return backend.effects.removePeer(input, signal);
            failed = true;
            return Promise.reject(new Error(`${input.node}: injected: the SSH session dropped`));
          },
        };
        const input = inputWithLimits(await loadCluster(tb.clusterPath), {
          instance: 'web1',
          newSecondary: 'node-b',
        });
        const out = await runMachine(MACHINES.changeSecondary, input, effects, { graceMs: SSH_GRACE_MS });
        expect(out.outcome).toBe('needsCleanup');
        expect(out.error).toMatch(/Cannot remove node-c as a peer of node-a .*--cleanup/);
      } finally {
        backend.close();
      }
      expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
        secondary: 'node-b',
        formerSecondary: 'node-c',
      });
      // The repair meets node-b and node-c both connected to node-a: it connects nothing again.
      const state = tempDir('drbd-migrate-state-');
      const r = await cli([
        'replace-secondary',
        'web1',
        '--cleanup',
        '--cluster',
        tb.clusterPath,
        '--state-dir',
        state,
      ]);
      rmSync(state, { recursive: true, force: true });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('outcome: cleaned');
      for (const [node, peer] of [
        ['node-a', 'node-b'],
        ['node-b', 'node-a'],
      ] as const)
        expect(await drbd(node, peer)).toMatchObject({
          connection: 'Connected',
          diskState: 'UpToDate',
          peerDiskState: 'UpToDate',
        });
      expect(await hasResource('node-c')).toBe(false);
      expect(await volumes('node-c')).toEqual([]);
      expect(await tiebreakerPeers()).toEqual([0, 1]);
      expect((await loadCluster(tb.clusterPath)).instances[0]!.formerSecondary).toBeUndefined();

      // Back onto node-c for the tests after, as an operator would.
      const again = await replaceOntoNodeC();
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({ secondary: 'node-c' });
      expect(await tiebreakerPeers()).toEqual([0, 2]);
    }, 300_000);

    afterTheReplace('make-before-break');

    /** Where a recording run (DRBD_MIGRATE_RECORD=FOLDER) keeps what the kernel printed, as fixtures. */
    const record = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      const to = process.env.DRBD_MIGRATE_RECORD;
      if (to !== undefined && to !== '') writeFileSync(join(to, name), text);
    };

    it('DRBD 9: three diskful peers: node-b joins web1 as a third copy beside node-c and node-a; in a live migration from node-c to node-a, node-b’s own view shows both peers Primary and two primaries allowed on neither of its connections, node-c’s on its connection to node-a only; after it, node-b UpToDate with the guest’s writes, and a drain of node-b, which the file names for no copy, will not call it empty', async () => {
      expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
        primary: 'node-c',
        secondary: 'node-a',
      });
      // node-b's copy as an operator adds a third: its volumes, fresh metadata, up from its resource
      // file (which names node-a and node-d), node-c added as its peer, and node-b as theirs.
      await sh(
        'node-b',
        `lvcreate -q -y -L 64m -n ${RESOURCE}_data ${VOLUME_GROUP} && lvcreate -q -y -L 128m -n ${RESOURCE}_meta ${VOLUME_GROUP} && drbdadm create-md --force --max-peers=7 ${RESOURCE} && drbdadm up ${RESOURCE}`,
      );
      const address = (n: NodeName) => tb.cluster.nodes.find((x) => x.name === n)!.replicationAddress;
      const peerWith = (node: NodeName, peer: NodeName) =>
        sh(
          node,
          [
            `drbdsetup new-peer ${RESOURCE} ${NODE_IDS[peer]} --_name=${peer} --protocol=C`,
            `drbdsetup new-path ${RESOURCE} ${NODE_IDS[peer]} ipv4:${address(node)}:7789 ipv4:${address(peer)}:7789`,
            `drbdsetup connect ${RESOURCE} ${NODE_IDS[peer]}`,
          ].join(' && '),
        );
      await peerWith('node-b', 'node-c');
      for (const node of ['node-a', 'node-c', 'node-d'] as const) await peerWith(node, 'node-b');
      // Its full resync, bounded on node-b: UpToDate, and both other copies seen UpToDate.
      await sh(
        'node-b',
        `timeout 120 sh -c 'until s=$(drbdsetup events2 --now ${RESOURCE}) && echo "$s" | grep -q "^exists device .* disk:UpToDate" && echo "$s" | grep -q "conn-name:node-a volume:0 replication:Established peer-disk:UpToDate" && echo "$s" | grep -q "conn-name:node-c volume:0 replication:Established peer-disk:UpToDate"; do sleep 0.2; done'`,
      );
      record(
        'three-diskful-secondary.json',
        (await sh('node-b', `drbdsetup status ${RESOURCE} --json --statistics`)).stdout,
      );
      expect(await drbd('node-b', 'node-c')).toMatchObject({ quorum: 'held', peerRole: 'Primary' });

      // The copy throttled so that the window stays open while the three nodes are read; then the
      // operator's abort (the migration reverts: node-c primary again).
      const cluster = await loadCluster(tb.clusterPath);
      writeFileSync(
        tb.clusterPath,
        JSON.stringify(
          {
            ...cluster,
            options: { ...cluster.options, bandwidthMiBps: 0.01, convergence: { predict: false } },
          },
          null,
          2,
        ),
      );
      const abort = new AbortController();
      let window: Promise<Record<'third' | 'thirdShow' | 'sourceShow' | 'target', string>> | undefined;
      const backend = await sshEffects(tb.clusterPath);
      try {
        const input = inputWithLimits(await loadCluster(tb.clusterPath), { instance: 'web1' });
        const out = await runMigration(input, backend.effects, {
          graceMs: SSH_GRACE_MS,
          abort: abort.signal,
          onEvent: (e) => {
            if (e.type !== 'progress' || e.kind !== 'memory' || window !== undefined) return;
            window = Promise.all([
              sh('node-b', `drbdsetup status ${RESOURCE} --json --statistics`),
              sh('node-b', `drbdsetup show ${RESOURCE}`),
              sh('node-c', `drbdsetup show ${RESOURCE}`),
              sh('node-a', `drbdsetup status ${RESOURCE} --json --statistics`),
            ])
              .then(([third, thirdShow, sourceShow, target]) => ({
                third: third.stdout,
                thirdShow: thirdShow.stdout,
                sourceShow: sourceShow.stdout,
                target: target.stdout,
              }))
              .finally(() => abort.abort());
          },
        });
        expect(out).toMatchObject({ outcome: 'reverted', verdict: 'aborted' });
      } finally {
        backend.close();
        writeFileSync(tb.clusterPath, JSON.stringify(cluster, null, 2));
      }
      const seen = await window!;
      record('three-diskful-window-secondary.json', seen.third);
      record('three-diskful-window-secondary.show', seen.thirdShow);
      record('three-diskful-window-source.show', seen.sourceShow);
      record('three-diskful-window-target.json', seen.target);
      const [third] = JSON.parse(seen.third) as {
        connections: { 'peer-node-id': number; 'peer-role': string; 'connection-state': string }[];
      }[];
      // node-b sees two Primaries, each over a connection of its own that allows none.
      expect(
        third!.connections.map((c) => [c['peer-node-id'], c['peer-role'], c['connection-state']]).sort(),
      ).toEqual([
        [NODE_IDS['node-a'], 'Primary', 'Connected'],
        [NODE_IDS['node-c'], 'Primary', 'Connected'],
        [NODE_IDS['node-d'], 'Secondary', 'Connected'],
      ]);
      for (const peer of ['node-a', 'node-c', 'node-d'] as const)
        expect([peer, twoPrimariesAllowed(seen.thirdShow, NODE_IDS[peer])]).toEqual([peer, false]);
      expect(twoPrimariesAllowed(seen.sourceShow, NODE_IDS['node-a'])).toBe(true);
      expect(twoPrimariesAllowed(seen.sourceShow, NODE_IDS['node-b'])).toBe(false);
      expect(twoPrimariesAllowed(seen.sourceShow, NODE_IDS['node-d'])).toBe(false);
      // The reverted run left node-c the only primary, node-b still a connected, UpToDate copy.
      expect(await drbd('node-b', 'node-c')).toMatchObject({
        role: 'Secondary',
        peerRole: 'Primary',
        connection: 'Connected',
        diskState: 'UpToDate',
        peerDiskState: 'UpToDate',
      });
      expect(await drbd('node-b', 'node-a')).toMatchObject({
        peerRole: 'Secondary',
        connection: 'Connected',
      });

      // The migration to its end this time: node-a primary, node-b a copy of both, the guest's ticks
      // on node-a written through to node-b's backing volume.
      const again = await sshEffects(tb.clusterPath);
      try {
        const input = inputWithLimits(await loadCluster(tb.clusterPath), { instance: 'web1' });
        const out = await runMigration(input, again.effects, { graceMs: SSH_GRACE_MS });
        expect(out.error ?? null).toBeNull();
        expect(out).toMatchObject({ outcome: 'migrated', primaryNode: 'node-a' });
      } finally {
        again.close();
      }
      const last = ticks(await serial('node-c')).at(-1)!;
      await waitForTick('node-a', last + 2);
      for (const peer of ['node-a', 'node-c'] as const)
        expect(await drbd('node-b', peer)).toMatchObject({
          role: 'Secondary',
          peerRole: peer === 'node-a' ? 'Primary' : 'Secondary',
          connection: 'Connected',
          diskState: 'UpToDate',
          peerDiskState: 'UpToDate',
          allowTwoPrimaries: false,
        });
      const sector = await sh(
        'node-b',
        `dd if=/dev/${VOLUME_GROUP}/${RESOURCE}_data bs=512 skip=${8 + last + 1} count=1 iflag=direct status=none`,
      );
      expect(sector.stdout.startsWith(`disk-tick ${(last + 1).toString(16).padStart(4, '0')}`)).toBe(true);

      // The cluster file names no copy on node-b: a drain of it reads the node and will not call it
      // empty, and leaves the copy alone.
      const state = tempDir('drbd-migrate-state-');
      const drained = await cli([
        'evacuate',
        'node-b',
        '--all',
        '--cluster',
        tb.clusterPath,
        '--state-dir',
        state,
      ]);
      rmSync(state, { recursive: true, force: true });
      expect(drained.code).toBe(1);
      expect(drained.stdout).toContain(
        `node-b still holds: DRBD minors 0; volumes ${RESOURCE}_data, ${RESOURCE}_meta`,
      );
      expect(drained.stderr).toContain(
        `drbd-migrate: incomplete: node-b still holds DRBD minor 0 and volumes ${RESOURCE}_data, ${RESOURCE}_meta, which no instance the config places there accounts for`,
      );
      expect(await drbd('node-b', 'node-a')).toMatchObject({
        connection: 'Connected',
        diskState: 'UpToDate',
      });
    }, 300_000);

    it('DRBD 9: the file names node-b as web1’s third copy; migrate --target node-b (node-a → node-b, node-c the secondary): node-c’s own view shows both Primary over connections that allow none, node-a’s allows two primaries towards node-b only; the abort reverts on that connection alone; the migration to its end rotates the file in one write (node-b primary, node-a secondary, node-c third), node-c UpToDate with the guest’s writes; a cleanup of the three finds nothing to repair', async () => {
      // The drain before marked node-b; the operator takes the mark back and names node-b the third
      // copy (its node-id beside the others').
      const undrained = await cli(['undrain', 'node-b', '--cluster', tb.clusterPath]);
      expect([undrained.code, undrained.stderr]).toEqual([0, '']);
      const named = await loadCluster(tb.clusterPath);
      const web1 = named.instances[0]!;
      expect(web1).toMatchObject({ primary: 'node-a', secondary: 'node-c' });
      const cluster = {
        ...named,
        instances: [
          {
            ...web1,
            thirdCopy: 'node-b',
            disks: web1.disks.map((d) =>
              'resource' in d && d.nodeIds !== undefined
                ? { ...d, nodeIds: { ...d.nodeIds, 'node-b': NODE_IDS['node-b'] } }
                : d,
            ),
          },
          ...named.instances.slice(1),
        ],
      };
      writeFileSync(tb.clusterPath, JSON.stringify(cluster, null, 2));
      const checked = await cli(['check', 'web1', '--cluster', tb.clusterPath]);
      expect([checked.code, checked.stderr]).toEqual([0, '']);

      writeFileSync(
        tb.clusterPath,
        JSON.stringify(
          {
            ...cluster,
            options: { ...cluster.options, bandwidthMiBps: 0.01, convergence: { predict: false } },
          },
          null,
          2,
        ),
      );
      const abort = new AbortController();
      let window: Promise<Record<'third' | 'thirdShow' | 'sourceShow', string>> | undefined;
      const backend = await sshEffects(tb.clusterPath);
      try {
        const input = inputWithLimits(await loadCluster(tb.clusterPath), {
          instance: 'web1',
          targetNode: 'node-b',
        });
        const out = await runMigration(input, backend.effects, {
          graceMs: SSH_GRACE_MS,
          abort: abort.signal,
          onEvent: (e) => {
            if (e.type !== 'progress' || e.kind !== 'memory' || window !== undefined) return;
            window = Promise.all([
              sh('node-c', `drbdsetup status ${RESOURCE} --json --statistics`),
              sh('node-c', `drbdsetup show ${RESOURCE}`),
              sh('node-a', `drbdsetup show ${RESOURCE}`),
            ])
              .then(([third, thirdShow, sourceShow]) => ({
                third: third.stdout,
                thirdShow: thirdShow.stdout,
                sourceShow: sourceShow.stdout,
              }))
              .finally(() => abort.abort());
          },
        });
        expect(out).toMatchObject({ outcome: 'reverted', verdict: 'aborted' });
      } finally {
        backend.close();
        writeFileSync(tb.clusterPath, JSON.stringify(cluster, null, 2));
      }
      const seen = await window!;
      const [third] = JSON.parse(seen.third) as {
        connections: { 'peer-node-id': number; 'peer-role': string; 'connection-state': string }[];
      }[];
      expect(
        third!.connections.map((c) => [c['peer-node-id'], c['peer-role'], c['connection-state']]).sort(),
      ).toEqual([
        [NODE_IDS['node-a'], 'Primary', 'Connected'],
        [NODE_IDS['node-b'], 'Primary', 'Connected'],
        [NODE_IDS['node-d'], 'Secondary', 'Connected'],
      ]);
      for (const peer of ['node-a', 'node-b', 'node-d'] as const)
        expect([peer, twoPrimariesAllowed(seen.thirdShow, NODE_IDS[peer])]).toEqual([peer, false]);
      for (const peer of ['node-b', 'node-c', 'node-d'] as const)
        expect([peer, twoPrimariesAllowed(seen.sourceShow, NODE_IDS[peer])]).toEqual([
          peer,
          peer === 'node-b',
        ]);
      // Reverted: node-a the only primary, and no connection of node-a's or node-b's allows two.
      const shows = {
        'node-a': (await sh('node-a', `drbdsetup show ${RESOURCE}`)).stdout,
        'node-b': (await sh('node-b', `drbdsetup show ${RESOURCE}`)).stdout,
      };
      for (const [node, show] of Object.entries(shows))
        for (const peer of ['node-a', 'node-b', 'node-c', 'node-d'] as const)
          if (peer !== node)
            expect([node, peer, twoPrimariesAllowed(show, NODE_IDS[peer])]).toEqual([node, peer, false]);
      expect(await drbd('node-c', 'node-a')).toMatchObject({
        peerRole: 'Primary',
        connection: 'Connected',
        diskState: 'UpToDate',
      });
      expect(await drbd('node-c', 'node-b')).toMatchObject({
        peerRole: 'Secondary',
        connection: 'Connected',
      });

      const state = tempDir('drbd-migrate-state-');
      try {
        const moved = await cli([
          'migrate',
          'web1',
          '--target',
          'node-b',
          '--cluster',
          tb.clusterPath,
          '--state-dir',
          state,
        ]);
        expect([moved.code, moved.stderr]).toEqual([0, '']);
        expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
          primary: 'node-b',
          secondary: 'node-a',
          thirdCopy: 'node-c',
        });
        // The cleanup of a healthy three-copy instance reads the third first and changes nothing.
        const cleaned = await cli([
          'migrate',
          'web1',
          '--cleanup',
          '--cluster',
          tb.clusterPath,
          '--state-dir',
          state,
        ]);
        expect([cleaned.code, cleaned.stderr]).toEqual([0, '']);
        expect(cleaned.stdout).toContain('* nothing of a migration on node-c, the third copy');
      } finally {
        rmSync(state, { recursive: true, force: true });
      }
      const last = ticks(await serial('node-a')).at(-1)!;
      await waitForTick('node-b', last + 2);
      for (const peer of ['node-a', 'node-b'] as const)
        expect(await drbd('node-c', peer)).toMatchObject({
          role: 'Secondary',
          peerRole: peer === 'node-b' ? 'Primary' : 'Secondary',
          connection: 'Connected',
          diskState: 'UpToDate',
          peerDiskState: 'UpToDate',
          allowTwoPrimaries: false,
        });
      const sector = await sh(
        'node-c',
        `dd if=/dev/${VOLUME_GROUP}/${RESOURCE}_data bs=512 skip=${8 + last + 1} count=1 iflag=direct status=none`,
      );
      expect(sector.stdout.startsWith(`disk-tick ${(last + 1).toString(16).padStart(4, '0')}`)).toBe(true);
    }, 300_000);

    it('DRBD 9: three copies: node-b, the primary, loses power → failover --target node-c, the third copy (the file rotates: node-c primary, node-b secondary, node-a third) → node-b boots → rejoin reconnects it to node-c, then to node-a, its side discarded both times → three UpToDate copies with the guest’s writes', async () => {
      const state = tempDir('drbd-migrate-state-');
      const common = ['--cluster', tb.clusterPath, '--state-dir', state];
      try {
        const beforeCrash = ticks(await serial('node-b')).at(-1)!;
        tb.powerOff('node-b');
        // node-c's DRBD notices node-b is gone (its own ping timeout); bounded, on node-c.
        await sh(
          'node-c',
          `timeout 90 sh -c 'until drbdsetup events2 --now ${RESOURCE} | grep -q "conn-name:node-b connection:Connecting"; do sleep 0.2; done'`,
        );
        const over = await cli(['failover', 'web1', ...common, '--source-is-down', '--target', 'node-c']);
        expect([over.code, over.stderr]).toEqual([0, '']);
        expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
          primary: 'node-c',
          secondary: 'node-b',
          thirdCopy: 'node-a',
        });
        await waitForTick('node-c', beforeCrash + 2);
        expect(await drbd('node-a', 'node-c')).toMatchObject({
          peerRole: 'Primary',
          connection: 'Connected',
          diskState: 'UpToDate',
          peerDiskState: 'UpToDate',
        });

        // node-b boots; its resource comes up from its file (which names node-a and node-d).
        await tb.powerOn('node-b');
        await sh('node-b', `drbdadm up ${RESOURCE}`);
        const back = await cli(['rejoin', 'node-b', ...common]);
        expect([back.code, back.stderr]).toEqual([0, '']);
        expect(back.stdout).toContain('* reconnecting node-b to node-a, the third copy');
        expect(back.stdout).toContain('outcome: rejoined');
        for (const peer of ['node-c', 'node-a'] as const)
          expect(await drbd('node-b', peer)).toMatchObject({
            role: 'Secondary',
            connection: 'Connected',
            diskState: 'UpToDate',
            peerDiskState: 'UpToDate',
            allowTwoPrimaries: false,
          });
        expect(await drbd('node-a', 'node-b')).toMatchObject({
          connection: 'Connected',
          peerDiskState: 'UpToDate',
        });
        const last = ticks(await serial('node-c')).at(-1)!;
        await waitForTick('node-c', last + 2);
        const sector = await sh(
          'node-b',
          `dd if=/dev/${VOLUME_GROUP}/${RESOURCE}_data bs=512 skip=${8 + last + 1} count=1 iflag=direct status=none`,
        );
        expect(sector.stdout.startsWith(`disk-tick ${(last + 1).toString(16).padStart(4, '0')}`)).toBe(true);
      } finally {
        rmSync(state, { recursive: true, force: true });
      }
    }, 300_000);
  },
);

/**
 * The same replace of a three-copy instance on the kernel: four node VMs, web1 on node-a (primary),
 * node-b (secondary) and node-c (a third copy the file names), node-d a second spare. The new copy
 * joins node-a and node-c before the commit; node-b leaves both after it.
 */
describe.skipIf(unavailable !== null)(
  'DRBD 9: a three-copy instance’s secondary replaced onto a fourth VM node',
  () => {
    let tb: DrbdTestbed;
    let dir: string;
    const { sh, waitForTick, serial, drbd, volumes } = spareTestbed('9', () => tb);

    beforeAll(async () => {
      dir = tempDir('drbd-migrate-vms-');
      tb = await startDrbdTestbed(dir, '9', { spare: true, secondSpare: true });
      const source = new QemuNode(new SshNode(tb.cluster.nodes[0]!), tb.cluster.instances[0]!.hypervisor);
      await source.start(false, 60_000);
      source.shell.close();
      await waitForTick('node-a', 2);
      // node-c made web1's third copy with the backend's own steps (its resource file names node-a
      // and node-b only, as a file written before it joined would): its disks, then a peer of each.
      const cluster = await loadCluster(tb.clusterPath);
      writeFileSync(
        tb.clusterPath,
        JSON.stringify({
          ...cluster,
          instances: cluster.instances.map((i) => ({
            ...i,
            thirdCopy: 'node-c',
            disks: i.disks.map((d) => ({ ...d, nodeIds: NODE_IDS })),
          })),
        }),
      );
      const backend = await sshEffects(tb.clusterPath);
      try {
        const signal = new AbortController().signal;
        const disks = [{ index: 0, resource: RESOURCE, minor: 0, sizeMiB: 64 }];
        const timeoutMs = 120_000;
        await backend.effects.createDisks({ instance: 'web1', node: 'node-c', disks, timeoutMs }, signal);
        for (const peer of ['node-a', 'node-b'] as const)
          await backend.effects.attachNet(
            { instance: 'web1', nodes: [peer, 'node-c'], disks, multimaster: false, timeoutMs },
            signal,
          );
      } finally {
        backend.close();
      }
      await sh(
        'node-c',
        `timeout 120 sh -c 'until s=$(drbdsetup events2 --now ${RESOURCE}) && echo "$s" | grep -q "^exists device .* disk:UpToDate" && echo "$s" | grep -q "conn-name:node-a volume:0 replication:Established peer-disk:UpToDate" && echo "$s" | grep -q "conn-name:node-b volume:0 replication:Established peer-disk:UpToDate"; do sleep 0.2; done'`,
      );
    }, 600_000);

    afterAll(() => {
      tb?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** The peers a node's kernel has for web1's disk, by name, each with its connection and disk. */
    const peersOf = async (node: NodeName) => {
      const status = JSON.parse((await sh(node, `drbdsetup status ${RESOURCE} --json`)).stdout) as {
        connections: {
          name: string;
          'connection-state': string;
          peer_devices: { 'peer-disk-state': string }[];
        }[];
      }[];
      return Object.fromEntries(
        status[0]!.connections.map((c) => [
          c.name,
          `${c['connection-state']} ${c.peer_devices.map((p) => p['peer-disk-state']).join()}`,
        ]),
      );
    };

    /** A CLI run against the testbed's file, with `drbdsetup events2` on `node` recorded in EVENTS all along. */
    const recordingEvents = async (node: NodeName, args: string[]) => {
      await sh(node, `drbdsetup events2 ${RESOURCE} >${EVENTS} 2>&1 </dev/null & echo $! >${EVENTS}.pid`);
      const state = tempDir('drbd-migrate-state-');
      try {
        return await cli([...args, '--cluster', tb.clusterPath, '--state-dir', state]);
      } finally {
        rmSync(state, { recursive: true, force: true });
        await sh(node, `kill $(cat ${EVENTS}.pid)`);
      }
    };

    it('DRBD 9: replace-secondary gives web1 node-d for node-b: node-d joins node-a and node-c, is in sync with both before the commit, node-b leaves both after; three UpToDate copies at every event on node-a; then web1 migrates to node-d', async () => {
      expect(await peersOf('node-c')).toEqual({
        'node-a': 'Connected UpToDate',
        'node-b': 'Connected UpToDate',
      });
      const r = await recordingEvents('node-a', ['replace-secondary', 'web1', '--new-secondary', 'node-d']);
      expect([r.code, r.stderr]).toEqual([0, '']);
      const said = r.stdout.split('\n');
      const at = (line: string) => said.findIndex((l) => l.includes(line));
      const commit = at('* updating the configuration: node-d is the secondary of web1');
      expect(at('* adding node-d as a peer of node-c, the third copy')).toBeGreaterThan(-1);
      expect(at('* adding node-d as a peer of node-c, the third copy')).toBeLessThan(commit);
      expect(at('* removing node-b as a peer of node-c, the third copy')).toBeGreaterThan(commit);
      expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
        primary: 'node-a',
        secondary: 'node-d',
        thirdCopy: 'node-c',
      });
      // node-a's own events, the whole replace long: never fewer than three UpToDate copies.
      const counted = copiesOverEvents((await sh('node-a', `cat ${EVENTS}`)).stdout, RESOURCE);
      expect(counted.length).toBeGreaterThan(5);
      expect(counted.filter((c) => c.copies < 3)).toEqual([]);
      for (const [node, peers] of [
        ['node-a', { 'node-c': 'Connected UpToDate', 'node-d': 'Connected UpToDate' }],
        ['node-c', { 'node-a': 'Connected UpToDate', 'node-d': 'Connected UpToDate' }],
        ['node-d', { 'node-a': 'Connected UpToDate', 'node-c': 'Connected UpToDate' }],
      ] as const)
        expect([node, await peersOf(node)]).toEqual([node, peers]);
      expect((await sh('node-b', `drbdsetup status ${RESOURCE} >/dev/null 2>&1`, [0, 10])).code).toBe(10);
      expect(await volumes('node-b')).toEqual([]);

      // The new pair carries a live migration, the guest counting on.
      const migrateState = tempDir('drbd-migrate-state-');
      try {
        const moved = await cli([
          'migrate',
          'web1',
          '--cluster',
          tb.clusterPath,
          '--state-dir',
          migrateState,
        ]);
        expect([moved.code, moved.stderr]).toEqual([0, '']);
      } finally {
        rmSync(migrateState, { recursive: true, force: true });
      }
      // Counting on from the last tick node-a's guest wrote, on node-d.
      const left = await serial('node-a');
      const { last } = ticksAcross(left, await serial('node-d'));
      await waitForTick('node-d', last + 2);
      expect(ticksAcross(left, await serial('node-d')).after.slice(0, 2)).toEqual([last + 1, last + 2]);
      expect(await drbd('node-d', 'node-a')).toMatchObject({ role: 'Primary', peerDiskState: 'UpToDate' });
      expect(await drbd('node-c', 'node-d')).toMatchObject({ peerRole: 'Primary', diskState: 'UpToDate' });
    }, 600_000);

    it('DRBD 9: the third copy’s node loses power and boots; rejoin node-c reconnects it to node-d, the primary, then to node-a, the secondary, its side discarded both times: three UpToDate copies, node-c’s volume with node-d’s latest tick', async () => {
      expect((await loadCluster(tb.clusterPath)).instances[0]).toMatchObject({
        primary: 'node-d',
        secondary: 'node-a',
        thirdCopy: 'node-c',
      });
      tb.powerOff('node-c');
      await tb.powerOn('node-c');
      // Its copy comes up as an operator brings it up: the activity log applied (the kernel refuses
      // metadata a crash left unclean), the device on its volumes, no peer yet (no resource file
      // names node-c, which joined by replace-secondary's steps).
      await sh(
        'node-c',
        `vgchange -q -ay ${VOLUME_GROUP} >/dev/null && drbdmeta 0 v09 /dev/${VOLUME_GROUP}/${RESOURCE}_meta flex-external apply-al && drbdsetup new-resource ${RESOURCE} ${NODE_IDS['node-c']} --auto-promote=no && drbdsetup new-minor ${RESOURCE} 0 0 && drbdsetup attach 0 /dev/${VOLUME_GROUP}/${RESOURCE}_data /dev/${VOLUME_GROUP}/${RESOURCE}_meta flexible`,
      );
      const state = tempDir('drbd-migrate-state-');
      try {
        const back = await cli(['rejoin', 'node-c', '--cluster', tb.clusterPath, '--state-dir', state]);
        expect([back.code, back.stderr]).toEqual([0, '']);
        expect(back.stdout).toContain('Rejoining node-c as the third copy of web1 (primary node-d)');
        expect(back.stdout).toContain('* reconnecting node-c to node-a, the secondary');
      } finally {
        rmSync(state, { recursive: true, force: true });
      }
      for (const [node, peers] of [
        ['node-c', { 'node-a': 'Connected UpToDate', 'node-d': 'Connected UpToDate' }],
        ['node-a', { 'node-c': 'Connected UpToDate', 'node-d': 'Connected UpToDate' }],
        ['node-d', { 'node-a': 'Connected UpToDate', 'node-c': 'Connected UpToDate' }],
      ] as const)
        expect([node, await peersOf(node)]).toEqual([node, peers]);
      const last = ticks(await serial('node-d')).at(-1)!;
      await waitForTick('node-d', last + 2);
      const sector = await sh(
        'node-c',
        `dd if=/dev/${VOLUME_GROUP}/${RESOURCE}_data bs=512 skip=${8 + last + 1} count=1 iflag=direct status=none`,
      );
      expect(sector.stdout.startsWith(`disk-tick ${(last + 1).toString(16).padStart(4, '0')}`)).toBe(true);
    }, 600_000);

    it('DRBD 9: replace-third-copy moves web1’s third copy from node-c to node-b: node-b joins node-d (the primary) and node-a (the secondary), is in sync with both before the commit, node-c leaves both after; three UpToDate copies at every event on node-d; node-c holds nothing; the guest counts on', async () => {
      const r = await recordingEvents('node-d', ['replace-third-copy', 'web1', '--new-third-copy', 'node-b']);
      expect([r.code, r.stderr]).toEqual([0, '']);
      const said = r.stdout.split('\n');
      const at = (line: string) => said.findIndex((l) => l.includes(line));
      const commit = at('* updating the configuration: node-b holds the third copy of web1');
      expect(commit).toBeGreaterThan(-1);
      expect(at('* adding node-b as a peer of node-a, the secondary')).toBeGreaterThan(-1);
      expect(at('* adding node-b as a peer of node-a, the secondary')).toBeLessThan(commit);
      expect(at('* removing node-c as a peer of node-d')).toBeGreaterThan(commit);
      expect(at('* removing node-c as a peer of node-a, the secondary')).toBeGreaterThan(commit);
      const spec = (await loadCluster(tb.clusterPath)).instances[0]!;
      expect(spec).toMatchObject({ primary: 'node-d', secondary: 'node-a', thirdCopy: 'node-b' });
      expect(spec.formerThirdCopy).toBeUndefined();
      // node-d's own events, the whole move long: never fewer than three UpToDate copies.
      const counted = copiesOverEvents((await sh('node-d', `cat ${EVENTS}`)).stdout, RESOURCE);
      expect(counted.length).toBeGreaterThan(5);
      expect(counted.filter((c) => c.copies < 3)).toEqual([]);
      for (const [node, peers] of [
        ['node-d', { 'node-a': 'Connected UpToDate', 'node-b': 'Connected UpToDate' }],
        ['node-a', { 'node-b': 'Connected UpToDate', 'node-d': 'Connected UpToDate' }],
        ['node-b', { 'node-a': 'Connected UpToDate', 'node-d': 'Connected UpToDate' }],
      ] as const)
        expect([node, await peersOf(node)]).toEqual([node, peers]);
      expect((await sh('node-c', `drbdsetup status ${RESOURCE} >/dev/null 2>&1`, [0, 10])).code).toBe(10);
      expect(await volumes('node-c')).toEqual([]);
      const last = ticks(await serial('node-d')).at(-1)!;
      await waitForTick('node-d', last + 2);
    }, 600_000);
  },
);
