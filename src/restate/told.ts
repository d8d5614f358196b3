import type { ObjectContext, ObjectSharedContext } from '@restatedev/restate-sdk';
import { z } from 'zod';
import { STATUS_EVENTS } from '../runtime/status.js';
import { restate } from './sdk.js';

/**
 * What a run tells while it goes (an instance run's events, an evacuation's notices), kept in its
 * object's state as a ring of the latest STATUS_EVENTS, each item in a key of its own and written
 * once. Rewriting one record holding all of them at each item put tens of KiB per step into the
 * journal. The count (`told`) lives in the run's status record.
 */

interface Slot<T> {
  n: number;
  item: T;
}

const slotKey = (prefix: string, n: number) => `${prefix}:${n % STATUS_EVENTS}`;

/** Records the `n`th item told (numbered from 1). */
export function recordTold<T>(ctx: ObjectContext, prefix: string, n: number, item: T): void {
  ctx.set<Slot<T>>(slotKey(prefix, n), { n, item });
}

/**
 * The items after the first `seen` of `told`, as far as the ring still holds them. A slot already
 * overwritten by a later item (a reader far behind a fast run) is left out, never misnumbered.
 */
export async function toldSince<T>(
  ctx: ObjectSharedContext,
  prefix: string,
  told: number,
  seen: number,
): Promise<T[]> {
  const items: T[] = [];
  for (let n = Math.max(seen, told - STATUS_EVENTS) + 1; n <= told; n++) {
    const slot = await ctx.get<Slot<T>>(slotKey(prefix, n));
    if (slot?.n === n) items.push(slot.item);
  }
  return items;
}

/**
 * The shared `status` handler of an object whose run tells items: its status record, with `field`
 * filled with what the reader has not seen (body `{"seen": N}`; none: the latest the ring holds).
 */
export function toldStatusHandler<S extends { told: number }, K extends keyof S>(prefix: string, field: K) {
  return restate.handlers.object.shared(
    async (ctx: ObjectSharedContext, query: unknown): Promise<S | null> => {
      const status = await ctx.get<S>('status');
      if (status === null) return null;
      return { ...status, [field]: await toldSince(ctx, prefix, status.told, seenIn(query)) };
    },
  );
}

/** A status handler's body: how many items the reader has seen (none: it wants the latest). */
export const StatusQuery = z
  .object({ seen: z.number().int().nonnegative() })
  .nullish()
  .transform((q) => q?.seen ?? 0);

/** The `seen` of a status handler's body; a body of another shape is refused, not retried. */
export function seenIn(query: unknown): number {
  const parsed = StatusQuery.safeParse(query);
  if (!parsed.success) {
    throw new restate.TerminalError(`a status query is {"seen": N} or nothing: ${parsed.error.message}`, {
      errorCode: 400,
    });
  }
  return parsed.data;
}
