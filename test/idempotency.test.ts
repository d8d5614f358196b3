import { describe, expect, it } from 'vitest';
import {
  createSimCluster,
  EFFECT_NAMES,
  type Effects,
  MACHINES,
  RunInterrupted,
  restStateProblems,
  runCleanup,
  runFailover,
  runMachine,
  runMigration,
  runRejoin,
} from '../src/index.js';

/**
 * A restored snapshot re-runs the effect that was in flight, so every effect must be safe to run
 * again: here every call is made twice in a row and the second answer is the one the machine sees.
 * Each effect checks reality first (closing a Secondary disk, attaching a connected link, accepting
 * an instance already incoming, finalizing twice: all no-ops the second time).
 */
function twice(effects: Effects): Effects {
  return Object.fromEntries(
    EFFECT_NAMES.map((name) => {
      const f = effects[name] as (input: unknown, signal: AbortSignal) => Promise<unknown>;
      return [
        name,
        async (input: unknown, signal: AbortSignal) => {
          await f(input, signal);
          return f(input, signal);
        },
      ];
    }),
  ) as unknown as Effects;
}

describe('every effect is idempotent', () => {
  it('a failover (source alive, then source down) and a rejoin whose every call runs twice end as plain ones', async () => {
    const alive = createSimCluster();
    const out = await runFailover({ instance: 'web1' }, twice(alive.effects), { clock: alive.clock });
    expect(out).toMatchObject({ outcome: 'failedOver', primaryNode: 'node-b', warnings: [] });
    expect(restStateProblems(alive.world, 'web1')).toEqual([]);
    const sim = createSimCluster();
    sim.killNode('node-a', { wroteAlone: true });
    const down = await runFailover({ instance: 'web1', sourceIsDown: true }, twice(sim.effects), {
      clock: sim.clock,
    });
    expect(down).toMatchObject({ outcome: 'failedOver', primaryNode: 'node-b' });
    sim.reviveNode('node-a');
    const back = await runRejoin({ instance: 'web1' }, twice(sim.effects), { clock: sim.clock });
    // node-a wrote alone before it died: its writes give way, said once however often a call runs.
    expect(back).toMatchObject({
      outcome: 'rejoined',
      primaryNode: 'node-b',
      warnings: [expect.stringMatching(/^node-a wrote [\d.]+ MiB while apart .*split brain.*discarded/)],
    });
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    expect(sim.world.violations).toEqual([]);
    expect(sim.world.commits.web1).toBe(1);
  });

  it('a replace of the secondary, its undo, and its repair, every call twice, end as plain ones', async () => {
    const spec = {
      nodes: { 'node-a': {}, 'node-b': {}, 'node-c': {} },
      instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', disksMiB: [1024, 512] }],
    };
    const replace = (sim: ReturnType<typeof createSimCluster>, input: object = {}) =>
      runMachine(
        MACHINES.changeSecondary,
        { instance: 'web1', newSecondary: 'node-c', ...input },
        twice(sim.effects),
        {
          clock: sim.clock,
        },
      );
    const sim = createSimCluster(spec);
    expect(await replace(sim)).toMatchObject({
      outcome: 'replaced',
      secondaryNode: 'node-c',
      warnings: [expect.any(String)],
    });
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    expect(Object.keys(sim.world.storage['node-b']?.volumes ?? {})).toEqual([]);
    expect(sim.world.resources['web1-disk0']?.links.map((l) => l.syncSource)).toEqual([null]);
    // Undone before its commit (the primary's disconnect fails), every call twice: node-c empty again.
    const undo = createSimCluster(spec, { faults: [{ effect: 'disconnectNet', call: 3, kind: 'error' }] });
    expect((await replace(undo)).outcome).toBe('reverted');
    expect(Object.keys(undo.world.storage['node-c']?.volumes ?? {})).toEqual([]);
    expect(restStateProblems(undo.world, 'web1')).toEqual([]);
    // Stopped after its commit (the attach fails), then its repair, every call twice.
    const half = createSimCluster(spec, { faults: [{ effect: 'attachNet', call: null, kind: 'error' }] });
    expect((await replace(half)).outcome).toBe('needsCleanup');
    half.faults = [];
    expect(await replace(half, { cleanup: true, newSecondary: undefined })).toMatchObject({
      outcome: 'cleaned',
    });
    expect(restStateProblems(half.world, 'web1')).toEqual([]);
    expect(half.world.config.instances.web1).toMatchObject({
      secondaryNode: 'node-c',
      formerSecondary: null,
    });
    for (const w of [sim.world, undo.world, half.world]) expect(w.violations).toEqual([]);
  });

  it('a migration whose every call runs twice ends as a plain one', async () => {
    const sim = createSimCluster();
    const out = await runMigration({ instance: 'web1' }, twice(sim.effects), { clock: sim.clock });
    expect(out).toMatchObject({ outcome: 'migrated', primaryNode: 'node-b', warnings: [] });
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    expect(sim.world.violations).toEqual([]);
    expect(sim.world.commits.web1).toBe(1);
  });

  it('a cleanup of a copy found on both nodes, every call twice, ends as a plain one', async () => {
    const sim = createSimCluster();
    const stop = new AbortController();
    const crashed = runMigration({ instance: 'web1' }, sim.effects, {
      clock: sim.clock,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'state' && e.value === 'migrating.transferring.polling')
          queueMicrotask(() => stop.abort());
      },
    });
    await expect(crashed).rejects.toBeInstanceOf(RunInterrupted);
    const out = await runCleanup({ instance: 'web1' }, twice(sim.effects), { clock: sim.clock });
    expect(out.outcome).toBe('cleaned');
    expect(restStateProblems(sim.world, 'web1')).toEqual([]);
    expect(sim.world.violations).toEqual([]);
  });
});
