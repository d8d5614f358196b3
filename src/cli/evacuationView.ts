import {
  type DrainForecast,
  durationText,
  type EvacuationEmitted,
  type EvacuationOutput,
  type InstanceRequest,
} from '../../machines/index.js';
import type { RunEvent, RunNotice } from '../runner/index.js';
import { fitToWidth, type Screen } from './live.js';

/**
 * What a person sees during an evacuation. On a terminal: each run's feedback scrolls, prefixed with
 * its instance, and a block at the bottom shows every run in flight (its step, resync and memory
 * progress) and how many are done, failed and waiting. Elsewhere: the prefixed lines only.
 */
interface Flight {
  request: InstanceRequest;
  step: string;
  sync: number | null;
  memory: number | null;
  startedAt: number;
  /** Its copy's or resync's predicted seconds, when the drain predicted it. */
  predicted: number | null;
}

const MOVED = new Set(['migrated', 'failedOver', 'replaced']);

export class EvacuationView {
  private readonly flights = new Map<string, Flight>();
  /** How each instance's last run ended (a follow-up cleanup replaces its run's end). */
  private readonly ended = new Map<string, boolean>();
  private drawn = 0;
  private readonly screen: Screen;
  private forecast: DrainForecast | null = null;
  /** When the forecast was said: the drain's elapsed time counts from there. */
  private startedAt: number | null = null;

  /** `now`: the world's clock, ms (simulated time on the simulator). */
  constructor(
    screen: Screen,
    private readonly node: string,
    private readonly total: () => number,
    private readonly now: () => number = Date.now,
  ) {
    this.screen = screen.columns > 0 ? screen : { ...screen, columns: 80 };
  }

  /** What the drain says of itself: its measurements' warnings, and its forecast before any run. */
  onEvent(event: EvacuationEmitted): void {
    if (event.type === 'feedback')
      this.line(event.level === 'warning' ? `WARNING: ${event.message}` : event.message);
    else {
      this.forecast = event.forecast;
      this.startedAt = this.now();
    }
  }

  /** The predicted seconds of a run: a move's own, or the replace that follows it. */
  private predictedOf(request: InstanceRequest): number | null {
    const runs = this.forecast?.runs.filter((r) => r.instance === request.instance) ?? [];
    const replace = request.operation === 'changeSecondary';
    return runs.find((r) => (r.operation === 'changeSecondary') === replace)?.seconds ?? null;
  }

  onRun(notice: RunNotice): void {
    if (notice.phase === 'start') {
      // Where the drain runs elsewhere (Restate), its time counts from its first run seen here.
      this.startedAt ??= this.now();
      this.flights.set(notice.request.instance, {
        request: notice.request,
        step: '',
        sync: null,
        memory: null,
        startedAt: this.now(),
        predicted: this.predictedOf(notice.request),
      });
      this.line(`${notice.request.instance}: ${notice.request.operation} to ${notice.request.target}`);
    } else {
      this.flights.delete(notice.request.instance);
      const outcome = notice.output?.outcome ?? 'stopped';
      this.ended.set(notice.request.instance, MOVED.has(outcome));
      this.line(
        `${notice.request.instance}: ${outcome}${notice.output?.error ? `: ${notice.output.error}` : ''}`,
      );
    }
  }

  onInstanceEvent(instance: string, event: RunEvent): void {
    const flight = this.flights.get(instance);
    if (event.type === 'feedback') this.line(`${instance}: ${event.message}`);
    if (flight === undefined) return;
    if (event.type === 'state') flight.step = event.value;
    else if (event.type === 'progress') {
      if (event.kind === 'sync') flight.sync = event.percent;
      else flight.memory = event.percent;
    }
    this.redraw();
  }

  /** A line above the block (the block is drawn again under it). */
  line(text: string): void {
    this.clear();
    this.screen.write(`${this.screen.tty ? fitToWidth(text, this.screen.columns) : text}\n`);
    this.redraw();
  }

  private clear() {
    if (!this.screen.tty || this.drawn === 0) return;
    this.screen.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private redraw() {
    if (!this.screen.tty) return;
    this.clear();
    const ended = [...this.ended].filter(([i]) => !this.flights.has(i));
    const done = ended.filter(([, moved]) => moved).length;
    const failed = ended.length - done;
    const waiting = Math.max(0, this.total() - ended.length - this.flights.size);
    const now = this.now();
    const lines = [
      `evacuating ${this.node}: ${this.flights.size} running, ${done} moved, ${failed} not moved, ${waiting} waiting${this.elapsed(now)}`,
      ...[...this.flights.values()].map((f) => {
        const pct = (what: string, p: number | null) => (p === null ? '' : `  ${what} ${Math.round(p)}%`);
        const time = `  ${durationText((now - f.startedAt) / 1000)}${f.predicted === null ? '' : ` / ~${durationText(f.predicted)}`}`;
        return `  ${f.request.instance} → ${f.request.target}  ${f.step}${pct('resync', f.sync)}${pct('memory', f.memory)}${time}`;
      }),
    ];
    this.screen.write(`${lines.map((l) => fitToWidth(l, this.screen.columns)).join('\n')}\n`);
    this.drawn = lines.length;
  }

  /** "  1 min 20 s / ~4 min": the time so far against the copies and resyncs predicted. */
  private elapsed(now: number): string {
    if (this.forecast === null || this.startedAt === null) return '';
    return `  ${durationText((now - this.startedAt) / 1000)} / ~${durationText(this.forecast.seconds)}`;
  }

  /** The summary table: every instance, its run, its outcome, where it is, and why if not moved. */
  finish(out: EvacuationOutput): string[] {
    this.clear();
    // A drain of the secondaries says where each instance's secondary went.
    const secondaries = out.results.some((r) => r.secondaryNode !== undefined);
    const thirds = out.results.some((r) => r.thirdCopy !== undefined);
    const rows = out.results.map((r) => [
      r.instance,
      r.operation ?? '-',
      r.outcome,
      r.primaryNode ?? '?',
      ...(secondaries ? [r.secondaryNode ?? '-'] : []),
      ...(thirds ? [r.thirdCopy ?? '-'] : []),
      [r.error, ...(r.tried === undefined ? [] : [`tried: ${r.tried.join(', ')}`]), ...(r.left ?? [])]
        .filter((x) => x !== undefined && x !== '')
        .join('; '),
    ]);
    const head = [
      'INSTANCE',
      'RUN',
      'OUTCOME',
      'PRIMARY',
      ...(secondaries ? ['SECONDARY'] : []),
      ...(thirds ? ['THIRD COPY'] : []),
      'WHY / LEFT',
    ];
    const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]!)))
        .join('  ')
        .trimEnd();
    const { moved, failed, skipped, notStarted } = out.counts;
    const forecast = out.forecast ?? this.forecast;
    const took =
      forecast === undefined || forecast === null || this.startedAt === null
        ? []
        : [
            `took ${durationText((this.now() - this.startedAt) / 1000)}; predicted ${durationText(forecast.seconds)} of copies and resyncs, before each run's own steps`,
          ];
    return [
      '',
      fmt(head),
      ...rows.map(fmt),
      '',
      ...took,
      ...holdingsLines(out),
      `${out.outcome}: ${out.node}: ${moved} moved, ${failed} not moved, ${skipped} skipped, ${notStarted} not started`,
    ];
  }
}

/** What the node was found holding at the end of a drain that empties it (--all), read from it. */
function holdingsLines(out: EvacuationOutput): string[] {
  const held = out.stillHolds;
  if (held === undefined) return [];
  if ('unread' in held)
    return [
      `${out.node} could not be read at the end (${held.unread}): whether it still holds a copy is not known`,
    ];
  if (held.minors.length === 0 && held.volumes.length === 0)
    return [`${out.node} holds no DRBD device and no volume of any instance (read from it)`];
  return [
    `${out.node} still holds: DRBD minors ${held.minors.join(', ') || 'none'}; volumes ${held.volumes.join(', ') || 'none'}`,
  ];
}

/**
 * 0 every instance moved; 1 not all moved, but every one is safe where it was (reverted, refused,
 * skipped, not started); 2 rejected (bad input, config unreadable); 3 something is left to repair.
 */
export function evacuationExit(out: EvacuationOutput): number {
  if (out.outcome === 'rejected') return 2;
  if (out.outcome === 'evacuated') return 0;
  return out.results.some((r) => r.outcome === 'needsCleanup' || r.outcome === 'failed') ? 3 : 1;
}
