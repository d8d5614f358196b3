import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition, InspectionEvent } from 'xstate';

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

/** An inspect callback that records the key of every transition the machine takes. */
export function recordTransitions(into: Set<string>) {
  return (event: InspectionEvent) => {
    if (event.type !== '@xstate.microstep') return;
    for (const t of event._transitions) into.add(transitionKey(t));
  };
}
