import { describe, expect, it } from 'vitest';
import { nextPollTimeout, observe, overdue } from '../machines/limits.js';

describe('progress watch', () => {
  it('starts at the first observation and asks for the state now', () => {
    expect(nextPollTimeout(null, 5_000, 60_000, 10_000)).toBe(0);
    const w = observe(null, 1_000, 0);
    expect(w).toEqual({ startedAt: 1_000, lastAt: 1_000, lastProgressAt: 1_000, best: 0 });
    expect(nextPollTimeout(w, 5_000, 60_000, 10_000)).toBe(5_000);
  });

  it('moves the no-progress deadline only when the measure improves', () => {
    let w = observe(null, 0, 10);
    w = observe(w, 4_000, 10);
    expect(w.lastProgressAt).toBe(0);
    w = observe(w, 8_000, 5);
    expect(w.lastProgressAt).toBe(0);
    expect(nextPollTimeout(w, 5_000, 60_000, 10_000)).toBe(2_000);
    w = observe(w, 9_000, 11);
    expect(w.lastProgressAt).toBe(9_000);
    expect(overdue(observe(w, 19_000, 11), 60_000, 10_000)).toBe('noProgress');
  });

  it('never lets a poll outlast the total deadline', () => {
    let w = observe(null, 0, 0);
    w = observe(w, 58_000, 50);
    expect(nextPollTimeout(w, 5_000, 60_000, 10_000)).toBe(2_000);
    expect(overdue(observe(w, 60_000, 60), 60_000, 10_000)).toBe('total');
  });
});
