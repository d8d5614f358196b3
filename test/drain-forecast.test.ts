import { describe, expect, it } from 'vitest';
import {
  type Convergence,
  DEFAULT_CONVERGENCE,
  type EvacuationEmitted,
  forecastRun,
  type InstanceConfig,
  scheduleLength,
} from '../machines/index.js';
import { createSimCluster, runEvacuation, type WorldSpec } from '../src/index.js';

/** Issue 24: the drain ordered by its runs' predicted times, and its length said before it starts. */

const policy = (p: Partial<Convergence> = {}): Convergence => ({ ...DEFAULT_CONVERGENCE, ...p });

const config = (memoryMiB: number, disksMiB: (number | undefined)[] = []): InstanceConfig => ({
  name: 'web1',
  primaryNode: 'node-a',
  secondaryNode: 'node-b',
  diskTemplate: 'drbd',
  disks: disksMiB.map((sizeMiB, index) => ({
    index,
    resource: `web1-${index}`,
    minor: index,
    ...(sizeMiB === undefined ? {} : { sizeMiB }),
  })),
  memoryMiB,
  minMemoryMiB: memoryMiB,
  migrationMode: 'live',
  adminState: 'up',
  formerSecondary: null,
  selfFenceMs: null,
  tiebreaker: null,
  drbdVersion: '8.4',
  thirdCopy: null,
  formerThirdCopy: null,
});

describe('one run’s prediction', () => {
  const base = { instance: 'web1', repair: false, live: true, policy: policy(), resyncMiBps: 128 } as const;

  it('a measured live copy takes what the copy prediction says; an idle guest one pass', () => {
    const idle = forecastRun({
      ...base,
      operation: 'migration',
      config: config(2048),
      rate: { dirtyMiBps: 0, calcSeconds: 1, mode: 'page-sampling' },
    });
    expect(idle).toEqual({
      instance: 'web1',
      operation: 'migration',
      seconds: 16,
      basis: 'measured',
      refused: false,
    });
    const busy = forecastRun({
      ...base,
      operation: 'migration',
      config: config(2048),
      rate: { dirtyMiBps: 100, calcSeconds: 1, mode: 'page-sampling' },
    });
    expect(busy.seconds).toBeGreaterThan(16);
  });

  it('a copy its own run will refuse counts nothing, and says so', () => {
    const hopeless = forecastRun({
      ...base,
      operation: 'migration',
      config: config(2048),
      policy: policy({ bandwidthMiBps: 32, downtimeCapMs: 500 }),
      rate: { dirtyMiBps: 900, calcSeconds: 5, mode: 'page-sampling' },
    });
    expect(hopeless).toMatchObject({ seconds: 0, refused: true, basis: 'measured' });
  });

  it('unmeasured, paused, a resync, no copy, and disks of unknown size', () => {
    const c = config(1024, [10240, 2048]);
    expect(forecastRun({ ...base, operation: 'migration', config: c, rate: null })).toMatchObject({
      seconds: 8,
      basis: 'unmeasured',
    });
    expect(
      forecastRun({ ...base, operation: 'migration', live: false, config: c, rate: undefined }),
    ).toMatchObject({ seconds: 8, basis: 'paused' });
    expect(forecastRun({ ...base, operation: 'changeSecondary', config: c, rate: undefined })).toMatchObject({
      seconds: 96,
      basis: 'resync',
    });
    expect(forecastRun({ ...base, operation: 'failover', config: c, rate: undefined })).toMatchObject({
      seconds: 0,
      basis: 'noCopy',
    });
    expect(
      forecastRun({
        ...base,
        operation: 'changeSecondary',
        config: config(1024, [10240, undefined]),
        rate: undefined,
      }),
    ).toMatchObject({ seconds: 0, basis: 'unsized' });
  });
});

describe('the drain’s schedule', () => {
  const run = (instance: string, target: string, seconds: number) => ({
    instance,
    source: 'node-a',
    target,
    seconds,
  });

  it('runs at once within the total limit: the longest first keeps the tail short', () => {
    const queue = [run('a', 'node-b', 10), run('b', 'node-c', 6), run('c', 'node-d', 4)];
    expect(scheduleLength(queue, 2, 8)).toEqual({ seconds: 10, startsAt: { a: 0, b: 0, c: 6 } });
    expect(scheduleLength(queue, 1, 8).seconds).toBe(20);
  });

  it('a node’s own limit holds a run back until a slot of that node frees', () => {
    const queue = [run('a', 'node-b', 10), run('b', 'node-b', 6), run('c', 'node-c', 4)];
    // One per node: every run leaves node-a, so one at a time, in queue order.
    expect(scheduleLength(queue, 4, 1)).toEqual({ seconds: 20, startsAt: { a: 0, b: 10, c: 16 } });
    // Two per node: c is passed over while a and b hold node-a, and starts when b ends.
    expect(scheduleLength(queue, 4, 2)).toEqual({ seconds: 10, startsAt: { a: 0, b: 0, c: 6 } });
  });

  it('a replace joins the queue’s end when the move that makes it ends', () => {
    const queue = [
      {
        ...run('a', 'node-b', 10),
        followedBy: { instance: 'a', source: 'node-b', target: 'node-c', seconds: 30 },
      },
      run('b', 'node-c', 5),
    ];
    expect(scheduleLength(queue, 2, 2).seconds).toBe(40);
  });
});

/** node-a holds three running instances, each with its secondary elsewhere. */
const world = (): WorldSpec => ({
  nodes: {
    'node-a': { memoryMiB: 65_536 },
    'node-b': { memoryMiB: 65_536 },
    'node-c': { memoryMiB: 65_536 },
  },
  instances: [
    // The largest by memory, and idle: one pass of 1100 MiB.
    { name: 'idle', primary: 'node-a', secondary: 'node-b', memoryMiB: 1100 },
    // Smaller, and busy: its dirty passes make it the longest copy.
    {
      name: 'busy',
      primary: 'node-a',
      secondary: 'node-c',
      memoryMiB: 1024,
      dirtyMiBps: 100,
      workingSetMiB: 1024,
    },
    { name: 'small', primary: 'node-a', secondary: 'node-b', memoryMiB: 256 },
  ],
});

describe('a drain that measures first', () => {
  it('orders its queue by predicted time, not by memory, and says its length before any run starts', async () => {
    const sim = createSimCluster(world());
    const said: EvacuationEmitted[] = [];
    const order: string[] = [];
    const out = await runEvacuation({ node: 'node-a', concurrency: 1 }, sim.effects, {
      clock: sim.clock,
      onEvent: (e) => said.push(e),
      onRun: (n) => {
        if (n.phase === 'start') {
          order.push(n.request.instance);
          // Said before the first run starts.
          expect(said.some((e) => e.type === 'forecast')).toBe(true);
        }
      },
    });
    expect(out.outcome).toBe('evacuated');
    expect(order).toEqual(['busy', 'idle', 'small']);
    expect(out.results.map((r) => r.instance)).toEqual(['busy', 'idle', 'small']);
    const forecast = out.forecast!;
    expect(forecast.runs.map((r) => [r.instance, r.basis])).toEqual([
      ['busy', 'measured'],
      ['idle', 'measured'],
      ['small', 'measured'],
    ]);
    const [busy, idle, small] = forecast.runs.map((r) => r.seconds) as [number, number, number];
    expect(busy).toBeGreaterThan(idle);
    expect(idle).toBeCloseTo(1100 / 128, 1);
    expect(small).toBeCloseTo(2, 1);
    // One at a time: the drain's copies are the sum of its runs'.
    expect(forecast.seconds).toBeCloseTo(busy + idle + small, 1);
    expect(said.find((e) => e.type === 'feedback')).toMatchObject({
      message: expect.stringMatching(
        /^\* predicted: the drain's copies and resyncs take about 2\d s \(3 run\(s\), 1 at once, 1 per node; the longest, busy, about 1\d s\)/,
      ),
    });
    // Every guest measured once by the drain, and once more by its own run just before its copy.
    expect(sim.calls.measureDirtyRate).toBe(6);
  });

  it('without the prediction it measures nothing and orders by memory, as before', async () => {
    const sim = createSimCluster(world());
    const order: string[] = [];
    const out = await runEvacuation(
      { node: 'node-a', concurrency: 1, convergence: { predict: false } },
      sim.effects,
      { clock: sim.clock, onRun: (n) => void (n.phase === 'start' && order.push(n.request.instance)) },
    );
    expect(order).toEqual(['idle', 'busy', 'small']);
    expect(sim.calls.measureDirtyRate).toBe(0);
    expect(out.forecast?.runs.every((r) => r.basis === 'unmeasured')).toBe(true);
  });

  it('a measurement that fails is a warning: the rest go unmeasured, and the drain goes on', async () => {
    const sim = createSimCluster(world(), {
      faults: [{ effect: 'measureDirtyRate', call: 1, kind: 'error' }],
    });
    const said: EvacuationEmitted[] = [];
    const out = await runEvacuation({ node: 'node-a', concurrency: 1 }, sim.effects, {
      clock: sim.clock,
      onEvent: (e) => said.push(e),
    });
    expect(out.outcome).toBe('evacuated');
    expect(said).toContainEqual(
      expect.objectContaining({
        level: 'warning',
        message: expect.stringMatching(
          /^Could not measure how fast \w+ dirties its memory \(.*\); it and the 2 guest\(s\) after it are predicted unmeasured/,
        ),
      }),
    );
    expect(out.forecast?.says).toMatch(/3 guest\(s\) not measured, counted as one pass of their memory/);
  });

  it('the operator’s abort while it measures starts nothing, and lists every instance not started', async () => {
    const sim = createSimCluster(world());
    const abort = new AbortController();
    const started: string[] = [];
    const out = await runEvacuation({ node: 'node-a' }, sim.effects, {
      clock: sim.clock,
      abort: abort.signal,
      onRun: (n) => void started.push(n.request.instance),
      onStart: (actor) =>
        actor.subscribe((s) => {
          if (s.matches('measuring')) abort.abort();
        }),
    });
    expect(out.outcome).toBe('aborted');
    expect(started).toEqual([]);
    expect(out.results.map((r) => r.outcome)).toEqual(['notStarted', 'notStarted', 'notStarted']);
  });
});
