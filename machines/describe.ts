import type { AnyStateMachine, AnyStateNode } from 'xstate';

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

/** The state nodes from the machine's root down to a dotted state path ("dualMaster.syncing.polling"). */
export function statesOnPath(machine: AnyStateMachine, path: string): AnyStateNode[] {
  const nodes: AnyStateNode[] = [machine.root];
  for (const key of path.split('.').filter((k) => k !== '')) {
    const next = (nodes.at(-1)?.states as Record<string, AnyStateNode> | undefined)?.[key];
    if (next === undefined) break;
    nodes.push(next);
  }
  return nodes;
}

/** Whether a state, or one it sits in, carries a tag ('handover', 'failure', …). */
export function pathHasTag(machine: AnyStateMachine, path: string, tag: string): boolean {
  return statesOnPath(machine, path).some((n) => n.tags.includes(tag));
}
