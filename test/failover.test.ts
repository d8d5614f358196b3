import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { saveWorld } from '../src/cli/worldFile.js';
import {
  createSimCluster,
  createWorld,
  DEFAULT_LIMITS,
  DEMO_SPEC,
  restStateProblems,
  runFailover,
  runMigration,
  runRejoin,
  type World,
} from '../src/index.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/** Issue 11 on the simulated cluster: the whole life cycle, and every refusal rule 7 asks for. */

let dir: string;
beforeEach(() => {
  dir = tempDir();
  process.env.DRBD_MIGRATE_STATE_DIR = join(dir, 'state');
});
const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as World;

describe('node dies → failover → node returns → rejoin → migrate back (CLI, simulated cluster)', () => {
  it('runs the life cycle with every safety rule held', async () => {
    const file = join(dir, 'w.json');
    expect((await cli('init', '--world', file)).code).toBe(0);
    expect((await cli('power', 'node-a', 'off', '--world', file)).code).toBe(0);

    // Without the operator's word, a silent primary is not taken for dead.
    const refused = await cli('failover', 'web1', '--world', file, '--quiet');
    expect(refused.code).toBe(2);
    expect(refused.stderr[0]).toMatch(
      /node-a does not answer: if it is powered off, say so with --source-is-down/,
    );

    const failed = await cli('failover', 'web1', '--world', file, '--source-is-down', '--quiet');
    expect(failed.code).toBe(0);
    expect(failed.stdout[0]).toBe('failedOver: web1 is primary on node-b');
    let w = read(file);
    expect(Object.keys(w.vms['node-b'] ?? {})).toEqual(['web1']);

    // A rejoin of a node that is still down touches nothing.
    const early = await cli('rejoin', 'node-a', '--world', file, '--quiet');
    expect(early.code).toBe(2);
    expect(early.stderr[0]).toMatch(/node-a does not answer .*boot it first/);

    expect((await cli('power', 'node-a', 'on', '--world', file)).code).toBe(0);
    const back = await cli('rejoin', 'node-a', '--world', file, '--quiet');
    expect(back.code).toBe(0);
    expect(back.stdout).toContain('rejoined: web1 is primary on node-b');
    w = read(file);
    for (const r of Object.values(w.resources)) {
      expect(r.local['node-a']).toMatchObject({ role: 'Secondary', diskState: 'UpToDate' });
      expect(r.local['node-b']).toMatchObject({ role: 'Primary', diskState: 'UpToDate' });
      expect(r.links[0]?.connection).toEqual({ 'node-a': 'Connected', 'node-b': 'Connected' });
    }

    const home = await cli('migrate', 'web1', '--world', file, '--quiet');
    expect(home.code).toBe(0);
    expect(home.stdout[0]).toBe('migrated: web1 is primary on node-a');
    expect(read(file).violations).toEqual([]);
  });

  it('demo --failover shows it end to end', async () => {
    const r = await cli('demo', '--failover', '--fast');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('outcome: failedOver');
    expect(r.stdout).toContain('outcome: rejoined');
    expect(r.stdout.at(-1)).toBe('safety rules: all held');
  });

  it('a failover killed mid-way is resumed from its journal', async () => {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file);
    await cli('power', 'node-a', 'off', '--world', file);
    // In-process the kill is a thrown run; the journal is what the resume reads either way.
    const { spawnSync } = await import('node:child_process');
    const killed = spawnSync(
      process.execPath,
      ['dist/src/cli/main.js', 'failover', 'web1', '--world', file, '--source-is-down', '--kill-at', '6'],
      { encoding: 'utf8', env: process.env },
    );
    expect(killed.signal).toBe('SIGKILL');
    const resumed = await cli('resume', 'web1', '--world', file, '--quiet');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout[0]).toBe('failedOver: web1 is primary on node-b');
    expect(read(file).violations).toEqual([]);
  });
});

describe('a dead source is a decision, not a guess (rule 7)', () => {
  it('refuses --source-is-down while the source answers and runs the instance; nothing touched', async () => {
    const file = join(dir, 'w.json');
    await saveWorld(file, createWorld(DEMO_SPEC));
    const before = readFileSync(file, 'utf8');
    const r = await cli('failover', 'web1', '--world', file, '--source-is-down');
    expect(r.code).toBe(2);
    expect(r.stderr[0]).toMatch(/node-a is said to be down, but it answers and web1 is running there/);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('refuses when the source is only cut off: its DRBD peer is still connected', async () => {
    const sim = createSimCluster();
    sim.perturb('sourceUnreachable', 'web1');
    const out = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /node-b is still Connected to node-a on web1-disk0, web1-disk1: node-a is not down/,
    );
    expect(sim.world.vms['node-a']?.web1?.state).toBe('running');
    expect(sim.world.vms['node-b']?.web1).toBeUndefined();
  });

  it('refuses to promote a target whose data is not UpToDate, saying what to do', async () => {
    const sim = createSimCluster({
      instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, outOfSyncMiB: 100 })),
    });
    sim.killNode('node-a');
    const out = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /Disk web1-disk0 is Inconsistent, web1-disk1 is Inconsistent on node-b: its data is not known to be current/,
    );
  });

  it('refuses on shared storage, where nothing but silence could tell', async () => {
    const sim = createSimCluster({
      instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, diskTemplate: 'blockdev' as const })),
    });
    sim.killNode('node-a');
    const out = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(/with shared storage nothing else can confirm it is down/);
  });

  it('fails over a live source by stopping it first (no word needed)', async () => {
    const sim = createSimCluster();
    const out = await runFailover({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(out).toMatchObject({ outcome: 'failedOver', primaryNode: 'node-b' });
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    expect(sim.world.violations).toEqual([]);
  });
});

describe('the returning node resyncs from the survivor, never the other way', () => {
  it('resolves a split brain by discarding what the returning node wrote alone', async () => {
    const sim = createSimCluster();
    // Cut off first, it wrote on its own, then died: its return is a split brain.
    sim.killNode('node-a', { wroteAlone: true });
    await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, { clock: sim.clock });
    sim.reviveNode('node-a');
    const r0 = sim.world.resources['web1-disk0']!;
    expect(r0.links[0]!.dirtyKiB['node-a']).toBeGreaterThan(0);
    const out = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(out.outcome).toBe('rejoined');
    const r = sim.world.resources['web1-disk0']!;
    expect(r.links[0]!.dirtyKiB).toEqual({});
    expect(r.local['node-b']?.role).toBe('Primary');
    expect(sim.world.violations).toEqual([]);
    const home = await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(home).toMatchObject({ outcome: 'migrated', primaryNode: 'node-a' });
  });

  it('stops a stale copy found on the returning node', async () => {
    const sim = createSimCluster();
    sim.killNode('node-a');
    await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, { clock: sim.clock });
    sim.reviveNode('node-a');
    sim.perturb('staleCopy', 'web1');
    const out = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(out.outcome).toBe('rejoined');
    expect(sim.world.vms['node-a']?.web1).toBeUndefined();
  });

  it('says so when no instance has the node as its secondary', async () => {
    const file = join(dir, 'w.json');
    await saveWorld(file, createWorld(DEMO_SPEC));
    const r = await cli('rejoin', 'node-a', '--world', file);
    expect(r.code).toBe(0);
    expect(r.stdout).toEqual([
      `no instance in ${file} has node-a as its secondary or third copy: nothing to rejoin`,
    ]);
    expect((await cli('rejoin', 'node-x', '--world', file)).stderr[0]).toMatch(/node-x is not a node of/);
  });
});

describe('--dry-run of a failover on real nodes', () => {
  it('plans it on a copy whose source is down, with the exact commands', async () => {
    const r = await cli(
      'failover',
      'web1',
      '--cluster',
      'docs/cluster.example.yaml',
      '--source-is-down',
      '--dry-run',
    );
    expect(r.code).toBe(0);
    const text = r.stdout.join('\n');
    expect(text).toMatch(/on a copy of it with node-a down/);
    expect(text).toContain('probeNode on node-a\n  node-a$ true');
    expect(text).toContain(
      'nodeDiskStatus on node-b\n  node-b$ /lib/drbd/drbdsetup-84 events2 --now --statistics web1-disk0',
    );
    expect(text).toContain('openDisks on node-b\n  node-b$ /lib/drbd/drbdsetup-84 primary 0');
    expect(text).toMatch(/startInstance on node-b\n {2}node-b qmp>/);
    expect(r.stdout.at(-1)).toBe('# planned: failedOver: web1 is primary on node-b');
  });
});

describe('migrate --allow-failover (Ganeti fallback, decided in the prerequisites only)', () => {
  it('an instance that is not running: refused naming the option; with it, failed over', async () => {
    const file = join(dir, 'w.json');
    await saveWorld(
      file,
      createWorld({ instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', running: false }] }),
    );
    const refused = await cli('migrate', 'web1', '--world', file, '--quiet');
    expect(refused.code).toBe(2);
    expect(refused.stderr[0]).toMatch(/not running on node-a; .*migrate --allow-failover/);
    const moved = await cli('migrate', 'web1', '--world', file, '--allow-failover', '--quiet');
    expect(moved.code).toBe(0);
    expect(moved.stdout[0]).toBe('failedOver: web1 is primary on node-b');
    expect(read(file).violations).toEqual([]);
  });

  it('never falls back from a running instance', async () => {
    const sim = createSimCluster();
    const out = await runMigration({ instance: 'web1', allowFailover: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(out.outcome).toBe('migrated');
  });
});

describe('what a failover and a rejoin report', () => {
  it('says nothing of live or not: they copy no memory (a migration does)', async () => {
    const sim = createSimCluster();
    const failedOver = await runFailover({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(failedOver).toMatchObject({ outcome: 'failedOver', live: null });
    const back = await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(back).toMatchObject({ outcome: 'migrated', live: true });
    sim.killNode('node-a');
    const again = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(again).toMatchObject({ outcome: 'failedOver', live: null });
    sim.reviveNode('node-a');
    const rejoined = await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(rejoined).toMatchObject({ outcome: 'rejoined', live: null });
  });
});

describe('--ignore-consistency (Ganeti: for a degraded target of a dead source)', () => {
  it('is refused while the source answers: its writes since the link went down would be lost', async () => {
    const sim = createSimCluster();
    sim.perturb('linkDown', 'web1');
    const before = sim.snapshot();
    const out = await runFailover({ instance: 'web1', ignoreConsistency: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(out).toMatchObject({ outcome: 'rejected', primaryNode: 'node-a' });
    expect(out.error).toMatch(/which answers: --ignore-consistency is only for a source that is down/);
    const after = sim.snapshot();
    expect(after.config).toEqual(before.config);
    expect(after.vms['node-a']?.web1?.state).toBe('running');
  });

  it('with the source down, goes on and warns what may be lost', async () => {
    const sim = createSimCluster();
    sim.killNode('node-a');
    const out = await runFailover(
      { instance: 'web1', sourceIsDown: true, ignoreConsistency: true },
      sim.effects,
      {
        clock: sim.clock,
      },
    );
    expect(out.outcome).toBe('failedOver');
    expect(out.warnings).toContainEqual(expect.stringMatching(/--ignore-consistency: whatever node-a wrote/));
  });
});

describe('a rejoin of a node that is already the secondary', () => {
  it('finds nothing to do and says so: no demotion, no disconnect, no resync', async () => {
    const sim = createSimCluster();
    const feedback: string[] = [];
    const out = await runRejoin({ instance: 'web1' }, sim.effects, {
      clock: sim.clock,
      onEvent: (e) => {
        if (e.type === 'feedback') feedback.push(e.message);
      },
    });
    expect(out).toMatchObject({ outcome: 'rejoined', primaryNode: 'node-a' });
    expect(feedback).toContain(
      '* node-b is already the secondary of web1, connected and in sync: nothing to do',
    );
    for (const acting of ['closeDisks', 'disconnectNet', 'attachNet', 'shutdownInstance'] as const)
      expect(sim.calls[acting], acting).toBe(0);
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
  });
});

describe('a failover that stopped after its commit is repaired by failover --cleanup (issue 22 A.2)', () => {
  /** node-a is powered off and the failover from it fails at every call of `effect`. */
  async function failoverFailingAt(effect: string) {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file);
    await cli('power', 'node-a', 'off', '--world', file);
    const failed = await cli(
      'failover',
      'web1',
      '--world',
      file,
      '--source-is-down',
      '--fail',
      effect,
      '--quiet',
    );
    return { file, failed };
  }

  async function stoppedAfterCommit() {
    const { file, failed } = await failoverFailingAt('openDisks');
    expect(failed.code).toBe(3);
    // The advice is the command that works, not the migration's cleanup.
    expect(failed.stdout).toContain(
      `next: inspect the nodes, then run 'drbd-migrate failover web1 --world ${file} --cleanup --source-is-down'`,
    );
    expect(read(file).config.instances.web1?.primaryNode).toBe('node-b');
    return file;
  }

  it('with the old primary still down: the instance comes up where the config names it', async () => {
    const file = await stoppedAfterCommit();
    const r = await cli('failover', 'web1', '--world', file, '--cleanup', '--source-is-down', '--quiet');
    expect(r.code).toBe(0);
    expect(r.stdout[0]).toBe('failedOver: web1 is primary on node-b');
    const w = read(file);
    expect(Object.keys(w.vms['node-b'] ?? {})).toEqual(['web1']);
    expect(w.violations).toEqual([]);
  });

  it('with the old primary back and unconnected: refused, saying to rejoin it first; then both finish', async () => {
    const file = await stoppedAfterCommit();
    await cli('power', 'node-a', 'on', '--world', file);
    const before = readFileSync(file, 'utf8');
    const early = await cli('failover', 'web1', '--world', file, '--cleanup', '--quiet');
    expect(early.code).toBe(2);
    expect(early.stderr[0]).toMatch(
      /not in sync with node-a, which answers again: take it back first with 'drbd-migrate rejoin node-a'/,
    );
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect((await cli('rejoin', 'node-a', '--world', file, '--quiet')).code).toBe(0);
    const r = await cli('failover', 'web1', '--world', file, '--cleanup', '--quiet');
    expect(r.code).toBe(0);
    const w = read(file);
    expect(Object.keys(w.vms['node-b'] ?? {})).toEqual(['web1']);
    expect(w.violations).toEqual([]);
  });

  it('before its commit the advice is the failover again, and it works', async () => {
    const { file, failed } = await failoverFailingAt('setPrimaryNode');
    expect(failed.code).toBe(3);
    expect(read(file).config.instances.web1?.primaryNode).toBe('node-a');
    expect(failed.stdout).toContain(
      `next: inspect the nodes, then run 'drbd-migrate failover web1 --world ${file} --source-is-down'`,
    );
    const again = await cli('failover', 'web1', '--world', file, '--source-is-down', '--quiet');
    expect(again.code).toBe(0);
    expect(again.stdout[0]).toBe('failedOver: web1 is primary on node-b');
  });

  it('the repair never stops an instance that runs on the node the config does not name', async () => {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file);
    const w = read(file);
    // The config says node-b, yet web1 runs on node-a (a hand edit, a half-done repair by hand).
    const config = w.config.instances.web1!;
    [config.primaryNode, config.secondaryNode] = ['node-b', 'node-a'];
    await saveWorld(file, w);
    const before = readFileSync(file, 'utf8');
    const r = await cli('failover', 'web1', '--world', file, '--cleanup', '--quiet');
    expect(r.code).toBe(2);
    expect(r.stderr[0]).toMatch(
      /web1 is running on node-a, but the config names node-b: the repair does not stop a running instance/,
    );
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('is safe on a healthy instance: nothing moves', async () => {
    const file = join(dir, 'w.json');
    await cli('init', '--world', file);
    const r = await cli('failover', 'web1', '--world', file, '--cleanup', '--quiet');
    expect(r.code).toBe(0);
    expect(r.stdout[0]).toBe('failedOver: web1 is primary on node-a');
    const w = read(file);
    expect(Object.keys(w.vms['node-a'] ?? {})).toEqual(['web1']);
    expect(w.vms['node-b']?.web1).toBeUndefined();
    expect(w.violations).toEqual([]);
  });
});

describe('the rejoin says which way the resync goes, and what is discarded before it is (issue 22 A.5)', () => {
  const said = () => {
    const lines: string[] = [];
    return {
      lines,
      onEvent: (e: { type: string; message?: string }) => {
        if (e.type === 'feedback' && e.message !== undefined) lines.push(e.message);
      },
    };
  };

  it('the survivor never ran the instance: the returning node has the newer data, nothing is lost', async () => {
    const sim = createSimCluster({}, { faults: [{ effect: 'openDisks', call: 1, kind: 'error' }] });
    sim.killNode('node-a', { wroteAlone: true });
    const over = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(over.outcome).toBe('needsCleanup');
    expect(sim.world.config.instances.web1?.primaryNode).toBe('node-b');
    sim.reviveNode('node-a');
    const told = said();
    const back = await runRejoin({ instance: 'web1' }, sim.effects, {
      clock: sim.clock,
      onEvent: told.onEvent,
    });
    expect(back.outcome).toBe('rejoined');
    expect(told.lines.join('\n')).toMatch(
      /\* reconnecting; node-a wrote [\d.]+ MiB while apart that node-b never had, and node-b has not written since: node-b resyncs from node-a \(the newer data\); nothing is lost/,
    );
    expect(back.warnings.join('\n')).not.toMatch(/discarded/);
    // Nothing of node-a's was thrown away: no node holds writes the other lacks.
    for (const r of Object.values(sim.world.resources)) expect(r.links[0]!.dirtyKiB).toEqual({});
    const repaired = await runFailover({ instance: 'web1', cleanup: true }, sim.effects, {
      clock: sim.clock,
    });
    expect(repaired.outcome).toBe('failedOver');
    expect(sim.world.vms['node-b']?.web1?.state).toBe('running');
    expect(sim.world.violations).toEqual([]);
  });

  it('both wrote while apart: the returning node’s writes are discarded, and the warning comes before the reconnect', async () => {
    const sim = createSimCluster();
    sim.killNode('node-a', { wroteAlone: true });
    expect(
      (await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, { clock: sim.clock }))
        .outcome,
    ).toBe('failedOver');
    sim.reviveNode('node-a');
    const order: string[] = [];
    const back = await runRejoin({ instance: 'web1' }, sim.effects, {
      clock: sim.clock,
      onEvent: (e) => {
        if (e.type === 'feedback') order.push(e.level === 'warning' ? `warning: ${e.message}` : e.message);
      },
    });
    expect(back.outcome).toBe('rejoined');
    const warned = order.findIndex((l) =>
      /^warning: node-a wrote [\d.]+ MiB while apart .*split brain.*discarded/.test(l),
    );
    const reconnect = order.indexOf(
      '* reconnecting; node-a discards what it wrote alone and resyncs from node-b',
    );
    expect(warned).toBeGreaterThanOrEqual(0);
    expect(reconnect).toBeGreaterThan(warned);
    expect(sim.world.violations).toEqual([]);
  });

  it('a node that wrote nothing alone resyncs from the survivor, said as it is', async () => {
    const sim = createSimCluster();
    sim.killNode('node-a');
    await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, { clock: sim.clock });
    sim.reviveNode('node-a');
    const told = said();
    expect(
      (await runRejoin({ instance: 'web1' }, sim.effects, { clock: sim.clock, onEvent: told.onEvent }))
        .outcome,
    ).toBe('rejoined');
    expect(told.lines).toContain('* reconnecting; node-a wrote nothing while apart and resyncs from node-b');
  });
});

describe('the survey looks at each node on its own (issue 22 A.3)', () => {
  it('a dead source leaves the survivor described, and is not waited a step’s deadline', async () => {
    const sim = createSimCluster({}, { faults: [{ effect: 'startInstance', call: null, kind: 'error' }] });
    sim.killNode('node-a');
    const deadlines: Record<string, number> = {};
    const out = await runFailover({ instance: 'web1', sourceIsDown: true }, sim.effects, {
      clock: sim.clock,
      onCall: (call) => {
        const input = call.input as { node?: string; timeoutMs: number };
        if (call.phase === 'start' && call.effect === 'nodeDiskStatus' && input.node !== undefined)
          deadlines[input.node] = input.timeoutMs;
      },
    });
    expect(out.outcome).toBe('needsCleanup');
    expect(out.left).toEqual([
      'instance web1 runs on none of node-b; node-a did not answer',
      'could not read the disk status on node-a',
      'node-b: web1-disk0 Primary Connecting UpToDate/DUnknown',
      'node-b: web1-disk1 Primary Connecting UpToDate/DUnknown',
    ]);
    // The node that did not answer the look gets a probe's deadline, the one that did a step's.
    expect(deadlines['node-a']).toBe(20_000);
    expect(deadlines['node-b']).toBe(DEFAULT_LIMITS.stepTimeoutMs);
  });
});

describe('DRBD 9 quorum as the proof that a silent source cannot write (rule 7 without the operator’s word)', () => {
  const quorate = (extra: { selfFenceMs?: number | null; quorum?: boolean; tiebreaker?: string } = {}) =>
    createSimCluster({
      ...(extra.tiebreaker === undefined
        ? {}
        : { nodes: { ...DEMO_SPEC.nodes, [extra.tiebreaker]: { memoryMiB: 1024 } } }),
      instances: (DEMO_SPEC.instances ?? []).map((i) => ({
        ...i,
        quorum: extra.quorum ?? true,
        selfFenceMs: extra.selfFenceMs === undefined ? 30_000 : extra.selfFenceMs,
        ...(extra.tiebreaker === undefined ? {} : { tiebreaker: extra.tiebreaker }),
      })),
    });
  const failover = (sim: ReturnType<typeof createSimCluster>, sourceIsDown = false) =>
    runFailover({ instance: 'web1', sourceIsDown }, sim.effects, { clock: sim.clock });

  it('an isolated source: the target holds quorum, the source’s handler stops the guest, then it starts on the target', async () => {
    const sim = quorate();
    sim.perturb('sourceIsolated', 'web1');
    const start = sim.world.time;
    const out = await failover(sim);
    expect(out.error ?? null).toBeNull();
    expect(out.outcome).toBe('failedOver');
    expect(out.warnings.join('\n')).toMatch(
      /node-a does not answer and node-b holds DRBD quorum without it: node-a cannot write; its quorum-lost handler stops web1 there within 30000 ms/,
    );
    expect(sim.world.violations).toEqual([]);
    expect(sim.world.vms['node-a']?.web1).toBeUndefined();
    expect(sim.world.vms['node-b']?.web1?.state).toBe('running');
    expect(sim.world.time - start).toBeGreaterThanOrEqual(30_000);
    // Without quorum the isolated source could not write: nothing of its own to discard later.
    expect(Object.values(sim.world.resources).every((r) => (r.links[0]!.dirtyKiB['node-a'] ?? 0) === 0)).toBe(
      true,
    );
  });

  it('a source that lost power: the same proof, without waiting for the operator', async () => {
    const sim = quorate();
    sim.killNode('node-a');
    const out = await failover(sim);
    expect(out.outcome).toBe('failedOver');
    expect(sim.world.violations).toEqual([]);
  });

  it('refuses without a self-fence bound in the config: quorum proves it cannot write, not that it stopped', async () => {
    const sim = quorate({ selfFenceMs: null });
    sim.perturb('sourceIsolated', 'web1');
    const out = await failover(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(/node-a does not answer: if it is powered off, say so with --source-is-down/);
  });

  it('refuses where the resources have no quorum: silence proves nothing', async () => {
    const sim = quorate({ quorum: false });
    sim.perturb('sourceIsolated', 'web1');
    const out = await failover(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /web1-disk0, web1-disk1 on node-b has no DRBD quorum: nothing proves node-a cannot write/,
    );
    expect(sim.world.vms['node-b']?.web1).toBeUndefined();
  });

  it('refuses a source cut off from this network only: its DRBD is still connected', async () => {
    const sim = quorate();
    sim.perturb('sourceUnreachable', 'web1');
    const out = await failover(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(/node-b is still Connected to it on web1-disk0, web1-disk1: it runs/);
    expect(sim.world.vms['node-a']?.web1?.state).toBe('running');
  });

  it('refuses a target the cut left without quorum; with --source-is-down too, before the commit', async () => {
    const sim = quorate();
    // Both cut off: node-b is isolated as well (the tiebreaker reaches neither).
    sim.perturb('sourceIsolated', 'web1');
    sim.world.nodes['node-b']!.isolatedSince = sim.world.time;
    const out = await failover(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(/node-b has lost DRBD quorum too on web1-disk0, web1-disk1/);
    const claimed = await failover(sim, true);
    expect(claimed.outcome).toBe('rejected');
    expect(claimed.error).toMatch(
      /node-b has no DRBD quorum on web1-disk0, web1-disk1, so DRBD will not promote it/,
    );
    expect(sim.world.config.instances.web1?.primaryNode).toBe('node-a');
  });

  it('a tiebreaker the config names: its vote proves the isolated source cannot write while it is up; down too, the pair is two votes and both freeze, and the error names it', async () => {
    const up = quorate({ tiebreaker: 'node-c' });
    up.perturb('sourceIsolated', 'web1');
    expect((await failover(up)).outcome).toBe('failedOver');
    expect(up.world.violations).toEqual([]);

    const sim = quorate({ tiebreaker: 'node-c' });
    sim.killNode('node-c');
    sim.perturb('sourceIsolated', 'web1');
    const out = await failover(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /node-a does not answer, and node-b has lost DRBD quorum too on web1-disk0, web1-disk1 \(no majority on either side\): DRBD will not promote node-b; bring node-a or node-c \(the tiebreaker\) back/,
    );
    // The operator's word does not make DRBD promote a node without quorum: refused before the commit.
    const claimed = await failover(sim, true);
    expect(claimed.outcome).toBe('rejected');
    expect(claimed.error).toMatch(
      /node-b has no DRBD quorum on web1-disk0, web1-disk1, so DRBD will not promote it; bring node-a or node-c \(the tiebreaker\) back, or, if node-a is down for good, turn quorum off there first/,
    );
    expect(sim.world.config.instances.web1?.primaryNode).toBe('node-a');
    expect(sim.world.vms['node-b']?.web1).toBeUndefined();
    // Frozen on both sides: the isolated source could not write either.
    expect(Object.values(sim.world.resources).every((r) => (r.links[0]!.dirtyKiB['node-a'] ?? 0) === 0)).toBe(
      true,
    );
    expect(sim.world.violations).toEqual([]);
  });

  it('a node that would not stop web1 on losing quorum (no quorum-lost handler): a migration or a planned failover onto it is refused, nothing touched; an emergency failover onto it goes on and says so; cut off, it runs on', async () => {
    const spec = (selfFences: { a: boolean; b: boolean }) =>
      createSimCluster({
        nodes: { 'node-a': { selfFences: selfFences.a }, 'node-b': { selfFences: selfFences.b } },
        instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, quorum: true, selfFenceMs: 30_000 })),
      });
    const sim = spec({ a: true, b: false });
    const moved = await runMigration({ instance: 'web1' }, sim.effects, { clock: sim.clock });
    expect(moved.outcome).toBe('rejected');
    expect(moved.error).toMatch(
      /^node-b would not stop web1 on losing DRBD quorum: no quorum-lost handler runs there for web1-disk0 .* \(nothing was touched\)$/,
    );
    expect(sim.world.vms['node-b']?.web1).toBeUndefined();
    expect(restStateProblems(sim.current(), 'web1')).toEqual([]);

    // A planned failover (the source answers) chooses its target as a migration does.
    const planned = await failover(sim);
    expect(planned.outcome).toBe('rejected');
    expect(planned.error).toMatch(
      /^node-b would not stop web1 on losing DRBD quorum: .* \(nothing was touched\)$/,
    );
    expect(sim.world.vms['node-a']?.web1?.state).toBe('running');

    // An emergency goes on, and says so.
    sim.perturb('sourceIsolated', 'web1');
    const out = await failover(sim);
    expect(out.outcome).toBe('failedOver');
    expect(out.warnings.join('\n')).toMatch(
      /node-b would not stop web1 on losing DRBD quorum \(no quorum-lost handler runs there for web1-disk0\): the commit takes selfFenceMs out of the config, so that a failover away from node-b needs the operator's word/,
    );
    expect(sim.world.violations).toEqual([]);
    // In the commit's own write: a failover away from node-b needs the operator's word again.
    expect(sim.world.config.instances.web1?.selfFenceMs).toBeNull();
    expect(sim.world.config.instances.web1?.primaryNode).toBe('node-b');

    // The simulator's kernel: a node whose handler does not run writes no more, but its guest runs on.
    const bare = spec({ a: false, b: true });
    bare.perturb('sourceIsolated', 'web1');
    await bare.clock.sleep(60_000, new AbortController().signal);
    expect(bare.current().vms['node-a']?.web1?.state).toBe('running');
  });

  it('the simulator’s kernel: a node that loses quorum while it answers (its link down, the tiebreaker gone too) stops its guest the bound after the loss, as the handler does; quorum back before the bound, the guest runs on', async () => {
    const wait = (sim: ReturnType<typeof createSimCluster>, ms: number) =>
      sim.clock.sleep(ms, new AbortController().signal);
    const cut = (linkBackMs: number) => {
      const sim = quorate({ tiebreaker: 'node-c' });
      sim.perturb('linkDown', 'web1');
      for (const r of Object.values(sim.world.resources))
        r.links[0]!.linkDownUntil = sim.world.time + linkBackMs;
      sim.killNode('node-c');
      return sim;
    };
    const lost = cut(3_600_000);
    await wait(lost, 29_000);
    expect(lost.current().vms['node-a']?.web1?.state).toBe('running');
    await wait(lost, 2_000);
    expect(lost.current().vms['node-a']?.web1).toBeUndefined();
    expect(lost.world.resources['web1-disk0']?.local['node-a']?.role).toBe('Secondary');
    expect(lost.world.violations).toEqual([]);

    const back = cut(10_000);
    await wait(back, 60_000);
    expect(back.current().vms['node-a']?.web1?.state).toBe('running');

    // Back after the bound, all of it seen at once: the handler had run at the bound.
    const late = cut(40_000);
    await wait(late, 60_000);
    expect(late.current().vms['node-a']?.web1).toBeUndefined();
  });

  it('refuses while the source is cut from the target only: the tiebreaker still reaches it (may_promote: no)', async () => {
    const sim = quorate();
    sim.perturb('linkDown', 'web1');
    // The link between the two stays down (an hour), node-a still in the tiebreaker's reach.
    for (const r of Object.values(sim.world.resources))
      r.links[0]!.linkDownUntil = sim.world.time + 3_600_000;
    sim.world.nodes['node-a']!.unreachable = true;
    const out = await failover(sim);
    expect(out.outcome).toBe('rejected');
    expect(out.error).toMatch(
      /node-b's kernel says web1-disk0, web1-disk1 may not be promoted \(may_promote: no\)/,
    );
    // The operator's word does not override the kernel: node-a runs on, cut from node-b only (the
    // generated suite found the word alone starting web1 beside it).
    const claimed = await failover(sim, true);
    expect(claimed.outcome).toBe('rejected');
    expect(claimed.error).toMatch(
      /node-b's kernel says web1-disk0, web1-disk1 may not be promoted \(may_promote: no\): a Primary of web1's disks is still in reach of the tiebreaker, so node-a is not down but cut from node-b only/,
    );
    expect(sim.world.config.instances.web1?.primaryNode).toBe('node-a');
    expect(sim.world.vms['node-b']?.web1).toBeUndefined();
  });
});
