/**
 * What each state means, which safety rules (DEVELOPERS.md) it guards and what an operator should
 * check there. Kept beside the machines and read from them (state `description` and `meta`), so the
 * diagrams, docs/states.md and `drbd-migrate explain` say the same thing.
 */
export interface StateMeta {
  /** Safety rules (1-6) this state exists to keep. */
  rules?: number[];
  /** What to look at when a run stops here. */
  check?: string;
  /** A point the diagrams mark. */
  marker?: 'commit point' | 'point of no return';
}

export const meta = (m: StateMeta) => m;
