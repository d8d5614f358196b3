/**
 * The clock of the world a machine runs against. Deadlines and step timeouts count in it, so the
 * simulator can run hours of simulated time in a moment and real nodes use wall time.
 */
export interface Clock {
  now(): number;
  /** Resolves true after ms, or false as soon as the signal aborts; never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean>;
  /**
   * Simulated clocks only: no time passes while the orchestrator's own work (a journal write) runs,
   * since a simulated clock jumps ahead whenever nothing else seems to be happening.
   */
  hold?<T>(work: Promise<T>): Promise<T>;
  /**
   * Calls `fire` after ms unless the returned disarm is called first: a deadline that is almost
   * always disarmed, at less cost than a sleep with a signal (see `armTimer` for clocks without it).
   */
  timer?(ms: number, fire: () => void): () => void;
}

/** Why a deadline's own sleep is cut short (a reason of ours: no DOMException is built for it). */
const DISARMED = new Error('the deadline was disarmed');

/** A deadline on any clock: its own timer where it has one, a sleep with a signal otherwise. */
export function armTimer(clock: Clock, ms: number, fire: () => void): () => void {
  if (clock.timer !== undefined) return clock.timer(ms, fire);
  const disarm = new AbortController();
  void clock.sleep(ms, disarm.signal).then((elapsed) => elapsed && fire());
  return () => disarm.abort(DISARMED);
}

/** setTimeout's longest wait; a longer one fires at once (with a TimeoutOverflowWarning). */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** A sleep on a clock's timer: true when the time passed, false as soon as the signal aborts. */
export function sleepOnTimer(
  timer: NonNullable<Clock['timer']>,
  ms: number,
  signal?: AbortSignal,
): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      disarm();
      resolve(false);
    };
    const disarm = timer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** setTimeout's: a wait past the longest timer is slept in pieces. */
function systemTimer(ms: number, fire: () => void): () => void {
  const until = Date.now() + ms;
  let timer: ReturnType<typeof setTimeout>;
  const arm = () => {
    timer = setTimeout(
      () => (until - Date.now() > 0 ? arm() : fire()),
      Math.max(0, Math.min(until - Date.now(), LONGEST_TIMER_MS)),
    );
  };
  arm();
  return () => clearTimeout(timer);
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => sleepOnTimer(systemTimer, ms, signal),
  timer: systemTimer,
};
