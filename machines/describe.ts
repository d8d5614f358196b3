import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/**
 * What each state means, which safety rules (DEVELOPERS.md) it guards and what an operator should
 * check there. Kept beside the machines and read from them (state `description` and `meta`), so the
 * diagrams, docs/states.md and `drbd-migrate explain` say the same thing.
 */
export interface StateMeta {
  /** Safety rules (1-9, DEVELOPERS.md and docs/safety.md) this state exists to keep. */
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

/**
 * Every transition a machine defines, under a key that is the same in every copy of the machine
 * (machine.provide() builds new state nodes): source state, event, and place among that event's
 * candidates. Eventless (always) transitions have the event ''.
 */
export interface TransitionInfo {
  key: string;
  source: string;
  event: string;
  index: number;
  guard: string | null;
  targets: string[];
}

function candidates(t: AnyTransitionDefinition): readonly AnyTransitionDefinition[] {
  const source = t.source as AnyStateNode;
  return t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
}

export function transitionKey(t: AnyTransitionDefinition): string {
  return `${t.source.id} ${t.eventType === '' ? '(always)' : t.eventType} #${candidates(t).indexOf(t)}`;
}

function guardName(t: AnyTransitionDefinition): string | null {
  const g = t.guard as unknown;
  if (g === undefined || g === null) return null;
  if (typeof g === 'string') return g;
  if (typeof g === 'function') return (g as { name?: string }).name || 'inline';
  const typed = g as { type?: string };
  return typed.type ?? 'inline';
}

export function transitionsOf(machine: AnyStateMachine): TransitionInfo[] {
  const out: TransitionInfo[] = [];
  const visit = (node: AnyStateNode) => {
    const lists: AnyTransitionDefinition[][] = [...node.transitions.values(), node.always ?? []];
    for (const list of lists) {
      list.forEach((t, index) => {
        out.push({
          key: transitionKey(t),
          source: t.source.id,
          event: t.eventType,
          index,
          guard: guardName(t),
          targets: (t.target ?? []).map((s: AnyStateNode) => s.id),
        });
      });
    }
    for (const child of Object.values(node.states) as AnyStateNode[]) visit(child);
  };
  visit(machine.root);
  return out;
}
