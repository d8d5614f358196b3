import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/**
 * A machine as a graph, read from its state nodes: every state with its invoked services, every
 * transition (events, invoke done/error, eventless, delayed) with its guard. Works for any xstate v5
 * machine; states tagged 'failure' and transitions on error events are marked so renderers can draw
 * the failure paths apart from the happy path, and `meta.marker` names points worth marking.
 */
export interface DiagramState {
  id: string;
  /** The state's own key ("polling"), or the machine id for the root. */
  key: string;
  parent: string | null;
  kind: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  initial: string | null;
  invokes: string[];
  tags: string[];
  description: string | null;
  marker: string | null;
  children: string[];
}

export interface DiagramEdge {
  from: string;
  /** The target state, or null for a targetless transition (actions only). */
  to: string | null;
  label: string;
  kind: 'event' | 'done' | 'error' | 'always' | 'after' | 'stateDone';
  guard: string | null;
  /** On an error event, or into a state tagged 'failure'. */
  failure: boolean;
}

export interface Diagram {
  id: string;
  states: DiagramState[];
  edges: DiagramEdge[];
}

export function guardLabel(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const g = guard as { name?: string; guards?: unknown[] };
    if (Array.isArray(g.guards)) {
      const inner = g.guards.map((x) => guardLabel(x) ?? '?');
      if (g.name === 'not') return `!${inner.join(', ')}`;
      return inner.join(g.name === 'or' ? ' || ' : ' && ');
    }
    return g.name || 'inline';
  }
  const typed = guard as { type?: unknown };
  return typeof typed.type === 'string' ? typed.type : 'inline';
}

/** How an event type reads on an edge: done(X), error(X), always, after D, or the event itself. */
const EVENT_LABELS: [RegExp, DiagramEdge['kind'], (m: RegExpExecArray) => string][] = [
  [/^$/, 'always', () => 'always'],
  [/^xstate\.done\.actor\.(.+)$/, 'done', (m) => `done(${m[1]})`],
  [/^xstate\.error\.actor\.(.+)$/, 'error', (m) => `error(${m[1]})`],
  [/^xstate\.after\.(.+?)\.(.+)$/, 'after', (m) => `after ${m[1]}`],
  [/^xstate\.done\.state\./, 'stateDone', () => 'done'],
];

function labelOf(type: string): { kind: DiagramEdge['kind']; label: string } {
  for (const [pattern, kind, label] of EVENT_LABELS) {
    const m = pattern.exec(type);
    if (m !== null) return { kind, label: label(m) };
  }
  return { kind: 'event', label: type };
}

function edgeOf(t: AnyTransitionDefinition, failureStates: Set<string>): DiagramEdge[] {
  const { kind, label } = labelOf(t.eventType);
  const guard = guardLabel(t.guard);
  const targets: (AnyStateNode | null)[] = t.target && t.target.length > 0 ? [...t.target] : [null];
  return targets.map((target) => ({
    from: t.source.id,
    to: target?.id ?? null,
    label: guard === null ? label : `${label} [${guard}]`,
    kind,
    guard,
    failure: kind === 'error' || (target !== null && failureStates.has(target.id)),
  }));
}

export function diagramOf(machine: AnyStateMachine): Diagram {
  const states: DiagramState[] = [];
  const nodes: AnyStateNode[] = [];
  const visit = (node: AnyStateNode, parent: string | null) => {
    nodes.push(node);
    const children = Object.values(node.states) as AnyStateNode[];
    const meta = (node.meta ?? {}) as { marker?: string };
    states.push({
      id: node.id,
      key: node.key,
      parent,
      kind: node.type,
      initial: node.initial?.target?.[0]?.id ?? null,
      invokes: node.invoke.map((i: { src: unknown; id: string }) =>
        typeof i.src === 'string' ? i.src : i.id,
      ),
      tags: [...node.tags],
      description: node.description ?? null,
      marker: typeof meta.marker === 'string' ? meta.marker : null,
      children: children.map((c) => c.id),
    });
    for (const child of children) visit(child, node.id);
  };
  visit(machine.root, null);
  const failureStates = new Set(states.filter((s) => s.tags.includes('failure')).map((s) => s.id));
  const edges: DiagramEdge[] = [];
  for (const node of nodes) {
    for (const list of node.transitions.values())
      for (const t of list) edges.push(...edgeOf(t, failureStates));
    for (const t of node.always ?? []) edges.push(...edgeOf(t, failureStates));
  }
  return { id: machine.id, states, edges };
}
