import type { ProtocolOutput } from '../../machines/index.js';
import type { RunEvent } from '../runner/index.js';
import { type EtaStep, RunEta } from './eta.js';
import { nextStep } from './report.js';

/**
 * What a person sees during a run. On a terminal: feedback scrolls, and a status block at the bottom
 * shows the current step with its elapsed time and a bar for resync and for memory (percent, rate,
 * ETA). Elsewhere: plain lines. Times are in the world's clock (simulated time on the simulator).
 */
export interface Screen {
  write(text: string): void;
  tty: boolean;
  color: boolean;
  columns: number;
}

interface Progress {
  percent: number;
  at: number;
  rate: number | null;
  detail: string;
}

interface Step {
  name: string;
  startedAt: number;
  endedAt: number | null;
}

const paint = (on: boolean) => (code: string, s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/**
 * The line cut to `columns - 1` visible characters, escape codes kept whole (a cut inside one would
 * garble the terminal), so that it never wraps and the block can be redrawn in place.
 */
export function fitToWidth(line: string, columns: number): string {
  const room = Math.max(1, columns - 1);
  let out = '';
  let visible = 0;
  let styled = false;
  for (let i = 0; i < line.length; ) {
    // An SGR escape (ESC [ … m) is copied whole and takes no room.
    if (line.charCodeAt(i) === 27) {
      const end = line.indexOf('m', i);
      const stop = end === -1 ? line.length : end + 1;
      out += line.slice(i, stop);
      styled = true;
      i = stop;
      continue;
    }
    const ch = String.fromCodePoint(line.codePointAt(i)!);
    if (visible === room) return styled ? `${out}\x1b[0m` : out;
    out += ch;
    visible++;
    i += ch.length;
  }
  return out;
}

function bar(percent: number, width: number): string {
  const full = Math.round((Math.max(0, Math.min(100, percent)) / 100) * width);
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
}

export class LiveView {
  private readonly c: (code: string, s: string) => string;
  private steps: Step[] = [];
  private leaf = '';
  private now = 0;
  private sync: Progress | null = null;
  private memory: Progress | null = null;
  private drawn = 0;
  private plainShown = { sync: -1, memory: -1 };

  private readonly screen: Screen;

  constructor(screen: Screen) {
    // A terminal that reports no width is taken as 80 columns wide.
    this.screen = screen.columns > 0 ? screen : { ...screen, columns: 80 };
    this.c = paint(screen.color);
  }

  /** The step the run is in now ("dualMaster › syncing.polling"). */
  get current(): string {
    return this.leaf;
  }

  onEvent(event: RunEvent): void {
    if (event.type === 'state') {
      this.now = event.at;
      this.leaf = event.value;
      const top = event.value.split('.')[0] ?? event.value;
      const last = this.steps.at(-1);
      if (last?.name !== top) {
        if (last !== undefined) last.endedAt = event.at;
        this.steps.push({ name: top, startedAt: event.at, endedAt: null });
        if (top !== 'migrating') this.memory = null;
        this.sync = null;
      }
      this.redraw();
    } else if (event.type === 'feedback') {
      const text = event.level === 'warning' ? this.c('33', `WARNING: ${event.message}`) : event.message;
      this.line(text);
      this.plainShown.sync = -1;
    } else if (event.type === 'forecast') {
      this.eta.forecast(event.copySeconds);
    } else {
      this.now = Math.max(this.now, event.at);
      const prev = event.kind === 'sync' ? this.sync : this.memory;
      const dt = prev === null ? 0 : (event.at - prev.at) / 1000;
      let rate: number | null = prev?.rate ?? null;
      if (prev !== null && dt > 0)
        rate = event.kind === 'memory' ? null : (event.percent - prev.percent) / dt;
      let detail = '';
      if (event.kind === 'memory') {
        const prevMiB = this.memoryMiB;
        const mibRate = prev !== null && dt > 0 ? (event.transferredMiB - prevMiB) / dt : null;
        this.memoryMiB = event.transferredMiB;
        const eta = this.etaStep(this.eta.observeCopy(event), event.at);
        detail = `${event.transferredMiB}/${event.totalMiB} MiB${mibRate ? `  ${mibRate.toFixed(0)} MiB/s` : ''}${eta.seconds !== null ? `  ETA ${seconds(eta.seconds * 1000)}` : ''}`;
        rate = mibRate;
      } else {
        this.etaStep(this.eta.observeSync(event.percent, event.at), event.at);
        if (rate !== null && rate > 0) detail = `ETA ${seconds(((100 - event.percent) / rate) * 1000)}`;
      }
      const next: Progress = { percent: event.percent, at: event.at, rate, detail };
      if (event.kind === 'sync') this.sync = next;
      else this.memory = next;
      if (this.screen.tty) this.redraw();
      else this.plainProgress(event.kind, event.percent);
    }
  }

  private memoryMiB = 0;
  /** The run's ETA: the resync it waits for, then its copy (see RunEta). */
  private readonly eta = new RunEta();
  /** When the run's ETA says it ends, on the world's clock (null: not known, or never). */
  private endsAt: number | null = null;

  /** The run's ETA moved: kept for the block, and said when it moved later (always with its reason). */
  private etaStep(step: EtaStep, at: number): EtaStep {
    this.endsAt = step.seconds === null ? null : at + step.seconds * 1000;
    if (step.why !== null && step.seconds !== null)
      this.line(`ETA now ${seconds(step.seconds * 1000)}: ${step.why}`);
    else if (step.why !== null) this.line(`no end in sight at these rates: ${step.why}`);
    return step;
  }

  private plainProgress(kind: 'sync' | 'memory', percent: number) {
    const tenth = Math.floor(percent / 10);
    if (tenth <= this.plainShown[kind] || percent >= 100) return;
    this.plainShown[kind] = tenth;
    this.screen.write(
      kind === 'sync'
        ? `   - progress: ${percent.toFixed(1)}%\n`
        : `* memory transfer progress: ${percent.toFixed(2)} %\n`,
    );
  }

  private block(): string[] {
    const step = this.steps.at(-1);
    if (step === undefined) return [];
    // The bar gives way first on a narrow terminal; what still does not fit is cut by fit().
    const width = Math.max(5, Math.min(30, this.screen.columns - 50));
    const lines = [
      `${this.c('36', '▶')} ${this.c('1', step.name)}${this.leaf.includes('.') ? this.c('2', ` › ${this.leaf.slice(step.name.length + 1)}`) : ''}  ${this.c('2', seconds(this.now - step.startedAt))}${this.endsAt === null ? '' : this.c('2', `  run ETA ${seconds(Math.max(0, this.endsAt - this.now))}`)}`,
    ];
    for (const [label, p] of [
      ['resync', this.sync],
      ['memory', this.memory],
    ] as const) {
      if (p === null) continue;
      lines.push(
        `  ${label}  ${this.c('32', bar(p.percent, width))} ${p.percent.toFixed(1).padStart(5)}%  ${this.c('2', p.detail)}`,
      );
    }
    return lines.map((l) => fitToWidth(l, this.screen.columns));
  }

  private clear() {
    if (this.drawn > 0) this.screen.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  private redraw() {
    if (!this.screen.tty) return;
    this.clear();
    const lines = this.block();
    if (lines.length > 0) this.screen.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }

  /** A line above the status block. */
  line(text: string): void {
    if (this.screen.tty) {
      this.clear();
      this.screen.write(`${text}\n`);
      this.redraw();
    } else this.screen.write(`${text}\n`);
  }

  /** The end: the status block goes, a summary table stays. */
  finish(out: ProtocolOutput, endedAt: number, where: string | null, cleanup: string | null): string[] {
    this.clear();
    const last = this.steps.at(-1);
    if (last !== undefined && last.endedAt === null) last.endedAt = endedAt;
    // The outcome is a state too; it has no duration worth a row.
    this.steps = this.steps.filter((s) => s.name !== out.outcome);
    const name = Math.max(8, ...this.steps.map((s) => s.name.length));
    const ok = out.verdict === 'done';
    const rows = [
      '',
      `${'step'.padEnd(name)}  duration`,
      ...this.steps.map(
        (s) => `${s.name.padEnd(name)}  ${seconds((s.endedAt ?? endedAt) - s.startedAt).padStart(8)}`,
      ),
      `${'total'.padEnd(name)}  ${seconds(endedAt - (this.steps[0]?.startedAt ?? endedAt)).padStart(8)}`,
      '',
      `outcome: ${this.c(ok ? '32' : out.outcome === 'reverted' ? '33' : '31', out.outcome)}`,
      `instance ${out.instance} runs on: ${where ?? 'unknown'}; the config names ${out.primaryNode ?? 'unknown'}${
        out.secondaryNode === undefined ? '' : `, secondary ${out.secondaryNode ?? 'unknown'}`
      }${out.thirdCopy === undefined ? '' : `, third copy ${out.thirdCopy ?? 'unknown'}`}`,
    ];
    if (out.error !== undefined) rows.push(`error: ${out.error}`);
    for (const w of out.warnings) rows.push(this.c('33', `warning: ${w}`));
    for (const l of out.left ?? []) rows.push(`left: ${l}`);
    const next = nextStep(out, cleanup);
    if (next !== null) rows.push(`next: ${next}`);
    return rows;
  }
}
