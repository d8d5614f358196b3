import { z } from 'zod';

/**
 * Safety rule 9 across runtimes: one run at a time per instance, whichever runtime starts it. The
 * journal's lock files see only runs of their own host and state directory, and Restate's one run
 * per key only its own invocations; a lease kept where they all meet (the config store: the served
 * world, the cluster file's directory) sees both. It has an expiry its holder renews, not a process
 * id (which cannot judge another host): a dead holder's lease lapses, a live one's never does.
 */

/** What the store answers: whether `holder` holds the lease now, and whose it is until when. */
export const LeaseAnswer = z.object({
  held: z.boolean(),
  holder: z.string(),
  /** Wall-clock ms at which the lease lapses unless renewed. */
  untilMs: z.number(),
});
export type LeaseAnswer = z.infer<typeof LeaseAnswer>;

/** Where leases are kept. Taking a lease one holds already renews it. */
export interface LeaseStore {
  acquire(instance: string, holder: string, ttlMs: number): Promise<LeaseAnswer>;
  /** Gives the lease up if `holder` holds it; nothing otherwise. */
  release(instance: string, holder: string): Promise<void>;
}

export interface LeaseOptions {
  store: LeaseStore;
  /** Who asks: the same for a run and its resume (a journal's host and directory, a Restate invocation). */
  holder: string;
  ttlMs?: number;
  /** Wall-clock ms (tests pass their own). */
  now?: () => number;
}

export const DEFAULT_LEASE_MS = 30_000;

type Held = { holder: string; untilMs: number };

/** The store's one decision, written once for every store: free, lapsed, or the asker's own. */
export function judgeLease(
  current: Held | undefined,
  holder: string,
  ttlMs: number,
  now: number,
): { answer: LeaseAnswer; next: Held | undefined } {
  if (current === undefined || current.untilMs <= now || current.holder === holder) {
    const next = { holder, untilMs: now + ttlMs };
    return { answer: { held: true, ...next }, next };
  }
  return { answer: { held: false, ...current }, next: current };
}

/** Leases kept in this process (a served world keeps them for every worker and client it serves). */
export function memoryLeases(now: () => number = Date.now): LeaseStore {
  const leases = new Map<string, Held>();
  return {
    acquire: async (instance, holder, ttlMs) => {
      const { answer, next } = judgeLease(leases.get(instance), holder, ttlMs, now());
      if (next !== undefined) leases.set(instance, next);
      return answer;
    },
    release: async (instance, holder) => {
      if (leases.get(instance)?.holder === holder) leases.delete(instance);
    },
  };
}

/** The run lost its lease (another took it after it lapsed, or it could not be renewed in time). */
export class LeaseLost extends Error {
  override name = 'LeaseLost';
}

/**
 * Runs `work` holding the instance's lease: refused (with `refused`'s answer) if another holds it,
 * renewed every third of its time while the work goes on, given up at the end. `check` throws once
 * the lease can no longer be counted on, so that a run cut off from the store stops touching nodes
 * before another may take over.
 */
export async function withLease<T>(
  lease: LeaseOptions,
  instance: string,
  refused: (answer: LeaseAnswer, ttlMs: number) => T,
  work: (check: () => void) => Promise<T>,
): Promise<T> {
  const ttlMs = lease.ttlMs ?? DEFAULT_LEASE_MS;
  const now = lease.now ?? Date.now;
  let asked = now();
  const first = LeaseAnswer.parse(await lease.store.acquire(instance, lease.holder, ttlMs));
  if (!first.held) return refused(first, ttlMs);
  // Counted from before the store was asked: never later than the store's own expiry.
  let validUntil = asked + ttlMs;
  let lost: string | null = null;
  const renew = async () => {
    asked = now();
    try {
      const answer = LeaseAnswer.parse(await lease.store.acquire(instance, lease.holder, ttlMs));
      if (answer.held) validUntil = asked + ttlMs;
      else lost = `${answer.holder} took it`;
    } catch {
      // Tried again at the next renewal; `check` decides when it is too late.
    }
  };
  const timer = setInterval(() => void renew(), Math.max(1, Math.floor(ttlMs / 3)));
  timer.unref();
  const check = () => {
    if (lost !== null)
      throw new LeaseLost(`the run lost its lease on ${instance} (${lost}): it touches no node again`);
    if (now() >= validUntil)
      throw new LeaseLost(
        `the lease on ${instance} could not be renewed within ${ttlMs} ms (the config store does not answer): the run touches no node again`,
      );
  };
  try {
    return await work(check);
  } finally {
    clearInterval(timer);
    await lease.store.release(instance, lease.holder).catch(() => {});
  }
}
