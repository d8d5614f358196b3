import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSimCluster, DEMO_SPEC, type SimCluster, type WorldSpec } from '../src/sim/index.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/**
 * `check INSTANCE`: a migration's checks and a failover's ground, read and said without changing
 * anything; in particular the primary's own quorum-lost handler, which no run reads before it would
 * be relied on (a failover away from a silent primary).
 */

const dir = tempDir('drbd-migrate-check-');

/** web1 on node-a and node-b, DRBD 9 with quorum, node-c its tiebreaker, selfFenceMs 30 s. */
const quorate = (nodes: WorldSpec['nodes'] = {}, selfFenceMs: number | null = 30_000): SimCluster =>
  createSimCluster({
    nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {}, ...nodes },
    instances: (DEMO_SPEC.instances ?? []).map((i) => ({
      ...i,
      drbd: '9' as const,
      quorum: true,
      tiebreaker: 'node-c',
      ...(selfFenceMs === null ? {} : { selfFenceMs }),
    })),
  });

let files = 0;
async function check(sim: SimCluster) {
  const file = join(dir, `w${++files}.json`);
  writeFileSync(file, JSON.stringify(sim.snapshot()));
  const before = JSON.stringify(sim.snapshot());
  const r = await cli('check', 'web1', '--world', file);
  // Nothing changed: the world file is as it was (the reads ran on a copy, and were not saved).
  expect(JSON.stringify(JSON.parse(readFileSync(file, 'utf8')))).toBe(before);
  return r;
}

describe('drbd-migrate check', () => {
  it('a quorate instance, every handler in place: both hold, exit 0', async () => {
    const r = await check(quorate());
    expect(r.stderr).toEqual([]);
    expect(r.stdout).toEqual([
      'ok: a migration of web1 from node-a to node-b passes its checks now',
      "ok: were node-a to go silent, node-b's quorum would prove it cannot write, and its quorum-lost handler stops web1 within 30000 ms: a failover needs no --source-is-down",
    ]);
    expect(r.code).toBe(0);
  });

  it('the primary would not stop web1 on losing quorum: a migration passes, a failover could not rest on quorum, exit 1', async () => {
    const r = await check(quorate({ 'node-a': { selfFences: false } }));
    expect(r.code).toBe(1);
    expect(r.stdout[0]).toBe('ok: a migration of web1 from node-a to node-b passes its checks now');
    expect(r.stdout[1]).toMatch(
      /^failover: node-a would not stop web1 on losing DRBD quorum: no quorum-lost handler runs there for web1-disk0/,
    );
  });

  it('the secondary without the handler: the migration onto it would be refused, and the failover too', async () => {
    const r = await check(quorate({ 'node-b': { selfFences: false } }));
    expect(r.code).toBe(1);
    expect(r.stdout).toEqual([
      expect.stringMatching(/^migration: node-b would not stop web1 on losing DRBD quorum/),
      expect.stringMatching(/^failover: node-b would not stop web1 on losing DRBD quorum/),
    ]);
  });

  it('the tiebreaker cut off: a silent primary would leave node-b one vote of two, said with the node to bring back', async () => {
    const sim = quorate();
    sim.perturb('tiebreakerCut', 'web1');
    const r = await check(sim);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'failover: node-c, the tiebreaker, is not connected to node-b on web1-disk0 (Connecting), web1-disk1 (Connecting): with node-a silent, node-b would hold one vote of three; connect node-c to node-b',
    );
  });

  it('the tiebreaker connected to the primary only: what a silent primary leaves is the secondary’s link to it, read there', async () => {
    const sim = quorate();
    const world = sim.snapshot();
    for (const r of Object.values(world.resources)) r.tiebreakerPeers = ['node-a'];
    const r = await check(createSimCluster(world));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('ok: a migration of web1 from node-a to node-b passes its checks now');
    expect(r.stdout).toContainEqual(
      expect.stringMatching(
        /^failover: node-c, the tiebreaker, is not connected to node-b on web1-disk0 \(StandAlone\)/,
      ),
    );
  });

  it('the tiebreaker down: its read fails, and the line says how, and which node to bring back', async () => {
    const sim = quorate();
    sim.killNode('node-c');
    const r = await check(sim);
    expect(r.code).toBe(1);
    expect(r.stdout).toContainEqual(
      expect.stringMatching(
        /^failover: No disk status from node-c, the tiebreaker \(node-c: cannot connect to node-c: timed out \(the node is down\)\): with node-a silent, nothing shows node-b would hold quorum; bring node-c back$/,
      ),
    );
  });

  it('a disk not in sync: the migration would be refused, as it says', async () => {
    const sim = quorate();
    sim.perturb('resyncStall', 'web1');
    const r = await check(sim);
    expect(r.code).toBe(1);
    expect(r.stdout).toContainEqual(
      expect.stringMatching(/^migration: Disk \d \(web1-disk\d\) is degraded or not fully synchronized/),
    );
  });

  it('without selfFenceMs a failover rests on the operator’s word, as meant: said, exit 0', async () => {
    const r = await check(quorate({}, null));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "ok: were node-a to go silent, a failover would need the operator's --source-is-down (web1 has no selfFenceMs: DRBD quorum is not taken as proof)",
    );
  });

  it('without INSTANCE, every instance of the file, each line led by its name; exit 1 if one is not ready', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': {}, 'node-b': {}, 'node-c': { selfFences: false } },
      instances: [
        {
          name: 'web1',
          primary: 'node-a',
          secondary: 'node-b',
          memoryMiB: 512,
          drbd: '9',
          quorum: true,
          selfFenceMs: 30_000,
        },
        {
          name: 'web2',
          primary: 'node-c',
          secondary: 'node-a',
          memoryMiB: 512,
          drbd: '9',
          quorum: true,
          selfFenceMs: 30_000,
        },
      ],
    });
    const file = join(dir, 'all.json');
    writeFileSync(file, JSON.stringify(sim.snapshot()));
    const r = await cli('check', '--world', file);
    expect(r.code).toBe(1);
    expect(r.stdout).toEqual([
      'web1: ok: a migration of web1 from node-a to node-b passes its checks now',
      "web1: ok: were node-a to go silent, node-b's quorum would prove it cannot write, and its quorum-lost handler stops web1 within 30000 ms: a failover needs no --source-is-down",
      'web2: ok: a migration of web2 from node-c to node-a passes its checks now',
      expect.stringMatching(/^web2: failover: node-c would not stop web2 on losing DRBD quorum/),
    ]);
    const json = await cli('check', '--world', file, '--json');
    expect(
      json
        .json()
        .map((l: { instance: string; failover: string | null }) => [l.instance, l.failover === null]),
    ).toEqual([
      ['web1', true],
      ['web2', false],
    ]);
  });

  it('refuses an instance the world does not know, exit 2', async () => {
    const r = await check(quorate()).then(() => cli('check', 'nope', '--world', join(dir, 'w1.json')));
    expect(r.code).toBe(2);
    expect(r.stderr.join('\n')).toMatch(/instance nope is not in world file/);
  });
});
