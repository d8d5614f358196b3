import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../machines/index.js';
import {
  createSimCluster,
  EFFECT_NAMES,
  type EffectName,
  type Fault,
  runFailover,
  runningOn,
  type World,
  type WorldSpec,
} from '../src/index.js';
import { runMachine } from '../src/runner/index.js';
import { fault, simulate } from './helpers.js';

/**
 * docs/failure-table.md is generated from the simulator by this test; it fails when the committed
 * table differs from what the code does. Regenerate with: UPDATE_DOCS=1 npx vitest run test/failure-table.test.ts
 */

/** Where each call of a healthy migration happens, and what Ganeti (NEWEST, §1.8) does there. */
const POINTS: Partial<Record<EffectName, [string, string][]>> = {
  getInstance: [['prerequisites: read the config', 'prereq error, nothing changed']],
  instanceList: [['prerequisites: where does it run', 'prereq error, nothing changed']],
  instanceInfo: [['prerequisites: instance memory', 'prereq error, nothing changed']],
  nodeInfo: [['prerequisites: free memory, hypervisor versions', 'prereq error, nothing changed']],
  diskStatus: [
    ['disk consistency on both nodes', 'error, nothing changed'],
    ['read back before promoting (rule 4)', '(no such check)'],
  ],
  migrationInfo: [['migration info from the source', 'error, nothing changed']],
  measureDirtyRate: [['prerequisites: how fast the guest dirties memory (the prediction)', '(no such step)']],
  closeDisks: [
    ['close target disks', 'error, no revert; needs --cleanup'],
    ['close source disks (after the commit)', 'error, config = target, dual-master; needs --cleanup'],
  ],
  disconnectNet: [
    ['standalone (into dual-master)', 'error, no revert; needs --cleanup'],
    ['standalone (back to single-master)', 'error, config = target; needs --cleanup'],
  ],
  attachNet: [
    ['reconnect dual-master', 'error, no revert, disks StandAlone; needs --cleanup'],
    ['reconnect single-master', 'error, config = target, disks StandAlone; needs --cleanup'],
  ],
  waitSync: [
    ['sync after dual-master reconnect (first poll)', 'error, no revert, dual-master; needs --cleanup'],
    ['sync after dual-master reconnect (later poll)', 'error, no revert, dual-master; needs --cleanup'],
    ['sync after closing the source', 'error, config = target, dual-master; needs --cleanup'],
    ['sync after single-master reconnect (first poll)', 'error, config = target; needs --cleanup'],
    ['sync after single-master reconnect (later poll)', 'error, config = target; needs --cleanup'],
  ],
  openDisks: [
    ['open source disks shared', 'error, no revert, dual-master; needs --cleanup'],
    ['open target disks shared', 'error, no revert, dual-Primary; needs --cleanup'],
  ],
  acceptInstance: [['prepare the target', 'abort both, revert disks']],
  migrateInstance: [['start the memory copy', 'abort both, revert disks']],
  migrationStatus: [['poll the memory copy (first poll)', 'abort both, revert disks']],
  finalizeMigrationSource: [
    ['finalize on the source', 'error, config = source, dual-Primary; needs --cleanup'],
  ],
  finalizeMigrationTarget: [
    ['finalize on the target', 'error, config = source, dual-Primary; needs --cleanup'],
  ],
  setPrimaryNode: [['commit: config names the target', '(cannot fail in Ganeti’s config)']],
};

function worldLine(world: World): string {
  const running = runningOn(world, 'web1');
  const r = Object.values(world.resources);
  const roles = (n: string) => r.map((x) => (x.local[n]?.role === 'Primary' ? 'P' : 'S')).join('');
  const conn = [...new Set(r.flatMap((x) => x.links.flatMap((l) => Object.values(l.connection))))].join('/');
  const dual = r.some((x) => x.links.some((l) => Object.values(l.net).some((n) => n?.allowTwoPrimaries)))
    ? ', two primaries allowed'
    : '';
  return `runs on ${running.join('+') || 'none'}; a:${roles('node-a')} b:${roles('node-b')} ${conn}${dual}; config ${world.config.instances.web1?.primaryNode}`;
}

/** One row: the migration with FAULT, the world it leaves, and the world a cleanup then leaves. */
async function row(point: string, ganeti: string, f: Fault): Promise<string> {
  const run = await simulate('migration', { faults: [f] });
  const after = worldLine(run.sim.world);
  let cleanup = '';
  if (run.out.outcome === 'needsCleanup') {
    const c = await simulate('cleanup', { sim: run.sim });
    cleanup = `${c.out.outcome}: ${worldLine(c.sim.world)}`;
  }
  return `| ${point} | ${ganeti} | **${run.out.outcome}** | ${after} | ${cleanup} |`;
}

async function table(): Promise<string> {
  const happy = await simulate('migration');
  const rows: string[] = [];
  for (const effect of EFFECT_NAMES) {
    for (let call = 1; call <= happy.sim.calls[effect]; call++) {
      const [where, ganeti] = POINTS[effect]?.[call - 1] ?? [
        effect === 'migrationStatus' ? 'poll the memory copy (later poll)' : `${effect} call ${call}`,
        effect === 'migrationStatus' ? 'abort both, revert disks' : '',
      ];
      if (effect === 'migrationStatus' && call > 2 && call < happy.sim.calls.migrationStatus) continue;
      rows.push(await row(`\`${effect}@${call}\` ${where}`, ganeti, fault(effect, call)));
    }
  }
  // The commit point, beyond one failing call: a write that fails every time, and one whose answer is lost.
  const noSuch = '(cannot fail in Ganeti’s config)';
  rows.push(await row('`setPrimaryNode@*` commit: every write fails', noSuch, fault('setPrimaryNode', null)));
  rows.push(
    await row(
      '`setPrimaryNode@1` commit: the write lands, its answer is lost',
      noSuch,
      fault('setPrimaryNode', 1, 'lost'),
    ),
  );
  return [
    '# Failure points: outcome and world, beside Ganeti',
    '',
    'Generated by `test/failure-table.test.ts` from the simulated cluster (demo world: `web1` on `node-a`,',
    'two DRBD disks, `node-b` secondary): one failing call per row, `EFFECT@N` being the Nth call of a',
    'healthy migration. The test fails when this file differs from what the code does.',
    '',
    'World columns: where the instance runs; DRBD roles per disk on each node (P Primary, S Secondary);',
    'connection states; whether two primaries are allowed anywhere; the node the config names.',
    'Every run was checked against the safety rules after every step; none was broken.',
    '',
    '| failure point | Ganeti (its newest `_ExecMigration`) | drbd-migrate | world afterwards | after `--cleanup` |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    ...(await failoverTable()),
    ...(await replaceTable()),
    '',
    ...(await replaceTable(true)),
  ].join('\n');
}

/** A replace's world: roles per node (- where it has no device), the config's secondary, volumes. */
function replaceLine(world: World): string {
  const r = Object.values(world.resources).filter((x) => x.name.startsWith('web1-'));
  const roles = (n: string) =>
    r.map((x) => (x.local[n] === undefined ? '-' : x.local[n]!.role === 'Primary' ? 'P' : 'S')).join('');
  const conn = [...new Set(r.flatMap((x) => x.links[0]!.ends.map((n) => x.links[0]!.connection[n])))].join(
    '/',
  );
  const volumes = (n: string) => Object.keys(world.storage[n]?.volumes ?? {}).length;
  const c = world.config.instances.web1!;
  // DRBD 9: the peers each copy has (a joining one too), and those the tiebreaker has.
  const peers =
    r[0]?.drbd === '9'
      ? ` peers ${[...new Set(r[0].links.flatMap((l) => l.ends))].map((n) => n.slice(-1)).join('')}`
      : '';
  const tiebreaker = r[0]?.tiebreaker
    ? `; tiebreaker's peers ${r[0].tiebreakerPeers
        .map((n) => n.slice(-1))
        .sort()
        .join('')}`
    : '';
  return `a:${roles('node-a')} b:${roles('node-b')} c:${roles('node-c')} ${conn}${peers}; volumes b:${volumes('node-b')} c:${volumes('node-c')}${tiebreaker}; secondary ${c.secondaryNode}${c.formerSecondary === null ? '' : ` (former ${c.formerSecondary})`}`;
}

/**
 * The replace's failure points: each call of a healthy replace of web1's secondary (node-b by node-c)
 * failing once; then the repair the run names, if it names one.
 */
async function replaceTable(drbd9 = false): Promise<string[]> {
  const web1 = {
    name: 'web1',
    primary: 'node-a',
    secondary: 'node-b',
    memoryMiB: 2048,
    disksMiB: [10240, 4096],
  };
  const spec: WorldSpec = drbd9
    ? {
        nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {}, 'node-d': {} },
        instances: [{ ...web1, drbd: '9' as const, quorum: true, tiebreaker: 'node-d' }],
      }
    : { nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} }, instances: [web1] };
  const input = { instance: 'web1', newSecondary: 'node-c' };
  const run = (
    s: ReturnType<typeof createSimCluster>,
    i: typeof input | { instance: string; cleanup: true; newSecondary?: string },
  ) => runMachine(MACHINES.changeSecondary, i, s.effects, { clock: s.clock });
  const healthy = createSimCluster(spec);
  await run(healthy, input);
  const rows: string[] = [];
  for (const effect of EFFECT_NAMES) {
    const calls = healthy.calls[effect];
    for (let call = 1; call <= calls; call++) {
      // The resync's polls: the first and the last (those between fail the same way).
      if (effect === 'waitSync' && call > 1 && call < calls) continue;
      const s = createSimCluster(spec, { faults: [fault(effect, call)] });
      const out = await run(s, input);
      const after = replaceLine(s.world);
      s.faults = [];
      // The repair the CLI names: after the commit (the config names node-c) as it is; before it, for node-c.
      const config = s.world.config.instances.web1!;
      const again =
        out.outcome !== 'needsCleanup' && config.formerSecondary === null
          ? null
          : await run(s, {
              instance: 'web1',
              cleanup: true,
              ...(config.secondaryNode === 'node-c' ? {} : { newSecondary: 'node-c' }),
            });
      const poll = effect !== 'waitSync' ? '' : call === 1 ? ' (first resync poll)' : ' (last resync poll)';
      rows.push(
        `| \`${effect}@${call}\`${poll} | **${out.outcome}** | ${after} | ${again === null ? '' : `${again.outcome}: ${replaceLine(s.world)}`} |`,
      );
    }
  }
  if (drbd9)
    return [
      '## Replacing a secondary on DRBD 9',
      '',
      'The same on DRBD 9 with quorum (make-before-break), node-d the diskless tiebreaker the cluster file',
      'names: node-c joins node-a and node-d before the commit, node-b leaves both after. `peers`: the nodes',
      "each copy is a peer of (a joining one too); `tiebreaker's peers`: those node-d votes for. Every row",
      'before the commit ends with node-b never having left, node-c holding nothing, node-d voting for a and b.',
      '',
      '| failing call | drbd-migrate | world afterwards | after the repair it names |',
      '|---|---|---|---|',
      ...rows,
    ];
  return [
    '## Replacing a secondary',
    '',
    'Each call of a healthy replace of web1’s secondary (node-b by node-c, DRBD 8.4’s break-before-make)',
    'failing once; the last column is the repair the run named (`replace-secondary web1 --cleanup`, with',
    '`--new-secondary node-c` before the commit), run with nothing failing. Roles per disk on each node',
    '(- no device); volumes in each volume group; the secondary the config names. Ganeti leaves the',
    'volumes it made when it aborts; every row here before the commit ends with node-c holding none.',
    '',
    '| failing call | drbd-migrate | world afterwards | after the repair it names |',
    '|---|---|---|---|',
    ...rows,
    '',
  ];
}

/**
 * The failover's failure points: each call of a healthy failover failing once, the source alive
 * (stopped by the failover) and the source down (proven so); then the same failover run again.
 */
async function failoverTable(): Promise<string[]> {
  const rows: string[] = [];
  for (const down of [false, true]) {
    const sim = () => {
      const s = createSimCluster();
      if (down) s.killNode('node-a');
      return s;
    };
    const input = { instance: 'web1', ...(down ? { sourceIsDown: true } : {}) };
    const healthy = sim();
    await runFailover(input, healthy.effects, { clock: healthy.clock });
    for (const effect of EFFECT_NAMES) {
      for (let call = 1; call <= healthy.calls[effect]; call++) {
        const s = sim();
        s.faults = [fault(effect, call)];
        const out = await runFailover(input, s.effects, { clock: s.clock });
        const after = worldLine(s.world);
        s.faults = [];
        const again =
          out.outcome === 'failedOver' ? null : await runFailover(input, s.effects, { clock: s.clock });
        rows.push(
          `| ${down ? 'source down' : 'source alive'} | \`${effect}@${call}\` | **${out.outcome}** | ${after} | ${again === null ? '' : `${again.outcome}: ${worldLine(s.world)}`} |`,
        );
      }
    }
  }
  return [
    '## Failover',
    '',
    'Each call of a healthy failover failing once, with node-a alive (the failover stops web1 there) and',
    'with node-a powered off (`--source-is-down`, checked). The last column is the same failover run again',
    'with nothing failing: before the commit it finishes the job; after it (the config names node-b) it is a',
    'failover back to node-a, or refused with node-a down, which is why those errors say to start the instance',
    'on node-b by hand. No safety rule was broken in any run.',
    '',
    '| source | failing call | drbd-migrate | world afterwards | after running the failover again |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ];
}

describe('docs/failure-table.md', () => {
  it('is what the code does', async () => {
    const generated = await table();
    if (process.env.UPDATE_DOCS === '1') writeFileSync('docs/failure-table.md', generated);
    expect(readFileSync('docs/failure-table.md', 'utf8')).toBe(generated);
  });
});
