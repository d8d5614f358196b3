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

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve(false);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};
