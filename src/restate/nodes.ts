import type { ObjectContext, ObjectSharedContext } from '@restatedev/restate-sdk';
import { NODE_OBJECT } from './names.js';
import { restate } from './sdk.js';

/**
 * A node's slots, held across every worker: at most `limit` runs touch the node at once (its link
 * carries their resyncs and memory copies). One virtual object per node, keyed CLUSTER/NODE; a run
 * asks with an awakeable and sleeps (suspended, costing nothing) until a slot is its own. Grants
 * are first come, first served.
 */
interface Slots {
  limit: number;
  holders: string[];
  waiting: { holder: string; awakeable: string }[];
}

interface Ask {
  holder: string;
  awakeable: string;
  limit: number;
}

const EMPTY: Slots = { limit: 1, holders: [], waiting: [] };

/** Grants waiting asks while slots are free. */
function grant(ctx: ObjectContext, slots: Slots): Slots {
  const holders = slots.holders.slice();
  const waiting = slots.waiting.slice();
  while (holders.length < slots.limit && waiting.length > 0) {
    const next = waiting.shift()!;
    holders.push(next.holder);
    ctx.resolveAwakeable(next.awakeable, null);
  }
  return { ...slots, holders, waiting };
}

export function nodeObject() {
  return restate.object({
    name: NODE_OBJECT,
    handlers: {
      acquire: async (ctx: ObjectContext, ask: Ask) => {
        const slots = (await ctx.get<Slots>('slots')) ?? EMPTY;
        // Asked again (a replayed run): a holder keeps its slot, a waiter its place.
        if (slots.holders.includes(ask.holder)) {
          ctx.resolveAwakeable(ask.awakeable, null);
          return;
        }
        const waiting = slots.waiting.filter((w) => w.holder !== ask.holder);
        waiting.push({ holder: ask.holder, awakeable: ask.awakeable });
        ctx.set('slots', grant(ctx, { ...slots, limit: ask.limit, waiting }));
      },
      release: async (ctx: ObjectContext, holder: string) => {
        const slots = (await ctx.get<Slots>('slots')) ?? EMPTY;
        ctx.set(
          'slots',
          grant(ctx, {
            ...slots,
            holders: slots.holders.filter((h) => h !== holder),
            waiting: slots.waiting.filter((w) => w.holder !== holder),
          }),
        );
      },
      slots: restate.handlers.object.shared(
        async (ctx: ObjectSharedContext): Promise<Slots> => (await ctx.get<Slots>('slots')) ?? EMPTY,
      ),
    },
  });
}

/**
 * Holds a slot on each node for the length of `work`, taken in name order (two runs that need the
 * same two nodes cannot each hold one and wait for the other) and given back whatever happens.
 */
export async function withNodeSlots<T>(
  ctx: ObjectContext,
  cluster: string,
  nodes: string[],
  limit: number,
  waiting: (node: string) => void,
  work: () => Promise<T>,
): Promise<T> {
  const holder = ctx.request().id;
  const taken: string[] = [];
  const send = (node: string, method: 'acquire' | 'release', parameter: unknown) =>
    ctx.genericSend({
      service: NODE_OBJECT,
      method,
      key: `${cluster}/${node}`,
      parameter,
      inputSerde: restate.serde.json,
    });
  try {
    for (const node of [...new Set(nodes)].sort()) {
      const { id, promise } = ctx.awakeable<null>();
      send(node, 'acquire', { holder, awakeable: id, limit });
      taken.push(node);
      waiting(node);
      await promise;
    }
    return await work();
  } finally {
    for (const node of taken) send(node, 'release', holder);
  }
}
