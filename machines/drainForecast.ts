import type { DirtyRate, InstanceConfig } from './contract.js';
import type { Convergence } from './convergence.js';
import { forecastCopy } from './prediction.js';

/**
 * How long a drain will take, known before it starts: each run's copy or resync predicted (a live
 * copy from its guest's measured dirty rate, a resync from its disks' size), then the runs scheduled
 * as the evacuation schedules them (queue order, the total and per-node limits, a replace after the
 * move that makes it). Only the copies and resyncs are counted: each run's steps add their own, which
 * depend on the nodes more than on the instance. A copy goes at the copy policy's bandwidth, a
 * resync at the rate the cluster says its resyncs reach (DRBD's c-max-rate by default).
 */

/**
 * The rate a DRBD resync reaches when nothing says otherwise: the default of DRBD's resync
 * controller ceiling (c-max-rate, 100 MiB/s in 8.4 and 9).
 */
export const DEFAULT_RESYNC_MIBPS = 100;

/** One run as the schedule sees it: the two nodes whose slots it takes. */
export interface Slotted {
  source: string;
  target: string;
}

/**
 * In queue order, the runs that may start beside those running: within the total limit, and without
 * any node over its own (its link is shared by every copy and resync to or from it). A run whose
 * node is full is passed over, so that the targets fill evenly.
 */
export function pickStartable<T extends Slotted>(
  running: readonly Slotted[],
  queue: readonly T[],
  concurrency: number,
  perNode: number,
): T[] {
  const load = new Map<string, number>();
  for (const r of running) for (const n of [r.source, r.target]) load.set(n, (load.get(n) ?? 0) + 1);
  const picked: T[] = [];
  for (const p of queue) {
    if (running.length + picked.length >= concurrency) break;
    if ([p.source, p.target].some((n) => (load.get(n) ?? 0) >= perNode)) continue;
    picked.push(p);
    for (const n of [p.source, p.target]) load.set(n, (load.get(n) ?? 0) + 1);
  }
  return picked;
}

/**
 * What a run's predicted time rests on: a measured guest, a guest that could not be measured (one
 * pass of its memory, the least it can take), a paused guest (non-live: one pass), a resync of the
 * disks' size, no copy at all (a failover, a repair), or disks whose size the config does not give.
 */
export type RunBasis = 'measured' | 'unmeasured' | 'paused' | 'resync' | 'noCopy' | 'unsized';

export interface RunForecast {
  instance: string;
  operation: RunFacts['operation'];
  /** The copy's or resync's time, seconds (0 for a run that copies nothing, or will be refused). */
  seconds: number;
  basis: RunBasis;
  /** Its own prediction refuses the copy (never converges): the run will end rejected at once. */
  refused: boolean;
}

/** The facts one run's prediction needs. */
export interface RunFacts {
  instance: string;
  operation: 'migration' | 'failover' | 'cleanup' | 'changeSecondary';
  /** A run that repairs or takes up another's work (it copies nothing new that can be foreseen). */
  repair: boolean;
  config: InstanceConfig | undefined;
  live: boolean;
  /** The guest's measured dirty rate; null: measured without success; undefined: not measured. */
  rate: DirtyRate | null | undefined;
  policy: Convergence;
  /** The rate a new copy's resync reaches, MiB/s. */
  resyncMiBps: number;
}

const round = (n: number) => Math.round(n * 100) / 100;

export function forecastRun(f: RunFacts): RunForecast {
  const base = { instance: f.instance, operation: f.operation, refused: false };
  const bandwidth = f.policy.bandwidthMiBps;
  if (f.repair || f.operation === 'failover' || f.operation === 'cleanup')
    return { ...base, seconds: 0, basis: 'noCopy' };
  if (f.operation === 'changeSecondary') {
    const sizes = (f.config?.disks ?? []).map((d) => d.sizeMiB);
    if (sizes.length === 0 || sizes.some((s) => s === undefined))
      return { ...base, seconds: 0, basis: 'unsized' };
    return {
      ...base,
      seconds: round(sizes.reduce((a, b) => a! + b!, 0)! / f.resyncMiBps),
      basis: 'resync',
    };
  }
  const memory = f.config?.memoryMiB ?? 0;
  if (!f.live) return { ...base, seconds: round(memory / bandwidth), basis: 'paused' };
  if (f.rate === undefined || f.rate === null)
    return { ...base, seconds: round(memory / bandwidth), basis: 'unmeasured' };
  const forecast = forecastCopy({
    memoryMiB: memory,
    dirtyMiBps: f.rate.dirtyMiBps,
    policy: f.policy,
    live: true,
    windowSeconds: f.rate.calcSeconds,
  });
  // The hopeful reading: the one the run itself refuses by, and the one its policy steers towards.
  return forecast.hopeless
    ? { ...base, seconds: 0, basis: 'measured', refused: true }
    : { ...base, seconds: forecast.hopeful.copySeconds, basis: 'measured' };
}

/** One run to schedule: its nodes, its predicted time, and the run that follows it (a replace). */
export interface ScheduledRun extends Slotted {
  instance: string;
  seconds: number;
  followedBy?: ScheduledRun;
}

/**
 * The drain's length: the queue started under the limits as the evacuation starts it, each run ending
 * after its predicted time, a follow-up joining the queue's end when its run ends.
 */
export function scheduleLength(
  queue: readonly ScheduledRun[],
  concurrency: number,
  perNode: number,
): { seconds: number; startsAt: Record<string, number> } {
  let now = 0;
  let waiting = [...queue];
  let running: { run: ScheduledRun; endsAt: number }[] = [];
  const startsAt: Record<string, number> = {};
  for (;;) {
    const starts = pickStartable(
      running.map((r) => r.run),
      waiting,
      concurrency,
      perNode,
    );
    for (const run of starts) {
      startsAt[run.instance] ??= now;
      running.push({ run, endsAt: now + run.seconds });
    }
    const started = new Set(starts);
    waiting = waiting.filter((r) => !started.has(r));
    if (running.length === 0) break;
    now = Math.min(...running.map((r) => r.endsAt));
    const ended = running.filter((r) => r.endsAt <= now);
    running = running.filter((r) => r.endsAt > now);
    for (const { run } of ended) if (run.followedBy !== undefined) waiting.push(run.followedBy);
  }
  return { seconds: round(now), startsAt };
}

export interface DrainForecast {
  /** The drain's copies and resyncs, scheduled under its limits, seconds. */
  seconds: number;
  /** Each run's own prediction, in the order the drain starts them. */
  runs: RunForecast[];
  /** One line for people. */
  says: string;
}

export function describeDrain(
  seconds: number,
  runs: RunForecast[],
  limits: { concurrency: number; perNode: number },
): string {
  const longest = runs.reduce<RunForecast | null>(
    (a, r) => (a === null || r.seconds > a.seconds ? r : a),
    null,
  );
  const count = (basis: RunBasis) => runs.filter((r) => r.basis === basis).length;
  const notes = [
    ...(longest !== null && longest.seconds > 0
      ? [`the longest, ${longest.instance}, about ${durationText(longest.seconds)}`]
      : []),
    ...(count('unmeasured') > 0
      ? [`${count('unmeasured')} guest(s) not measured, counted as one pass of their memory`]
      : []),
    ...(count('unsized') > 0
      ? [`${count('unsized')} replace(s) of disks whose size the config does not give, not counted`]
      : []),
    ...(runs.some((r) => r.refused)
      ? [
          `${runs.filter((r) => r.refused).length} copy(ies) predicted never to converge (each refused by its own run)`,
        ]
      : []),
  ];
  return `predicted: the drain's copies and resyncs take about ${durationText(seconds)} (${runs.length} run(s), ${limits.concurrency} at once, ${limits.perNode} per node${notes.length > 0 ? `; ${notes.join('; ')}` : ''}); each run's steps add their own`;
}

/** "45 s", "3 min 20 s", "2 h 5 min". */
export function durationText(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 === 0 ? '' : ` ${s % 60} s`}`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h${m % 60 === 0 ? '' : ` ${m % 60} min`}`;
}
