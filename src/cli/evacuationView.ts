import type { EvacuationOutput, InstanceRequest } from '../../machines/index.js';
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
}

const MOVED = new Set(['migrated', 'failedOver', 'replaced']);

export class EvacuationView {
  private readonly flights = new Map<string, Flight>();
  /** How each instance's last run ended (a follow-up cleanup replaces its run's end). */
  private readonly ended = new Map<string, boolean>();
  private drawn = 0;
  private readonly screen: Screen;

  constructor(
    screen: Screen,
    private readonly node: string,
    private readonly total: () => number,
  ) {
    this.screen = screen.columns > 0 ? screen : { ...screen, columns: 80 };
  }

  onRun(notice: RunNotice): void {
    if (notice.phase === 'start') {
      this.flights.set(notice.request.instance, {
        request: notice.request,
        step: '',
        sync: null,
        memory: null,
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
    const lines = [
      `evacuating ${this.node}: ${this.flights.size} running, ${done} moved, ${failed} not moved, ${waiting} waiting`,
      ...[...this.flights.values()].map((f) => {
        const pct = (what: string, p: number | null) => (p === null ? '' : `  ${what} ${Math.round(p)}%`);
        return `  ${f.request.instance} → ${f.request.target}  ${f.step}${pct('resync', f.sync)}${pct('memory', f.memory)}`;
      }),
    ];
    this.screen.write(`${lines.map((l) => fitToWidth(l, this.screen.columns)).join('\n')}\n`);
    this.drawn = lines.length;
  }

  /** The summary table: every instance, its run, its outcome, where it is, and why if not moved. */
  finish(out: EvacuationOutput): string[] {
    this.clear();
    // A drain of the secondaries says where each instance's secondary went.
    const secondaries = out.results.some((r) => r.secondaryNode !== undefined);
    const rows = out.results.map((r) => [
      r.instance,
      r.operation ?? '-',
      r.outcome,
      r.primaryNode ?? '?',
      ...(secondaries ? [r.secondaryNode ?? '-'] : []),
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
      'WHY / LEFT',
    ];
    const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]!)))
        .join('  ')
        .trimEnd();
    const { moved, failed, skipped, notStarted } = out.counts;
    return [
      '',
      fmt(head),
      ...rows.map(fmt),
      '',
      `${out.outcome}: ${out.node}: ${moved} moved, ${failed} not moved, ${skipped} skipped, ${notStarted} not started`,
    ];
  }
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
