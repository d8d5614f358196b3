import { describe, expect, it } from 'vitest';
import { createSimCluster, parseFault, runMigration, runRejoin, SimClock, World } from '../src/index.js';
import { usedMemoryMiB } from '../src/sim/guests.js';

const signal = () => new AbortController().signal;
const disks = [
  { index: 0, resource: 'web1-disk0', minor: 0 },
  { index: 1, resource: 'web1-disk1', minor: 1 },
];
const base = { instance: 'web1', timeoutMs: 10_000 };
const both: [string, string] = ['node-a', 'node-b'];

describe('the simulated cluster obeys DRBD’s rules', () => {
  it('refuses a second Primary unless two primaries are allowed', async () => {
    const { effects } = createSimCluster();
    await expect(
      effects.openDisks({ ...base, node: 'node-b', disks, exclusive: false }, signal()),
    ).rejects.toThrow(/Multiple primaries not allowed by config/);
  });

  it('refuses to promote a disk without UpToDate data', async () => {
    const sim = createSimCluster({
      instances: [
        { name: 'web1', primary: 'node-a', secondary: 'node-b', outOfSyncMiB: 512, disksMiB: [1024] },
      ],
    });
    await sim.effects.disconnectNet({ ...base, nodes: both, disks: disks.slice(0, 1) }, signal());
    await expect(
      sim.effects.openDisks(
        { ...base, node: 'node-b', disks: disks.slice(0, 1), exclusive: false },
        signal(),
      ),
    ).rejects.toThrow(/Need access to UpToDate data/);
  });

  it('drops both sides to StandAlone when allow-two-primaries does not match at connect', async () => {
    const sim = createSimCluster();
    await sim.effects.disconnectNet({ ...base, nodes: both, disks }, signal());
    // only one side asks for two primaries: the handshake fails, the attach retries until its deadline
    const r = sim.world.resources['web1-disk0']!;
    const l = r.links[0]!;
    l.net['node-a'] = { allowTwoPrimaries: true, discardMyData: false };
    l.connection['node-a'] = 'Connecting';
    l.net['node-b'] = { allowTwoPrimaries: false, discardMyData: false };
    l.connection['node-b'] = 'Connecting';
    const { handshake } = await import('../src/sim/drbd.js');
    handshake(sim.world, r, l);
    expect([l.connection['node-a'], l.connection['node-b']]).toEqual(['StandAlone', 'StandAlone']);
  });

  it('refuses to demote a disk a guest holds open', async () => {
    const { effects } = createSimCluster();
    await expect(effects.closeDisks({ ...base, node: 'node-a', disks }, signal())).rejects.toThrow(
      /Device is held open by someone/,
    );
  });

  it('will not start an instance twice, nor on Secondary disks', async () => {
    const { effects } = createSimCluster();
    await expect(
      effects.acceptInstance(
        { ...base, node: 'node-a', source: 'node-b', info: {}, postcopy: false },
        signal(),
      ),
    ).rejects.toThrow(/already running on node-a/);
    await expect(
      effects.acceptInstance(
        { ...base, node: 'node-b', source: 'node-a', info: {}, postcopy: false },
        signal(),
      ),
    ).rejects.toThrow(/Wrong medium type/);
  });

  it('records a promotion that breaks safety rule 4 (DRBD itself allows a StandAlone Primary)', async () => {
    const sim = createSimCluster();
    await sim.effects.disconnectNet({ ...base, nodes: both, disks }, signal());
    await sim.effects.openDisks({ ...base, node: 'node-b', disks, exclusive: false }, signal());
    expect(sim.world.violations.some((v) => v.startsWith('rule 4'))).toBe(true);
    expect(sim.world.violations.some((v) => v.startsWith('rule 2'))).toBe(true);
  });

  it('resyncs what a Primary wrote while disconnected, in simulated time', async () => {
    const sim = createSimCluster();
    await sim.effects.disconnectNet({ ...base, nodes: both, disks }, signal());
    await sim.clock.sleep(10_000);
    await sim.effects.attachNet({ ...base, nodes: both, disks, multimaster: false }, signal());
    const first = await sim.effects.waitSync({ ...base, nodes: both, disks, timeoutMs: 0 }, signal());
    expect(first.nodes['node-a']).toMatchObject({ done: false });
    let last = first;
    while (!Object.values(last.nodes).every((n) => n.done)) {
      last = await sim.effects.waitSync({ ...base, nodes: both, disks, timeoutMs: 5_000 }, signal());
    }
    expect(sim.world.resources['web1-disk0']?.local['node-b']?.diskState).toBe('UpToDate');
  });
});

describe('the simulated cluster keeps DRBD’s memory across outages (issue 22 A.7)', () => {
  it('a resync cut by the target’s power loss resumes when it boots and reconnects (nothing written meanwhile)', async () => {
    const sim = createSimCluster({
      instances: [
        { name: 'web1', primary: 'node-a', secondary: 'node-b', outOfSyncMiB: 8192, running: false },
      ],
    });
    await sim.clock.sleep(1_000);
    sim.killNode('node-b');
    sim.reviveNode('node-b');
    const out = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(out.outcome).toBe('rejoined');
    for (const r of Object.values(sim.world.resources)) expect(r.local['node-b']?.diskState).toBe('UpToDate');
  });

  it('promoting a node that is not connected starts a new data generation: with the other’s writes, a split brain', async () => {
    const sim = createSimCluster();
    await sim.effects.disconnectNet({ ...base, nodes: both, disks }, signal());
    await sim.effects.closeDisks({ ...base, node: 'node-a', disks }, signal()).catch(() => {});
    // node-b is promoted alone and writes nothing; node-a, still Primary, writes on.
    await sim.effects.shutdownInstance({ ...base, node: 'node-a' }, signal());
    await sim.effects.openDisks({ ...base, node: 'node-b', disks, exclusive: true }, signal());
    expect(sim.world.resources['web1-disk0']!.links[0]!.newGeneration).toEqual(['node-b']);
    sim.world.resources['web1-disk0']!.links[0]!.dirtyKiB['node-a'] = 4096;
    await sim.effects.closeDisks({ ...base, node: 'node-b', disks }, signal());
    // DRBD drops both to StandAlone, so the reconnect times out.
    await expect(
      sim.effects.attachNet({ ...base, nodes: both, disks, multimaster: false }, signal()),
    ).rejects.toThrow(/Timeout in disk reconnecting/);
    expect(sim.world.violations.some((v) => v.startsWith('split brain: web1-disk0'))).toBe(true);
  });

  it('writes made while the link was down are counted even when nobody looked before it came back', async () => {
    const sim = createSimCluster();
    sim.perturb('linkDown', 'web1');
    // Both are Primary for a migration's window, and both guests write: nobody looks until after.
    const r = sim.world.resources['web1-disk0']!;
    r.local['node-b']!.role = 'Primary';
    r.links[0]!.net['node-a']!.allowTwoPrimaries = true;
    r.links[0]!.net['node-b']!.allowTwoPrimaries = true;
    sim.world.vms['node-b'] = { web1: structuredClone(sim.world.vms['node-a']!.web1!) };
    await sim.clock.sleep(10_000);
    sim.current();
    expect(sim.world.violations.some((v) => v.startsWith('split brain: web1-disk0'))).toBe(true);
  });
});

describe('the simulated clock', () => {
  it('runs timers in order, as fast as the CPU allows, without wall-time sleeps', async () => {
    const clock = new SimClock();
    const order: number[] = [];
    await Promise.all([3_600_000, 1_000, 60_000].map((ms) => clock.sleep(ms).then(() => order.push(ms))));
    expect(order).toEqual([1_000, 60_000, 3_600_000]);
    expect(clock.now()).toBe(3_600_000);
  });

  it('lets an aborted sleep end at once without firing', async () => {
    const clock = new SimClock();
    const stop = new AbortController();
    const sleeping = clock.sleep(1_000, stop.signal);
    stop.abort();
    expect(await sleeping).toBe(false);
    expect(clock.pending).toBe(0);
  });
});

describe('saving and loading a simulated cluster', () => {
  it('round-trips through JSON and keeps going where it stopped', async () => {
    const sim = createSimCluster();
    await sim.effects.disconnectNet({ ...base, nodes: both, disks }, signal());
    const saved = JSON.parse(JSON.stringify(sim.snapshot()));
    const loaded = createSimCluster(World.parse(saved));
    expect(loaded.snapshot()).toEqual(sim.snapshot());
    expect(loaded.clock.now()).toBe(sim.clock.now());
  });

  it('reads a world saved before resources had links (one pair, a joining peer apart) as the same state', () => {
    const now = createSimCluster().snapshot();
    const { links: _links, ...rest } = now.resources['web1-disk0']!;
    const net = { allowTwoPrimaries: false, discardMyData: false };
    const saved = structuredClone(now) as unknown as { resources: Record<string, unknown> };
    saved.resources['web1-disk0'] = {
      ...rest,
      nodes: ['node-a', 'node-b'],
      local: {
        'node-a': { role: 'Primary', diskState: 'UpToDate', net, connection: 'Connected' },
        'node-b': { role: 'Secondary', diskState: 'UpToDate', net: null, connection: 'StandAlone' },
        'node-c': { role: 'Secondary', diskState: 'Inconsistent', net: null, connection: 'Connected' },
      },
      syncSource: null,
      outOfSyncKiB: 0,
      syncTotalKiB: 0,
      dirtyKiB: { 'node-a': 512 },
      newGeneration: ['node-a'],
      linkDownUntil: null,
      joining: {
        node: 'node-c',
        to: 'node-a',
        configured: ['node-a', 'node-c'],
        connected: true,
        outOfSyncKiB: 2048,
        totalKiB: 4096,
      },
    };
    const r = World.parse(saved).resources['web1-disk0']!;
    expect(r.local['node-c']).toEqual({ role: 'Secondary', diskState: 'Inconsistent' });
    expect(r.links).toEqual([
      {
        ends: ['node-a', 'node-b'],
        net: { 'node-a': net, 'node-b': null },
        connection: { 'node-a': 'Connected', 'node-b': 'StandAlone' },
        syncSource: null,
        outOfSyncKiB: 0,
        syncTotalKiB: 0,
        dirtyKiB: { 'node-a': 512 },
        newGeneration: ['node-a'],
        linkDownUntil: null,
        joining: false,
      },
      {
        ends: ['node-a', 'node-c'],
        net: { 'node-a': net, 'node-c': net },
        connection: { 'node-a': 'Connected', 'node-c': 'Connected' },
        syncSource: 'node-a',
        outOfSyncKiB: 2048,
        syncTotalKiB: 4096,
        dirtyKiB: {},
        newGeneration: [],
        linkDownUntil: null,
        joining: true,
      },
    ]);
  });
});

describe('fault specs', () => {
  it('parses EFFECT and EFFECT@N and names the known effects when wrong', () => {
    expect(parseFault('waitSync@2', 'error')).toEqual({ effect: 'waitSync', call: 2, kind: 'error' });
    expect(parseFault('acceptInstance', 'hang')).toEqual({
      effect: 'acceptInstance',
      call: null,
      kind: 'hang',
    });
    expect(() => parseFault('accept', 'error')).toThrow(
      /unknown effect 'accept'.*known effects: getInstance/,
    );
    expect(() => parseFault('waitSync@0', 'error')).toThrow(/counted from 1/);
    expect(() => parseFault('waitSync;reboot', 'error')).toThrow(/expected EFFECT or EFFECT@N/);
  });
});

describe('the guests’ books kept beside the world', () => {
  it('agree with the guests themselves after runs that boot, move, balloon, kill and leave guests', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': { memoryMiB: 4096 }, 'node-b': { memoryMiB: 3072 } },
      instances: [
        { name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048 },
        { name: 'web2', primary: 'node-a', secondary: 'node-b', memoryMiB: 1024 },
      ],
    });
    const uptime = () => sim.snapshot().vms['node-a']?.web2?.uptimeMs ?? 0;
    const before = uptime();
    // web1 moved, a stale copy of web2 left over on node-b, then node-b killed.
    expect((await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock })).outcome).toBe(
      'migrated',
    );
    sim.perturb('staleCopy', 'web2');
    // Refused: a paused copy of web2 stands on node-b (it holds memory there until node-b dies).
    expect((await runMigration({ instance: 'web2' }, sim.effects, { clock: sim.clock })).outcome).toBe(
      'rejected',
    );
    sim.killNode('node-b');
    const world = sim.current();
    for (const node of Object.keys(world.nodes)) {
      const held = Object.values(world.vms[node] ?? {}).reduce((sum, vm) => sum + vm.memoryMiB, 0);
      expect(usedMemoryMiB(world, node), node).toBe(held);
    }
    // web2 kept running on node-a the whole time: its count grew with the clock.
    expect(uptime()).toBeGreaterThan(before);
    expect(uptime()).toBe(before + sim.clock.now());
  });
});
