import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  choosePlacement,
  EFFECT_NAMES,
  type EffectName,
  type InstanceConfig,
  MACHINES,
  META_MIB,
  type Outcome,
  type ProtocolOutput,
  volumeNames,
} from '../machines/index.js';
import { runFailover, runMachine } from '../src/runner/index.js';
import {
  createSimCluster,
  createWorld,
  type Fault,
  joiningPeer,
  linkConnected,
  restStateProblems,
  type SimCluster,
  type World,
  type WorldSpec,
} from '../src/sim/index.js';
import { outcomeProblems } from '../src/testing/oracle.js';
import { viewOfSim } from '../src/testing/world.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/** Issue 20: a new secondary for an instance (DRBD 8.4's break-before-make), on the simulated cluster. */

const THREE: WorldSpec = {
  nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} },
  instances: [
    { name: 'web1', primary: 'node-a', secondary: 'node-b', memoryMiB: 2048, disksMiB: [10240, 4096] },
  ],
};

async function replace(sim: SimCluster, input: { newSecondary?: string; cleanup?: boolean } = {}) {
  const said: string[] = [];
  const before = viewOfSim(sim);
  const out = await runMachine(
    MACHINES.changeSecondary,
    { instance: 'web1', newSecondary: 'node-c', ...input },
    sim.effects,
    {
      clock: sim.clock,
      onCall: (call) => said.push(`call ${call.effect} ${JSON.stringify(call.input)}`),
      onEvent: (e) => {
        if (e.type === 'feedback') said.push(`${e.level} ${e.message}`);
      },
    },
  );
  return { out, said, problems: [...outcomeProblems(out, before, viewOfSim(sim)), ...sim.world.violations] };
}

/** What node `node` holds of web1: its volumes and DRBD devices. */
function held(world: World, node: string): string[] {
  const names = ['web1-disk0', 'web1-disk1'];
  return [
    ...names
      .flatMap((r) => [volumeNames(r).data, volumeNames(r).meta])
      .filter((v) => world.storage[node]?.volumes[v] !== undefined),
    ...names.filter((r) => world.resources[r]?.local[node] !== undefined).map((r) => `device ${r}`),
  ];
}

describe('a replace whose resync wait ends with the new copy not connected (seen on real DRBD 8.4)', () => {
  // On real 8.4 the new node's before-resync-target handler refused and DRBD dropped the link: no
  // resync runs, so the wait ends, and the new copy is StandAlone and Inconsistent.
  const apartAfterTheWait = (sim: SimCluster) =>
    runMachine(MACHINES.changeSecondary, { instance: 'web1', newSecondary: 'node-c' }, sim.effects, {
      clock: sim.clock,
      onEvent: (e) => {
        if (e.type === 'state' && e.value === 'checkingNewCopy') sim.perturb('linkDown', 'web1');
      },
    });

  it('keeps the old copies and ends needsCleanup, naming each end’s view', async () => {
    const sim = createSimCluster(THREE);
    const out = await apartAfterTheWait(sim);
    expect(out.outcome).toBe('needsCleanup');
    expect(out.error).toMatch(
      /^The new copy of web1 on node-c is not in sync after the resync wait \(node-a sees web1-disk0 Connecting, UpToDate\/\w+; .*\); the old copies on node-b are kept; run 'drbd-migrate replace-secondary web1 --cleanup'/,
    );
    expect(held(sim.snapshot(), 'node-b')).toHaveLength(6);
  });
});

describe('replacing the secondary on the simulated cluster', () => {
  it('gives web1 node-c for node-b: node-c UpToDate, node-b empty, the guest never stopped, the window said before it opened', async () => {
    const sim = createSimCluster(THREE);
    const { out, said, problems } = await replace(sim);
    expect(out).toMatchObject({
      outcome: 'replaced',
      verdict: 'done',
      primaryNode: 'node-a',
      secondaryNode: 'node-c',
    });
    expect(problems).toEqual([]);
    const w = sim.snapshot();
    expect(w.config.instances.web1).toMatchObject({ secondaryNode: 'node-c', formerSecondary: null });
    expect(held(w, 'node-b')).toEqual([]);
    expect(held(w, 'node-c')).toHaveLength(6);
    for (const r of ['web1-disk0', 'web1-disk1'])
      expect(w.resources[r]?.links).toMatchObject([{ ends: ['node-a', 'node-c'], syncSource: null }]);
    expect(w.vms['node-a']?.web1?.state).toBe('running');
    // The one-copy window is announced before the first disconnect, and the old copies go only
    // after the resync is over.
    const announced = said.findIndex((l) => l.startsWith('warning DRBD 8.4 keeps two copies only'));
    const firstDisconnect = said.findIndex((l) => l.startsWith('call disconnectNet'));
    const lastSync = said.findLastIndex((l) => l.startsWith('call waitSync'));
    const removal = said.findIndex((l) => l.startsWith('call removeDisks'));
    expect(announced).toBeGreaterThanOrEqual(0);
    expect(announced).toBeLessThan(firstDisconnect);
    expect(lastSync).toBeLessThan(removal);
    expect(said[removal]).toContain('"node":"node-b"');
  });

  /**
   * A failure at each call of a healthy replace: before the commit it is undone (the old secondary
   * connected again and in sync, nothing left on node-c); after it the replace finishes or asks for
   * its repair; a failure to remove the old copies or to forget them is a warning.
   */
  const EXPECTED: Partial<Record<EffectName, Outcome[]>> = {
    getInstance: ['rejected'],
    listNodes: ['rejected'],
    takeoverLoad: ['rejected'],
    nodeInfo: ['rejected'],
    nodeStorage: ['rejected'],
    nodeDiskStatus: ['rejected'],
    createDisks: ['reverted'],
    // 1: the old secondary's side (it may be down: a warning); 2: the primary's (undone)
    disconnectNet: ['replaced', 'reverted'],
    // not taken (read back): undone
    setSecondaryNode: ['reverted'],
    attachNet: ['needsCleanup'],
    // the new copy checked after the resync: not known to be in sync, the old copies stay
    diskStatus: ['needsCleanup'],
    removeDisks: ['replaced'],
    forgetFormerSecondary: ['replaced'],
  };

  it('covers every call of a healthy replace', async () => {
    const sim = createSimCluster(THREE);
    await replace(sim);
    for (const effect of EFFECT_NAMES) {
      if (effect === 'waitSync') continue;
      expect([effect, sim.calls[effect]]).toEqual([effect, EXPECTED[effect]?.length ?? 0]);
    }
  });

  const points = Object.entries(EXPECTED).flatMap(([effect, outcomes]) =>
    outcomes.map((outcome, i) => ({ effect: effect as EffectName, call: i + 1, outcome })),
  );
  it.each(points)('an error in $effect call $call ends $outcome and tells the truth', async (p) => {
    const faults: Fault[] = [{ effect: p.effect, call: p.call, kind: 'error' }];
    const sim = createSimCluster(THREE, { faults });
    const { out, problems } = await replace(sim);
    expect(out.outcome).toBe(p.outcome);
    expect(problems).toEqual([]);
    const w = sim.snapshot();
    if (p.outcome === 'reverted' || p.outcome === 'rejected') {
      expect(held(w, 'node-c')).toEqual([]);
      expect(w.config.instances.web1?.secondaryNode).toBe('node-b');
    }
    if (p.outcome === 'needsCleanup') {
      expect(out.error).toMatch(/run 'drbd-migrate replace-secondary web1 --cleanup'/);
      // Its repair finishes the replace.
      sim.faults = [];
      const repaired = await replace(sim, { cleanup: true, newSecondary: undefined as never });
      expect(repaired.out.outcome).toBe('cleaned');
      expect(repaired.problems).toEqual([]);
      expect(held(sim.snapshot(), 'node-b')).toEqual([]);
    }
  });

  it('every waitSync failure after the commit ends asking for the repair, which finishes the replace', async () => {
    const sim = createSimCluster(THREE, { faults: [{ effect: 'waitSync', call: null, kind: 'error' }] });
    const { out, problems } = await replace(sim);
    expect(out.outcome).toBe('needsCleanup');
    expect(problems).toEqual([]);
    expect(out.left?.some((l) => l.startsWith('node-c: web1-disk0'))).toBe(true);
    sim.faults = [];
    const repaired = await replace(sim, { cleanup: true, newSecondary: undefined as never });
    expect(repaired.out.outcome).toBe('cleaned');
    expect(repaired.problems).toEqual([]);
  });

  it('a revert that cannot reconnect ends naming the node to clean, and that repair undoes the replace', async () => {
    const sim = createSimCluster(THREE, {
      faults: [
        { effect: 'setSecondaryNode', call: 1, kind: 'error' },
        { effect: 'attachNet', call: 1, kind: 'error' },
      ],
    });
    const { out, problems } = await replace(sim);
    expect(out.outcome).toBe('needsCleanup');
    expect(problems).toEqual([]);
    expect(out.error).toMatch(/run 'drbd-migrate replace-secondary web1 --cleanup --new-secondary node-c'/);
    sim.faults = [];
    const repaired = await replace(sim, { cleanup: true });
    expect(repaired.out.outcome).toBe('cleaned');
    expect(repaired.problems).toEqual([]);
    const w = sim.snapshot();
    expect(held(w, 'node-c')).toEqual([]);
    expect(w.config.instances.web1?.secondaryNode).toBe('node-b');
  });

  it('refuses, touching nothing, a drained node, one without room, one without N+1 memory, a degraded primary', async () => {
    const cases: [WorldSpec, string | null, RegExp][] = [
      [{ ...THREE, nodes: { ...THREE.nodes, 'node-c': { drained: true } } }, null, /node-c is drained/],
      [
        { ...THREE, nodes: { ...THREE.nodes, 'node-c': { diskMiB: 8192 } } },
        null,
        /node-c has 8192 MiB free in volume group xenvg; web1's disks need 14592 MiB/,
      ],
      [
        { ...THREE, nodes: { ...THREE.nodes, 'node-c': { memoryMiB: 1024 } } },
        null,
        /node-c has 1024 MiB of memory free; it needs 2048 MiB to run web1 if node-a fails \(N\+1\)/,
      ],
      [
        THREE,
        'primaryDegrades',
        /web1-disk0 is Inconsistent on node-a, web1-disk1 is Inconsistent on node-a \(a copy is never made from a degraded primary\)/,
      ],
    ];
    for (const [spec, perturbation, message] of cases) {
      const sim = createSimCluster(spec);
      if (perturbation === 'primaryDegrades') sim.perturb('primaryDegrades', 'web1');
      const before = JSON.stringify(sim.snapshot().storage);
      const { out, problems } = await replace(sim);
      expect(out.outcome).toBe('rejected');
      expect(out.error).toMatch(message);
      expect(out.error).toMatch(/nothing was touched$/);
      expect(problems).toEqual([]);
      expect(JSON.stringify(sim.snapshot().storage)).toBe(before);
    }
  });

  it('N+1 counts the instances the new node would already take over from the same primary', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': {}, 'node-b': {}, 'node-c': { memoryMiB: 4096 } },
      instances: [
        ...(THREE.instances ?? []),
        { name: 'db1', primary: 'node-a', secondary: 'node-c', memoryMiB: 3072 },
      ],
    });
    const { out } = await replace(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /node-c has 4096 MiB of memory free; it needs 5120 MiB to run web1 and the other instances it would take over if node-a fails/,
    );
  });

  it('a secondary lost for good: the replace goes on without it, the config keeps its name, and the repair removes its copies once it answers', async () => {
    const sim = createSimCluster(THREE);
    sim.killNode('node-b');
    const { out, problems } = await replace(sim);
    expect(out.outcome).toBe('replaced');
    expect(problems).toEqual([]);
    expect(out.warnings.join('\n')).toMatch(
      /Could not remove the old copies of web1 on node-b .*run 'drbd-migrate replace-secondary web1 --cleanup' once it answers/,
    );
    let w = sim.snapshot();
    expect(w.config.instances.web1).toMatchObject({ secondaryNode: 'node-c', formerSecondary: 'node-b' });
    expect(held(w, 'node-b')).toHaveLength(6);
    // A new replace is refused until the old one is finished.
    expect((await replace(sim, { newSecondary: 'node-b' })).out.error).toMatch(
      /has not finished .*run 'drbd-migrate replace-secondary web1 --cleanup' first/,
    );
    sim.reviveNode('node-b');
    const repaired = await replace(sim, { cleanup: true, newSecondary: undefined as never });
    expect(repaired.out.outcome).toBe('cleaned');
    expect(repaired.problems).toEqual([]);
    w = sim.snapshot();
    expect(held(w, 'node-b')).toEqual([]);
    expect(w.config.instances.web1?.formerSecondary).toBeNull();
  });

  it('the simulator refuses what a node would: no room in the volume group, a minor in use', async () => {
    const sim = createSimCluster({
      nodes: { 'node-a': {}, 'node-b': {}, 'node-c': { diskMiB: 1000 } },
      instances: THREE.instances ?? [],
    });
    const disk = { index: 0, resource: 'web1-disk0', minor: 0, sizeMiB: 10240 };
    const signal = new AbortController().signal;
    await expect(
      sim.effects.createDisks({ instance: 'web1', node: 'node-c', disks: [disk], timeoutMs: 60_000 }, signal),
    ).rejects.toThrow(
      /node-c: Volume group "xenvg" has insufficient free space \(1000 MiB\): 10368 MiB required/,
    );
    // db1's disk on node-c was given minor 0, which web1-disk0 has too.
    const world = createWorld({
      nodes: THREE.nodes ?? {},
      instances: [
        ...(THREE.instances ?? []),
        { name: 'db1', primary: 'node-c', secondary: 'node-b', disksMiB: [1024] },
      ],
    });
    world.resources['db1-disk0']!.minor = 0;
    world.config.instances.db1!.disks[0]!.minor = 0;
    const taken = createSimCluster(world);
    await expect(
      taken.effects.createDisks(
        { instance: 'web1', node: 'node-c', disks: [disk], timeoutMs: 60_000 },
        signal,
      ),
    ).rejects.toThrow(/node-c: Failure: \(161\) Minor or volume exists already .*db1-disk0/);
  });
});

describe('placement', () => {
  const self: InstanceConfig = {
    name: 'web1',
    primaryNode: 'node-a',
    secondaryNode: 'node-b',
    diskTemplate: 'drbd',
    disks: [{ index: 0, resource: 'web1-disk0', minor: 0, sizeMiB: 1024 }],
    memoryMiB: 1024,
    minMemoryMiB: 1024,
    migrationMode: 'live',
    adminState: 'up',
    formerSecondary: null,
    selfFenceMs: null,
    tiebreaker: null,
    drbdVersion: '8.4',
    thirdCopy: null,
    formerThirdCopy: null,
  };
  const storage = (freeMiB: number) => ({
    volumeGroup: 'xenvg',
    sizeMiB: 1e6,
    freeMiB,
    volumes: [],
    minors: [],
  });
  const node = (name: string, o: { drained?: boolean; free?: number; memory?: number | null } = {}) => ({
    node: name,
    config: { name, drained: o.drained ?? false },
    storage: storage(o.free ?? 1e6),
    memoryFreeMiB: o.memory === undefined ? 8192 : o.memory,
  });
  const other = (name: string, secondary: string): InstanceConfig => ({
    ...self,
    name,
    primaryNode: 'node-b',
    secondaryNode: secondary,
  });

  it('chooses the node with the fewest secondaries, and says why each other was passed over', () => {
    const placed = choosePlacement(
      self,
      [self, other('db1', 'node-c'), other('db2', 'node-c')],
      [
        node('node-c'),
        node('node-d'),
        node('node-e', { drained: true }),
        node('node-f', { free: 100 }),
        node('node-g', { memory: 512 }),
        node('node-h', { memory: null }),
      ],
    );
    expect(placed.chosen).toBe('node-d');
    expect(Object.fromEntries(placed.passedOver.map((p) => [p.node, p.why]))).toEqual({
      'node-c': 'holds 2 copies it does not run (secondary or third), node-d 0',
      'node-e': 'node-e is drained (nothing new is placed there)',
      'node-f':
        "node-f has 100 MiB free in volume group xenvg; web1's disks need 1152 MiB (data and 128 MiB of metadata each)",
      'node-g': 'node-g has 512 MiB of memory free; it needs 1024 MiB to run web1 if node-a fails (N+1)',
      'node-h': 'node-h did not answer (its free memory could not be read)',
    });
  });

  it('chooses nothing when no node fits', () => {
    expect(choosePlacement(self, [self], [node('node-c', { drained: true })])).toEqual({
      chosen: null,
      passedOver: [{ node: 'node-c', why: 'node-c is drained (nothing new is placed there)' }],
    });
  });
});

describe('replace-secondary through the CLI', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
    process.env.DRBD_MIGRATE_STATE_DIR = join(dir, 'state');
  });
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as World;

  it('chooses the node, says why not the others, replaces, and the world shows it', async () => {
    const file = join(dir, 'w.json');
    expect((await cli('init', '--world', file, '--nodes', '4', '--instances', '6', '--seed', '3')).code).toBe(
      0,
    );
    const before = read(file).config.instances.web1!;
    const r = await cli('replace-secondary', 'web1', '--world', file);
    expect(r.code).toBe(0);
    const chosen = /^# new secondary of web1: (node-[a-d])$/.exec(r.stdout[0] ?? '')?.[1];
    expect(chosen).toBeDefined();
    expect(r.stdout.filter((l) => l.startsWith('#   not '))).toHaveLength(1);
    expect(r.stdout).toContain('outcome: replaced');
    const after = read(file);
    expect(after.config.instances.web1).toMatchObject({
      primaryNode: before.primaryNode,
      secondaryNode: chosen,
      formerSecondary: null,
    });
    expect(held(after, before.secondaryNode!)).toEqual([]);
    expect(after.violations).toEqual([]);
  });

  it('node dies, its instance fails over, the node never returns, replace-secondary restores two copies; when it does return, rejoin removes its old copies', async () => {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file, '--nodes', '3', '--instances', '3', '--seed', '1');
    const before = read(file).config.instances.web1!;
    const dead = before.primaryNode;
    expect((await cli('power', dead, 'off', '--world', file)).code).toBe(0);
    expect((await cli('failover', 'web1', '--world', file, '--source-is-down', '--quiet')).code).toBe(0);
    const survivor = before.secondaryNode!;
    const r = await cli('replace-secondary', 'web1', '--world', file, '--quiet');
    expect(r.code, r.stderr.join('\n')).toBe(0);
    let w = read(file);
    const fresh = w.config.instances.web1!.secondaryNode!;
    expect([dead, survivor]).not.toContain(fresh);
    expect(w.config.instances.web1).toMatchObject({ primaryNode: survivor, formerSecondary: dead });
    expect(held(w, dead).length).toBeGreaterThan(0);
    expect((await cli('power', dead, 'on', '--world', file)).code).toBe(0);
    const back = await cli('rejoin', dead, '--world', file, '--quiet');
    expect(back.code, back.stderr.join('\n')).toBe(0);
    expect(back.stdout.join('\n')).toMatch(`cleaned: web1 is primary on ${survivor}, secondary on ${fresh}`);
    w = read(file);
    expect(held(w, dead)).toEqual([]);
    expect(w.config.instances.web1?.formerSecondary).toBeNull();
    expect(w.violations).toEqual([]);
  });

  it('a two-node cluster has no node for it: refused, saying so', async () => {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file);
    const r = await cli('replace-secondary', 'web1', '--world', file);
    expect(r.code).toBe(2);
    expect(r.stderr.join('\n')).toMatch(
      /no node can hold the new secondary of web1: the cluster has no third node/,
    );
  });

  it('--dry-run says the one-copy window and plans the calls, touching nothing', async () => {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file, '--nodes', '3', '--instances', '3');
    const before = readFileSync(file, 'utf8');
    const r = await cli(
      'replace-secondary',
      'web1',
      '--world',
      file,
      '--new-secondary',
      'node-c',
      '--dry-run',
    );
    expect(r.code, r.stderr.join('\n')).toBe(0);
    expect(r.stdout.join('\n')).toMatch(
      /DRBD 8\.4 keeps two copies only: from the disconnect of node-b until node-c is in sync/,
    );
    expect(r.stdout.join('\n')).toMatch(/createDisks.*node-c/);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('--json reports the new secondary', async () => {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file, '--nodes', '3', '--instances', '3');
    const r = await cli('replace-secondary', 'web1', '--world', file, '--new-secondary', 'node-c', '--json');
    const result = r.json().find((e: { type: string }) => e.type === 'result') as ProtocolOutput;
    expect(result).toMatchObject({ outcome: 'replaced', secondaryNode: 'node-c' });
  });
});

describe('DRBD 9: make-before-break on the simulated cluster', () => {
  const NINE: WorldSpec = {
    ...THREE,
    instances: (THREE.instances ?? []).map((i) => ({ ...i, drbd: '9' as const })),
  };
  /** The UpToDate copies of each disk the world holds, counted at every state the run enters. */
  async function replaceWatched(sim: SimCluster, input: { cleanup?: boolean; newSecondary?: string } = {}) {
    const least: number[] = [];
    const said: string[] = [];
    const count = () =>
      ['web1-disk0', 'web1-disk1'].map((name) => {
        const r = sim.world.resources[name]!;
        const own = r.links[0]!.ends.filter((n) => r.local[n]?.diskState === 'UpToDate').length;
        const j = joiningPeer(r);
        const joined =
          j !== null && linkConnected(j.link) && r.local[j.node]?.diskState === 'UpToDate' ? 1 : 0;
        return own + joined;
      });
    const before = viewOfSim(sim);
    const out = await runMachine(
      MACHINES.changeSecondary,
      { instance: 'web1', newSecondary: 'node-c', ...input },
      sim.effects,
      {
        clock: sim.clock,
        onCall: (call) => {
          said.push(`call ${call.effect} ${JSON.stringify(call.input)}`);
          count().forEach((n, i) => {
            least[i] = Math.min(least[i] ?? n, n);
          });
        },
        onEvent: (e) => {
          if (e.type === 'feedback') said.push(`${e.level} ${e.message}`);
        },
      },
    );
    return {
      out,
      said,
      least,
      problems: [...outcomeProblems(out, before, viewOfSim(sim)), ...sim.world.violations],
    };
  }

  it('adds node-c beside node-b, commits once node-c is UpToDate, then removes node-b: two UpToDate copies at every call, no window announced', async () => {
    const sim = createSimCluster(NINE);
    const { out, said, least, problems } = await replaceWatched(sim);
    expect(out).toMatchObject({ outcome: 'replaced', primaryNode: 'node-a', secondaryNode: 'node-c' });
    expect(problems).toEqual([]);
    expect(least).toEqual([2, 2]);
    expect(said.some((l) => l.includes('DRBD 8.4 keeps two copies only'))).toBe(false);
    expect(said).toContain(
      'info * adding node-c as a peer of node-a beside node-b (DRBD 9: web1 keeps its two copies throughout)',
    );
    // Never a disconnect of node-b: it leaves by del-peer, after the commit, after node-c's resync.
    expect(said.some((l) => l.startsWith('call disconnectNet'))).toBe(false);
    const commit = said.findIndex((l) => l.startsWith('call setSecondaryNode'));
    const lastSync = said.findLastIndex((l) => l.startsWith('call waitSync'));
    const release = said.findIndex((l) => l.startsWith('call removePeer'));
    expect(lastSync).toBeLessThan(commit);
    expect(commit).toBeLessThan(release);
    expect(said[release]).toContain('"node":"node-a","peer":"node-b"');
    const w = sim.snapshot();
    expect(held(w, 'node-b')).toEqual([]);
    for (const r of ['web1-disk0', 'web1-disk1'])
      expect(w.resources[r]?.links).toMatchObject([{ ends: ['node-a', 'node-c'], syncSource: null }]);
    expect(w.vms['node-a']?.web1?.state).toBe('running');
  });

  it('a resync that fails before the commit is undone: node-c removed as a peer and emptied, node-b never left', async () => {
    const sim = createSimCluster(NINE, { faults: [{ effect: 'waitSync', call: 2, kind: 'error' }] });
    const { out, least, problems } = await replaceWatched(sim);
    expect(out.outcome).toBe('reverted');
    expect(out.error).toMatch(/Cannot resync disks/);
    expect(problems).toEqual([]);
    expect(least).toEqual([2, 2]);
    const w = sim.snapshot();
    expect(held(w, 'node-c')).toEqual([]);
    expect(w.config.instances.web1).toMatchObject({ secondaryNode: 'node-b', formerSecondary: null });
    for (const r of ['web1-disk0', 'web1-disk1'])
      expect(w.resources[r]?.links).toMatchObject([{ ends: ['node-a', 'node-b'] }]);
  });

  it('refuses a resource with quorum whose tiebreaker the cluster file does not name, touching nothing', async () => {
    const sim = createSimCluster({
      ...NINE,
      instances: (NINE.instances ?? []).map((i) => ({ ...i, quorum: true })),
    });
    const { out, said } = await replaceWatched(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /web1-disk0, web1-disk1 have quorum on node-a, but the cluster file names no tiebreaker: the new peer would join node-a alone and count in no majority/,
    );
    expect(said.filter((l) => l.startsWith('call createDisks'))).toEqual([]);
  });

  describe('with a tiebreaker the config names (node-d, diskless, quorum majority)', () => {
    const withTiebreaker = (faults: Fault[] = []) =>
      createSimCluster(
        {
          ...NINE,
          nodes: { ...NINE.nodes, 'node-d': {} },
          instances: (NINE.instances ?? []).map((i) => ({
            ...i,
            quorum: true,
            tiebreaker: 'node-d',
            selfFenceMs: 30_000,
          })),
        },
        { faults },
      );
    const peersOfTiebreaker = (sim: SimCluster) =>
      ['web1-disk0', 'web1-disk1'].map((r) => [...sim.world.resources[r]!.tiebreakerPeers].sort());

    it('refuses a new node that would not stop web1 on losing quorum (no quorum-lost handler): nothing is made there, the pair as it was', async () => {
      const sim = withTiebreaker();
      sim.world.nodes['node-c']!.selfFences = false;
      const { out } = await replaceWatched(sim);
      // As any refusal of createDisks: the undo finds nothing of node-c to take back.
      expect(out.outcome).toBe('reverted');
      expect(out.error).toMatch(
        /node-c would not stop web1 on losing DRBD quorum: no quorum-lost handler runs there for web1-disk0 .*give node-c the resource file with the quorum-lost handler/,
      );
      expect(sim.world.resources['web1-disk0']!.local['node-c']).toBeUndefined();
      expect(sim.world.config.instances.web1?.secondaryNode).toBe('node-b');
      expect(peersOfTiebreaker(sim)).toEqual([
        ['node-a', 'node-b'],
        ['node-a', 'node-b'],
      ]);
      expect(restStateProblems(sim.current(), 'web1')).toEqual([]);
    });

    it('node-c joins node-a and the tiebreaker before the commit, node-b leaves both after: quorum carries over, so a cut-off node-a fails over to node-c without the operator’s word', async () => {
      const sim = withTiebreaker();
      const { out, said, least, problems } = await replaceWatched(sim);
      expect(out).toMatchObject({ outcome: 'replaced', secondaryNode: 'node-c' });
      expect(problems).toEqual([]);
      expect(least).toEqual([2, 2]);
      const at = (line: string) => said.indexOf(line);
      const commit = said.findIndex((l) => l.startsWith('call setSecondaryNode'));
      expect(at('info * adding node-c as a peer of node-d, the tiebreaker')).toBeGreaterThan(-1);
      expect(at('info * adding node-c as a peer of node-d, the tiebreaker')).toBeLessThan(commit);
      expect(at('info * removing node-b as a peer of node-d, the tiebreaker')).toBeGreaterThan(commit);
      expect(peersOfTiebreaker(sim)).toEqual([
        ['node-a', 'node-c'],
        ['node-a', 'node-c'],
      ]);
      // The proof the rewire is for: node-a cut off from everything, node-c holds quorum with node-d.
      sim.perturb('sourceIsolated', 'web1');
      const over = await runFailover({ instance: 'web1' }, sim.effects, { clock: sim.clock });
      expect(over.error ?? null).toBeNull();
      expect(over.outcome).toBe('failedOver');
      expect(sim.world.vms['node-c']?.web1?.state).toBe('running');
      expect(sim.world.violations).toEqual([]);
    });

    it('refuses, touching nothing, while the tiebreaker does not reach node-a (it could not vote for node-c)', async () => {
      const sim = withTiebreaker();
      sim.killNode('node-d');
      const { out, said } = await replaceWatched(sim);
      expect(out.outcome).toBe('rejected');
      expect(out.error).toMatch(
        /Cannot read the disks of node-d, the tiebreaker .*: the new node must join it too; nothing was touched/,
      );
      expect(said.filter((l) => l.startsWith('call createDisks'))).toEqual([]);
    });

    it('a tiebreaker the new node cannot join undoes the replace: node-c leaves node-a and node-d, nothing left there', async () => {
      const sim = withTiebreaker([{ effect: 'attachNet', call: 2, kind: 'error' }]);
      const { out, problems, least } = await replaceWatched(sim);
      expect(out.outcome).toBe('reverted');
      expect(out.error).toMatch(/Cannot add node-c as a peer of node-d, the tiebreaker/);
      expect(problems).toEqual([]);
      expect(least).toEqual([2, 2]);
      expect(peersOfTiebreaker(sim)).toEqual([
        ['node-a', 'node-b'],
        ['node-a', 'node-b'],
      ]);
    });

    it('the tiebreaker lost after the commit: needsCleanup, then --cleanup removes node-b there', async () => {
      const sim = withTiebreaker([{ effect: 'removePeer', call: 2, kind: 'error' }]);
      const first = await replaceWatched(sim);
      expect(first.out.outcome).toBe('needsCleanup');
      expect(first.out.error).toMatch(
        /Cannot remove node-b as a peer of node-d, the tiebreaker .*run 'drbd-migrate replace-secondary web1 --cleanup'/,
      );
      sim.faults = [];
      const repair = await replaceWatched(sim, { cleanup: true });
      expect(repair.out.outcome).toBe('cleaned');
      expect(repair.problems).toEqual([]);
      expect(peersOfTiebreaker(sim)).toEqual([
        ['node-a', 'node-c'],
        ['node-a', 'node-c'],
      ]);
    });
  });

  it('names the tiebreaker, and never makes it the new secondary', async () => {
    const sim = createSimCluster({
      ...NINE,
      nodes: { ...NINE.nodes, 'node-d': {} },
      instances: (NINE.instances ?? []).map((i) => ({ ...i, quorum: true, tiebreaker: 'node-c' })),
    });
    const onTiebreaker = await replaceWatched(sim, { newSecondary: 'node-c' });
    expect(onTiebreaker.out.outcome).toBe('rejected');
    expect(onTiebreaker.out.error).toMatch(
      /node-c is the tiebreaker of web1's resources \(diskless, the third vote\): a copy there would leave them two votes; name another node/,
    );
    // Refused from the config alone: no node is asked anything.
    expect(
      onTiebreaker.said.filter((l) => l.startsWith('call ') && !l.startsWith('call getInstance')),
    ).toEqual([]);
  });
});

describe('a new copy with internal metadata (the cluster file’s metaDisk)', () => {
  it('makes one data volume, as large as the data and metadata volumes together, and no metadata volume', async () => {
    const world = createWorld(THREE);
    for (const d of world.config.instances.web1!.disks) d.metaDisk = 'internal';
    const sim = createSimCluster(world);
    const { out, problems } = await replace(sim);
    expect(out.outcome).toBe('replaced');
    expect(problems).toEqual([]);
    expect(sim.snapshot().storage['node-c']?.volumes).toEqual({
      [volumeNames('web1-disk0').data]: 10240 + META_MIB,
      [volumeNames('web1-disk1').data]: 4096 + META_MIB,
    });
  });
});
