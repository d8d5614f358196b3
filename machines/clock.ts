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
}

/** setTimeout's longest wait; a longer one fires at once (with a TimeoutOverflowWarning). */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve(false);
      const until = Date.now() + ms;
      let timer: ReturnType<typeof setTimeout>;
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      // A wait past the longest timer is slept in pieces.
      const arm = () => {
        const left = until - Date.now();
        timer = setTimeout(
          () => {
            if (until - Date.now() > 0) return arm();
            signal?.removeEventListener('abort', onAbort);
            resolve(true);
          },
          Math.max(0, Math.min(left, LONGEST_TIMER_MS)),
        );
      };
      arm();
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};
