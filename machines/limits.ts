import { z } from 'zod';

/**
 * Every wait is bounded twice: a total deadline and a no-progress deadline. One-shot steps are bounded
 * by stepTimeoutMs. All values are milliseconds of the clock of the world the machine runs against
 * (wall time on real nodes, simulated time in the simulator).
 */
/** The longest a JavaScript timer can wait (setTimeout's 2^31-1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const ms = z
  .number()
  .int('must be a whole number of milliseconds')
  .positive('must be more than 0 ms')
  .max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (about 24.8 days, the longest timer)`);

export const Limits = z
  .object({
    stepTimeoutMs: ms.describe(
      'How long one node operation may take (a DRBD reconnect, starting QEMU, a config write); default 180000.',
    ),
    pollWindowMs: ms.describe(
      'The longest one long poll (resync or memory progress) may block; answers come earlier on any change; default 5000.',
    ),
    syncTotalMs: ms.describe('How long a DRBD resync may take in all; default 3600000 (1 h).'),
    syncNoProgressMs: ms.describe('How long a resync may go without its percentage moving; default 120000.'),
    migrationTotalMs: ms.describe('How long the memory copy may take in all; default 3600000 (1 h).'),
    migrationNoProgressMs: ms.describe(
      'How long the memory copy may go without a byte more transferred; default 150000.',
    ),
  })
  .strict();
export type Limits = z.infer<typeof Limits>;

export const DEFAULT_LIMITS: Limits = {
  // Ganeti's attach waits up to 120 s for the handshake; a step gets a little more.
  stepTimeoutMs: 180_000,
  // The longest a single long poll may block; answers come earlier on any change.
  pollWindowMs: 5_000,
  syncTotalMs: 3_600_000,
  syncNoProgressMs: 120_000,
  migrationTotalMs: 3_600_000,
  // KubeVirt's progress watchdog defaults to 150 s; a copy that moves no byte for that long is stuck.
  migrationNoProgressMs: 150_000,
};

/** Progress watch of one wait: when it started, when it last moved, and the best value seen. */
export interface Watch {
  startedAt: number;
  lastAt: number;
  lastProgressAt: number;
  best: number;
}

/** Folds one observation (clock reading `at`, progress measure `metric`) into the watch. */
export function observe(watch: Watch | null, at: number, metric: number): Watch {
  if (watch === null) return { startedAt: at, lastAt: at, lastProgressAt: at, best: metric };
  const moved = metric > watch.best;
  return {
    startedAt: watch.startedAt,
    lastAt: at,
    lastProgressAt: moved ? at : watch.lastProgressAt,
    best: moved ? metric : watch.best,
  };
}

export type Overdue = 'total' | 'noProgress' | null;

export function overdue(watch: Watch, totalMs: number, noProgressMs: number): Overdue {
  if (watch.lastAt - watch.startedAt >= totalMs) return 'total';
  if (watch.lastAt - watch.lastProgressAt >= noProgressMs) return 'noProgress';
  return null;
}

/**
 * How long the next long poll may block: never past either deadline, so a deadline is noticed at the
 * latest when it falls due. The first poll of a wait asks for the state now (0).
 */
export function nextPollTimeout(
  watch: Watch | null,
  windowMs: number,
  totalMs: number,
  noProgressMs: number,
) {
  if (watch === null) return 0;
  const toTotal = watch.startedAt + totalMs - watch.lastAt;
  const toStall = watch.lastProgressAt + noProgressMs - watch.lastAt;
  return Math.max(0, Math.min(windowMs, toTotal, toStall));
}

export function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
