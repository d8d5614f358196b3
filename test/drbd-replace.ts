import { rmSync } from 'node:fs';
import { expect, it } from 'vitest';
import type { DiskStatus } from '../machines/index.js';
import { SSH_GRACE_MS, sshEffects } from '../src/backend/ssh.js';
import { inputWithLimits } from '../src/cli/cluster.js';
import { loadCluster } from '../src/cluster/index.js';
import { drbdDrivers } from '../src/drivers/drbd.js';
import type { DrbdLink } from '../src/drivers/drbd84.js';
import { runMigration } from '../src/index.js';
import { cli } from './processes.js';
import { ticksAcross } from './testbed/common.js';
import {
  addSecondInstance,
  type DrbdKernel,
  type DrbdTestbed,
  NODE_IDS,
  type NodeName,
  RESOURCE,
  SECOND_RESOURCE,
  VOLUME_GROUP,
} from './testbed/drbd.js';
import { tempDir } from './tmp.js';

/**
 * What both DRBD versions' replace tests ask of a spare testbed (three node VMs on LVM, node-c
 * holding no copy): reads of the guest, the volumes and the kernel's own view, and the tests after
 * the replace that are the same on both (the new copy carries a live migration; `evacuate --all`
 * empties node-b).
 */
export function spareTestbed(kernel: DrbdKernel, testbed: () => DrbdTestbed) {
  const driver = drbdDrivers[kernel];
  const sh = (node: NodeName, script: string, okCodes = [0]) =>
    testbed().exec(node, ['sh', '-c', script], okCodes);
  const serial = async (node: NodeName) =>
    (await sh(node, 'cat /run/drbd-migrate/web1.serial 2>/dev/null', [0, 1])).stdout;
  const waitForTick = (node: NodeName, n: number) =>
    sh(
      node,
      `timeout 60 sh -c 'until grep -q "disk-tick ${n.toString(16).padStart(4, '0')}" /run/drbd-migrate/web1.serial 2>/dev/null; do sleep 0.1; done'`,
    );
  /** The kernel's own view of a disk on NODE towards PEER, read and parsed as the backend does. */
  const drbd = async (
    node: NodeName,
    peer: NodeName,
    resource = RESOURCE,
    minor = 0,
    port = 7789,
  ): Promise<DiskStatus> => {
    const address = (n: NodeName) => testbed().cluster.nodes.find((x) => x.name === n)!.replicationAddress;
    const l: DrbdLink = {
      resource,
      minor,
      local: { address: address(node), port },
      peer: { address: address(peer), port },
      ...(kernel === '9' ? { peerNodeId: NODE_IDS[peer] } : {}),
    };
    const outputs = await Promise.all(driver.statusReads(l).map((argv) => testbed().exec(node, argv)));
    return driver.parseStatus(
      outputs.map((o) => o.stdout),
      l,
    );
  };
  const volumes = async (node: NodeName) =>
    (await sh(node, `lvs --noheadings -o lv_name ${VOLUME_GROUP}`)).stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith(RESOURCE));
  /** The built CLI's replace-secondary of web1 onto node-c, with a state folder of its own. */
  const replaceOntoNodeC = async (...extra: string[]) => {
    const stateDir = tempDir('drbd-migrate-state-');
    try {
      return await cli([
        'replace-secondary',
        'web1',
        '--new-secondary',
        'node-c',
        '--cluster',
        testbed().clusterPath,
        '--state-dir',
        stateDir,
        ...extra,
      ]);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  };

  /** The tests after web1's copy moved to node-c, the same on both DRBD versions. */
  const afterTheReplace = (how: string) => {
    it(`DRBD ${kernel}: the new copy carries a live migration to node-c, the guest counting on`, async () => {
      const backend = await sshEffects(testbed().clusterPath);
      try {
        const input = inputWithLimits(await loadCluster(testbed().clusterPath), { instance: 'web1' });
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

    it(`DRBD ${kernel}: evacuate node-b --all empties it: web2’s copy moves to node-c (${how}), node-b marked drained, no device or volume left`, async () => {
      await addSecondInstance(testbed());
      const stateDir = tempDir('drbd-migrate-state-');
      const r = await cli([
        'evacuate',
        'node-b',
        '--all',
        '--cluster',
        testbed().clusterPath,
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
        // The drain's own read of node-b at its end, which the checks below repeat.
        stillHolds: { minors: [], volumes: [] },
      });
      const after = await loadCluster(testbed().clusterPath);
      expect(after.nodes.find((n) => n.name === 'node-b')?.drained).toBe(true);
      expect(after.instances.map((i) => [i.name, i.primary, i.secondary])).toEqual([
        ['web1', 'node-c', 'node-a'],
        ['web2', 'node-a', 'node-c'],
      ]);
      // node-b holds nothing of any instance: no DRBD device, no volume.
      expect((await sh('node-b', 'ls /sys/block | grep drbd', [0, 1])).stdout.trim()).toBe('');
      expect((await sh('node-b', `lvs --noheadings -o lv_name ${VOLUME_GROUP}`)).stdout.trim()).toBe('');
      // Every instance on two UpToDate copies, as the kernels say.
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
  };

  return { sh, serial, waitForTick, drbd, volumes, replaceOntoNodeC, afterTheReplace };
}
