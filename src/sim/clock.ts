import { type Clock, sleepOnTimer } from '../../machines/index.js';

interface Timer {
  at: number;
  seq: number;
  fire: () => void;
}

/**
 * Simulated time. Nothing in the simulator sleeps for real: a sleep is a timer in simulated time, and
 * when every pending piece of work is waiting on a timer the clock jumps to the earliest one. With a
 * pace (simulated ms per wall ms) it instead lets wall time pass in proportion, so a person can watch.
 */
export class SimClock implements Clock {
  private time: number;
  private readonly pace: number;
  private timers: Timer[] = [];
  private seq = 0;
  private ticking = false;
  private held = 0;

  constructor(options: { start?: number; pace?: number } = {}) {
    this.time = options.start ?? 0;
    this.pace = options.pace ?? Number.POSITIVE_INFINITY;
  }

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
    return sleepOnTimer((t, fire) => this.timer(t, fire), ms, signal);
  }

  timer(ms: number, fire: () => void): () => void {
    const timer: Timer = {
      at: this.time + Math.max(0, ms),
      seq: this.seq++,
      fire,
    };
    this.timers.push(timer);
    this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
    this.schedule();
    return () => {
      const i = this.timers.indexOf(timer);
      if (i >= 0) this.timers.splice(i, 1);
    };
  }

  /** Time stands still until `work` settles (real I/O of the orchestrator or the simulator). */
  async hold<T>(work: Promise<T>): Promise<T> {
    this.held++;
    try {
      return await work;
    } finally {
      this.held--;
      if (this.held === 0 && this.timers.length > 0) this.schedule();
    }
  }

  /** Timers still waiting; a simulation that ends with some left had work that never finished. */
  get pending(): number {
    return this.timers.length;
  }

  private schedule() {
    if (this.ticking) return;
    this.ticking = true;
    // setImmediate runs after every microtask: all work that could still add an earlier timer has run.
    setImmediate(() => void this.tick());
  }

  private async tick() {
    const next = this.timers[0];
    if (next === undefined || this.held > 0) {
      this.ticking = false;
      return;
    }
    if (Number.isFinite(this.pace) && next.at > this.time) {
      await new Promise((r) => setTimeout(r, (next.at - this.time) / this.pace));
    }
    const due = this.timers.shift();
    if (due !== undefined) {
      this.time = Math.max(this.time, due.at);
      due.fire();
    }
    this.ticking = false;
    if (this.timers.length > 0) this.schedule();
  }
}
