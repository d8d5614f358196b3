import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveWorld } from '../src/cli/worldFile.js';
import {
  createSimCluster,
  createWorld,
  FileJournal,
  FileLocks,
  RunInterrupted,
  restStateProblems,
  resumeRun,
  runJournaled,
  World,
} from '../src/index.js';
import { cli } from './processes.js';
import { tempDir } from './tmp.js';

async function fresh() {
  const dir = tempDir('drbd-migrate-');
  const world = join(dir, 'w.json');
  await saveWorld(world, createWorld());
  return { dir, world, state: join(dir, 'state') };
}

/**
 * A three-node world in FILE, and the lock of the node that is neither web1's primary nor its
 * secondary held by another live run (this process) doing OPERATION.
 */
async function spareLocked(file: string, state: string, operation: string) {
  await cli(['init', '--world', file, '--nodes', '3', '--instances', '2']);
  const world = JSON.parse(await readFile(file, 'utf8')) as {
    config: { instances: Record<string, { primaryNode: string; secondaryNode: string }> };
  };
  const web1 = world.config.instances.web1!;
  const spare = ['node-a', 'node-b', 'node-c'].find(
    (n) => n !== web1.primaryNode && n !== web1.secondaryNode,
  )!;
  const since = new Date().toISOString();
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(state, 'locks'), { recursive: true });
  await writeFile(
    join(state, 'locks', `node-${spare}.lock`),
    JSON.stringify({ host: hostname(), pid: process.pid, since, operation }),
  );
  return { web1, spare, since };
}

const readWorld = async (file: string) => World.parse(JSON.parse(await readFile(file, 'utf8')));

describe('resume refuses what it cannot trust, and touches nothing', () => {
  it('no journal', async () => {
    const f = await fresh();
    const before = await readFile(f.world, 'utf8');
    const r = await cli(['resume', 'web1', '--world', f.world, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/there is no unfinished migration or cleanup of web1 to resume/);
    expect(await readFile(f.world, 'utf8')).toBe(before);
  });

  it('a corrupt journal, and one from another machine version', async () => {
    const f = await fresh();
    await cli(['migrate', 'web1', '--world', f.world, '--state-dir', f.state, '--kill-at', '12']);
    const journal = join(f.state, 'journal', 'web1.json');
    const good = await readFile(journal, 'utf8');
    const before = await readFile(f.world, 'utf8');
    await writeFile(journal, good.slice(0, 100));
    let r = await cli(['resume', 'web1', '--world', f.world, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /the journal of web1 .* is corrupt: not JSON, so it cannot be resumed; run .* --cleanup/,
    );
    await writeFile(journal, JSON.stringify({ ...JSON.parse(good), machineVersion: '000000000000' }));
    r = await cli(['resume', 'web1', '--world', f.world, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/written by migration machine version 000000000000, this is [0-9a-f]{12}/);
    expect(await readFile(f.world, 'utf8')).toBe(before);
    r = await cli(['migrate', 'web1', '--world', f.world, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /an unfinished migration of web1 .* is journaled; run 'drbd-migrate resume web1/,
    );
  });

  it('a corrupt journal: a migration is refused, the cleanup it names sets the file aside and repairs', async () => {
    const f = await fresh();
    await cli(['migrate', 'web1', '--world', f.world, '--state-dir', f.state, '--kill-at', '12']);
    const journal = join(f.state, 'journal', 'web1.json');
    await writeFile(journal, (await readFile(journal, 'utf8')).slice(0, 100));
    const refused = await cli(['migrate', 'web1', '--world', f.world, '--state-dir', f.state]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /is corrupt: not JSON, so the run it recorded cannot be resumed; run 'drbd-migrate migrate web1 --world .* --cleanup'/,
    );
    const cleaned = await cli(['migrate', 'web1', '--world', f.world, '--state-dir', f.state, '--cleanup']);
    expect(cleaned.stderr).toMatch(
      /set aside as .*web1\.json\.corrupt-\d+; the cleanup looks at the nodes instead/,
    );
    expect(cleaned.code).toBe(0);
    expect(restStateProblems(await readWorld(f.world), 'web1')).toEqual([]);
    expect(readdirSync(join(f.state, 'journal')).some((n) => /^web1\.json\.corrupt-\d+$/.test(n))).toBe(true);
  });

  it('a journal of a run on something else: resumed only where it ran', async () => {
    const f = await fresh();
    await cli(['migrate', 'web1', '--world', f.world, '--state-dir', f.state, '--kill-at', '12']);
    const cluster = 'docs/cluster.example.yaml';
    // Against real nodes, a simulated run's journal is refused before anything connects.
    let r = await cli(['resume', 'web1', '--cluster', cluster, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`the journal of web1 is of a run on world ${f.world}, not on cluster `);
    r = await cli(['migrate', 'web1', '--cluster', cluster, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`run 'drbd-migrate resume web1 --world ${f.world}'`);
    const other = join(f.state, 'other.json');
    await writeFile(other, await readFile(f.world, 'utf8'));
    r = await cli(['resume', 'web1', '--world', other, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`is of a run on world ${f.world}, not on world ${other}`);
  });
});

describe('locks', () => {
  it('a second operation on a locked instance exits 2, naming who holds it and since when', async () => {
    const f = await fresh();
    const since = new Date().toISOString();
    await cli(['init', '--world', f.world]);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(f.state, 'locks'), { recursive: true });
    // held by this (living) test process
    await writeFile(
      join(f.state, 'locks', 'node-node-b.lock'),
      JSON.stringify({ host: hostname(), pid: process.pid, since, operation: 'migration of db1' }),
    );
    const r = await cli(['migrate', 'web1', '--world', f.world, '--state-dir', f.state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `node-node-b is locked by migration of db1 (pid ${process.pid} on ${hostname()}) since ${since}`,
    );
  });

  it('a replace locks the node it makes the new copy on: held by another run, it exits 2 and touches nothing', async () => {
    const f = await fresh();
    const { spare, since } = await spareLocked(f.world, f.state, 'replace of web2');
    const before = await readFile(f.world, 'utf8');
    const r = await cli([
      'replace-secondary',
      'web1',
      '--new-secondary',
      spare,
      '--world',
      f.world,
      '--state-dir',
      f.state,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `node-${spare} is locked by replace of web2 (pid ${process.pid} on ${hostname()}) since ${since}`,
    );
    expect(await readFile(f.world, 'utf8')).toBe(before);
  });

  it('a drain’s replace locks the node it makes the new copy on: held by another run, that instance is left, named, and nothing is made there', async () => {
    const f = await fresh();
    // A world of three nodes of its own (init does not write over the fresh one); web1's secondary
    // is drained of its copies, and the only node that can take one is locked.
    const file = join(f.dir, 'three.json');
    const { web1, spare, since } = await spareLocked(file, f.state, 'replace of web9');
    const r = await cli([
      'evacuate',
      web1.secondaryNode,
      '--secondaries',
      '--world',
      file,
      '--state-dir',
      f.state,
    ]);
    expect([r.code, r.stderr]).toEqual([
      3,
      'drbd-migrate: incomplete: 1 instance(s) not moved: web1 failed\n',
    ]);
    expect(r.stdout).toContain(
      `node-${spare} is locked by replace of web9 (pid ${process.pid} on ${hostname()}) since ${since}`,
    );
    const after = JSON.parse(await readFile(file, 'utf8')) as {
      config: { instances: Record<string, { secondaryNode: string }> };
      storage: Record<string, { volumes: Record<string, number> }>;
    };
    expect(after.config.instances.web1?.secondaryNode).toBe(web1.secondaryNode);
    expect(Object.keys(after.storage[spare]?.volumes ?? {}).filter((v) => v.startsWith('web1'))).toEqual([]);
  });

  it('a lock left by a killed process is taken over by resume', async () => {
    const f = await fresh();
    const killed = await cli([
      'migrate',
      'web1',
      '--world',
      f.world,
      '--state-dir',
      f.state,
      '--kill-at',
      '20',
    ]);
    expect(killed.signal).toBe('SIGKILL');
    const lock = JSON.parse(await readFile(join(f.state, 'locks', 'instance-web1.lock'), 'utf8'));
    const r = await cli(['resume', 'web1', '--world', f.world, '--state-dir', f.state, '--quiet']);
    expect(r.code).toBe(0);
    const log = await readFile(join(f.state, 'journal', 'web1.log'), 'utf8');
    expect(log).toContain(`"tookOver":[{"host":"${lock.host}","pid":${lock.pid}`);
  });
});

describe('SIGKILL at every transition, then resume', async () => {
  const kinds: [string, string[], (w: string) => Promise<void>][] = [
    ['migration', ['migrate', 'web1'], async () => {}],
    [
      'cleanup after a copy dropped mid-way',
      ['migrate', 'web1', '--cleanup'],
      async (world) => {
        // the world a migration killed mid-copy leaves, its journal thrown away
        const d = tempDir('drbd-migrate-');
        await cli(['migrate', 'web1', '--world', world, '--state-dir', d, '--kill-at', '17']);
      },
    ],
  ];
  for (const [name, args, prepare] of kinds) {
    const f = await fresh();
    await prepare(f.world);
    const total = await (async () => {
      const probe = await fresh();
      await prepare(probe.world);
      const run = await cli([...args, '--world', probe.world, '--state-dir', probe.state, '--json']);
      return run.stdout.split('\n').filter((l) => l.startsWith('{"type":"state"')).length;
    })();
    const points = Array.from({ length: total - 1 }, (_, i) => i + 1);
    it(`${name}: ${points.length} kill points`, () => {
      console.log(`${name}: killed at each of ${points.length} transitions, then resumed`);
      expect(points.length).toBeGreaterThan(5);
    });
    describe.concurrent(name, () => {
      it.each(points)(`killed after transition %i, resumed: at rest, safety rules held`, async (n) => {
        const g = await fresh();
        await prepare(g.world);
        const killed = await cli([
          ...args,
          '--world',
          g.world,
          '--state-dir',
          g.state,
          '--kill-at',
          String(n),
        ]);
        expect(killed.signal).toBe('SIGKILL');
        const resumed = await cli(['resume', 'web1', '--world', g.world, '--state-dir', g.state, '--json']);
        const result = JSON.parse(
          resumed.stdout.split('\n').find((l) => l.startsWith('{"type":"result"')) ?? '{}',
        );
        const expected = name === 'migration' ? ['migrated', 'cleaned'] : ['cleaned'];
        expect(expected).toContain(result.outcome);
        const world = await readWorld(g.world);
        expect(world.violations).toEqual([]);
        expect(restStateProblems(world, 'web1')).toEqual([]);
      });
    });
  }
});

describe('resume decides by the machine’s own handover tag', () => {
  async function interruptedIn(state: string) {
    const dir = tempDir('drbd-migrate-');
    const sim = createSimCluster();
    const options = {
      clock: sim.clock,
      store: new FileJournal(dir),
      locks: new FileLocks(dir),
      nodes: ['node-a', 'node-b'],
    };
    const stop = new AbortController();
    const run = runJournaled('migration', { instance: 'web1' }, sim.effects, {
      ...options,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'state' && e.value === state) queueMicrotask(() => stop.abort());
      },
    });
    await expect(run).rejects.toBeInstanceOf(RunInterrupted);
    return { ...(await resumeRun('web1', sim.effects, options)), sim };
  }

  it('inside the handover: looks and cleans up instead of continuing blind', async () => {
    const r = await interruptedIn('migrating.transferring.polling');
    expect(r.how).toBe('cleanup');
    expect(r.reason).toMatch(/inside the hypervisor's handover/);
    expect(r.output.outcome).toBe('cleaned');
    expect(restStateProblems(r.sim.world, 'web1')).toEqual([]);
  });

  it('outside it: continues from the journal', async () => {
    const r = await interruptedIn('dualMaster.syncing.polling');
    expect(r.how).toBe('continued');
    expect(r.output.outcome).toBe('migrated');
    expect(restStateProblems(r.sim.world, 'web1')).toEqual([]);
  });
});

describe('a failover interrupted inside its commit is finished as a failover (issue 22 A.1)', () => {
  /** A journaled world whose failover source wrote alone and died. */
  function deadSource() {
    const dir = tempDir('drbd-migrate-');
    const sim = createSimCluster();
    sim.killNode('node-a', { wroteAlone: true });
    const options = {
      clock: sim.clock,
      store: new FileJournal(dir),
      locks: new FileLocks(dir),
      nodes: ['node-a', 'node-b'],
    };
    return { sim, options };
  }

  /**
   * The source wrote alone and died; the failover's config write lands, and the orchestrator dies
   * before the journal hears of it (`landed`) or right after the journal recorded the next state.
   */
  async function crashedInCommit(when: 'beforeJournal' | 'afterJournal') {
    const { sim, options } = deadSource();
    const stop = new AbortController();
    const effects = {
      ...sim.effects,
      setPrimaryNode: async (...args: Parameters<typeof sim.effects.setPrimaryNode>) => {
        const answer = await sim.effects.setPrimaryNode(...args);
        if (when === 'beforeJournal') stop.abort();
        return answer;
      },
    };
    const run = runJournaled('failover', { instance: 'web1', sourceIsDown: true }, effects, {
      ...options,
      signal: stop.signal,
      onEvent: (e) => {
        if (when === 'afterJournal' && e.type === 'state' && e.value === 'activatingDisks')
          queueMicrotask(() => stop.abort());
      },
    });
    await expect(run).rejects.toBeInstanceOf(RunInterrupted);
    expect(sim.world.config.instances.web1?.primaryNode).toBe('node-b');
    // The resume meets the source still dead: only the failover's own steps can finish this.
    return { ...(await resumeRun('web1', sim.effects, options)), sim };
  }

  for (const when of ['beforeJournal', 'afterJournal'] as const) {
    it(`the config write landed, the process died ${when === 'beforeJournal' ? 'before' : 'after'} the journal recorded it`, async () => {
      const r = await crashedInCommit(when);
      expect(r.from.machine).toBe('failover');
      expect(r.output.outcome).toBe('failedOver');
      expect(r.output.primaryNode).toBe('node-b');
      expect(r.sim.world.vms['node-b']?.web1?.state).toBe('running');
      expect(r.sim.world.violations).toEqual([]);
    });
  }

  it('a failover whose config changed outside its commit is repaired as a failover, not by the migration cleanup', async () => {
    const { sim, options } = deadSource();
    const stop = new AbortController();
    const run = runJournaled('failover', { instance: 'web1', sourceIsDown: true }, sim.effects, {
      ...options,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'state' && e.value === 'checkingPrereqs.checkingPeer')
          queueMicrotask(() => stop.abort());
      },
    });
    await expect(run).rejects.toBeInstanceOf(RunInterrupted);
    // Someone committed by hand meanwhile: the journal expected node-a.
    const config = sim.world.config.instances.web1!;
    [config.primaryNode, config.secondaryNode] = ['node-b', 'node-a'];
    const r = await resumeRun('web1', sim.effects, options);
    expect(r.how).toBe('cleanup');
    expect(r.output.outcome).toBe('failedOver');
    expect(sim.world.vms['node-b']?.web1?.state).toBe('running');
    expect(sim.world.violations).toEqual([]);
  });
});
