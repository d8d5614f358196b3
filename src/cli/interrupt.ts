import {
  type Clock,
  type EffectCall,
  MACHINES_TO_DRAW,
  type MachineName,
  systemClock,
} from '../../machines/index.js';
import { abortOutlook, explain } from '../docs/explain.js';
import type { CliIo } from './io.js';
import { seconds } from './live.js';
import { type Target, targetFlag } from './target.js';

/** What the interrupt handler knows of the run it interrupts. */
export interface Interruptible {
  /** The machine and its instance; absent for a drain (each of its runs stops at its own safe point). */
  machine?: MachineName;
  instance?: string;
  target: Target | null;
  /** Kept by a journal (killed, `resume` takes it up); the demo keeps none. */
  journaled: boolean;
  /** The world's clock, for how long a step has run and when its deadline falls. */
  clock?: Clock;
}

/** A view the handler can write to; a run's view also knows the state the run is in. */
export interface InterruptView {
  line(text: string): void;
  readonly current?: string;
}

/** What the work gets: the operator's abort, and a call log that tells the handler what is in flight. */
export interface Interrupt {
  abort: AbortSignal;
  onCall: (call: EffectCall) => void;
}

interface InFlight {
  effect: string;
  node: string;
  startedAt: number;
  timeoutMs: number;
}

/**
 * Runs `work` with Ctrl-C and SIGTERM turned into an operator abort at the next safe point. The
 * first says what the abort will do from where the run stands; another says what is in flight, when
 * its deadline falls, and how to kill the process anyway. Every kind of run goes through this one.
 */
export async function withInterrupt<T>(
  io: CliIo,
  view: InterruptView,
  run: Interruptible,
  work: (interrupt: Interrupt) => Promise<T>,
): Promise<T> {
  const clock = run.clock ?? systemClock;
  const inFlight = new Map<string, InFlight>();
  const onCall = (call: EffectCall) => {
    const input = call.input as { node?: string; nodes?: string[]; timeoutMs?: number };
    const key = `${call.effect}:${input.node ?? input.nodes?.join(',')}`;
    if (call.phase !== 'start') inFlight.delete(key);
    else {
      inFlight.set(key, {
        effect: call.effect,
        node: input.node ?? input.nodes?.join(' and ') ?? 'the config',
        startedAt: clock.now(),
        timeoutMs: input.timeoutMs ?? 0,
      });
    }
  };
  const operator = new AbortController();
  const removeHandler = io.onInterrupt?.((signal) => {
    const key = signal === 'SIGTERM' ? 'SIGTERM' : 'Ctrl-C';
    const step = [...inFlight.values()][0];
    const now = step === undefined ? '' : `${step.effect} on ${step.node}`;
    const state = view.current ?? '';
    if (!operator.signal.aborted) {
      operator.abort();
      for (const l of firstWord(key, run, state, now)) view.line(l);
      return;
    }
    const left = step === undefined ? 0 : Math.max(0, step.startedAt + step.timeoutMs - clock.now());
    view.line(
      `${key} again: still in ${state || 'the run'}${step === undefined ? '' : `, waiting for ${now}, running for ${seconds(clock.now() - step.startedAt)}; its deadline is in ${seconds(left)}`}.`,
    );
    view.line(`  ${killWord(run)}`);
  });
  try {
    return await work({ abort: operator.signal, onCall });
  } finally {
    removeHandler?.();
  }
}

/** The first press: what the abort does from here. */
function firstWord(key: string, run: Interruptible, state: string, now: string): string[] {
  if (run.machine === undefined) {
    return [
      `${key}: abort requested; nothing more starts, and each run under way stops at its own safe point.`,
    ];
  }
  const what = explain(MACHINES_TO_DRAW, `${run.machine}.${state}`);
  return [
    `${key}: abort requested in ${state || 'the first step'}${what?.[1] ? ` (${what[1]})` : ''}`,
    `  It takes effect when the step in flight${now ? ` (${now})` : ''} ends; then ${abortOutlook(MACHINES_TO_DRAW[run.machine]!, state)}.`,
  ];
}

/** The later presses: the process is never killed mid-step; how to kill it anyway, and what then. */
function killWord(run: Interruptible): string {
  const name = run.instance ?? 'NAME';
  if (run.target?.restate !== undefined) {
    return `The run goes on in Restate whatever happens to this client: killed, follow it again with 'drbd-migrate resume ${name}${targetFlag(run.target)}'.`;
  }
  if (run.target === null || !run.journaled) {
    return 'The run will not be killed in the middle of a step. The demo keeps no journal: killed, the run is lost (migrate --world FILE keeps one).';
  }
  return `The run will not be killed in the middle of a step. To kill it anyway: kill -9 ${process.pid}, then 'drbd-migrate resume ${name}${targetFlag(run.target)}'.`;
}
