import type { ObjectContext, ObjectSharedContext } from '@restatedev/restate-sdk';
import { describe, expect, it } from 'vitest';
import { recordTold, StatusQuery, toldSince } from '../src/restate/told.js';
import { STATUS_EVENTS } from '../src/runtime/status.js';

/** What a run tells, kept in its Restate object as a ring of state keys (the state here a Map). */

function objectState() {
  const state = new Map<string, unknown>();
  const ctx = {
    set: (key: string, value: unknown) => void state.set(key, structuredClone(value)),
    get: async (key: string) => state.get(key) ?? null,
  };
  return { state, write: ctx as unknown as ObjectContext, read: ctx as unknown as ObjectSharedContext };
}

describe('the ring of told items', () => {
  const told = STATUS_EVENTS * 2 + 50;
  const { state, write, read } = objectState();
  for (let n = 1; n <= told; n++) recordTold(write, 'event', n, `item ${n}`);
  const numbers = (items: string[]) => items.map((i) => Number(i.split(' ')[1]));
  const from = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

  it('keeps the latest items only, one key each', async () => {
    expect(state.size).toBe(STATUS_EVENTS);
    expect(numbers(await toldSince<string>(read, 'event', told, 0))).toEqual(
      from(told - STATUS_EVENTS + 1, told),
    );
  });

  it('answers what a follower has not seen, as far as the ring holds it', async () => {
    expect(numbers(await toldSince<string>(read, 'event', told, told - 3))).toEqual(from(told - 2, told));
    expect(await toldSince<string>(read, 'event', told, told)).toEqual([]);
    expect(numbers(await toldSince<string>(read, 'event', told, 10))).toEqual(
      from(told - STATUS_EVENTS + 1, told),
    );
  });

  it('leaves out a slot a later item took, rather than misnumber it', async () => {
    // A status record read before the latest 50 items were told: their slots hold newer items.
    const stale = told - 50;
    expect(numbers(await toldSince<string>(read, 'event', stale, 0))).toEqual(
      from(stale - STATUS_EVENTS + 51, stale),
    );
  });

  it("reads a status handler's body: how many the reader has seen, or none", () => {
    expect(StatusQuery.parse(null)).toBe(0);
    expect(StatusQuery.parse({ seen: 7 })).toBe(7);
    expect(() => StatusQuery.parse({ seen: -1 })).toThrow();
  });
});
