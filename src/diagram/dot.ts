import type { AnyStateMachine } from 'xstate';
import { type Diagram, type DiagramEdge, type DiagramState, diagramOf } from './model.js';

const q = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * Graphviz DOT: compound states are clusters (edges to and from them attach to an invisible anchor
 * inside); error edges are red and dashed, edges into failure states red, eventless edges dotted; the
 * commit point and the point of no return are drawn gold with their name.
 */
export function toDot(machine: AnyStateMachine | Diagram): string {
  const d: Diagram = 'edges' in machine ? (machine as Diagram) : diagramOf(machine);
  const byId = new Map(d.states.map((s) => [s.id, s]));
  // A compound state is entered at an invisible point above its initial child and left from one below
  // all its children, so edges to and from it keep the happy path flowing downwards.
  const entry = (s: DiagramState): string => (s.children.length > 0 ? `${s.id}#in` : s.id);
  const exit = (s: DiagramState): string => (s.children.length > 0 ? `${s.id}#out` : s.id);
  const lines = [
    `digraph ${q(d.id)} {`,
    '  compound=true; rankdir=TB; newrank=true; nodesep=0.3; ranksep=0.35;',
    '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#4a6fa5", fontname="Helvetica", fontsize=11];',
    '  edge [fontname="Helvetica", fontsize=9, color="#333333"];',
  ];
  const nodeAttrs = (s: DiagramState) => {
    const label = [
      s.key,
      ...(s.marker === null ? [] : [`★ ${s.marker}`]),
      ...(s.invokes.length > 0 ? [`⟳ ${s.invokes.join(', ')}`] : []),
    ];
    const attrs = [`label=${q(label.join('\n'))}`];
    if (s.description !== null) attrs.push(`tooltip=${q(s.description)}`);
    if (s.kind === 'final') attrs.push('shape=doubleoctagon');
    if (s.tags.includes('failure')) attrs.push('fillcolor="#fde2e2"', 'color="#c0392b"');
    else if (s.marker !== null) attrs.push('fillcolor="#fff3c4"', 'color="#b7950b"', 'penwidth=2');
    else if (s.kind === 'final') attrs.push('fillcolor="#e3f4e1"', 'color="#2e7d32"');
    return attrs.join(', ');
  };
  const render = (s: DiagramState, indent: string) => {
    if (s.children.length === 0) {
      lines.push(`${indent}${q(s.id)} [${nodeAttrs(s)}];`);
      return;
    }
    const style = s.tags.includes('failure')
      ? 'color="#c0392b"; style="rounded,dashed"'
      : s.marker !== null
        ? 'color="#b7950b"; style="rounded,bold"'
        : 'color="#8aa2c8"; style="rounded"';
    const label = s.marker === null ? s.key : `${s.key}  ★ ${s.marker}`;
    lines.push(`${indent}subgraph ${q(`cluster_${s.id}`)} {`);
    lines.push(
      `${indent}  label=${q(s.invokes.length > 0 ? `${label}  ⟳ ${s.invokes.join(', ')}` : label)}; ${style}; fontname="Helvetica"; fontsize=12;`,
    );
    if (s.description !== null) lines.push(`${indent}  tooltip=${q(s.description)};`);
    lines.push(`${indent}  ${q(entry(s))} [shape=point, width=0.01, style=invis];`);
    lines.push(`${indent}  ${q(exit(s))} [shape=point, width=0.01, style=invis];`);
    for (const c of s.children) render(byId.get(c)!, `${indent}  `);
    if (s.initial !== null)
      lines.push(`${indent}  ${q(entry(s))} -> ${q(entry(byId.get(s.initial)!))} [style=invis, weight=10];`);
    for (const c of s.children)
      lines.push(`${indent}  ${q(exit(byId.get(c)!))} -> ${q(exit(s))} [style=invis, weight=1];`);
    lines.push(`${indent}}`);
  };
  const root = d.states.find((s) => s.parent === null)!;
  lines.push('  "__start" [shape=circle, label="", width=0.18, style=filled, fillcolor="#333333"];');
  for (const c of root.children) render(byId.get(c)!, '  ');
  if (root.initial !== null) lines.push(`  "__start" -> ${q(entry(byId.get(root.initial)!))};`);
  const edgeAttrs = (e: DiagramEdge) => {
    const attrs = [`label=${q(e.label)}`];
    const from = byId.get(e.from)!;
    const to = e.to === null ? null : byId.get(e.to)!;
    if (from.children.length > 0) attrs.push(`ltail=${q(`cluster_${from.id}`)}`);
    if (to !== null && to.children.length > 0) attrs.push(`lhead=${q(`cluster_${to.id}`)}`);
    // Only the happy path shapes the layout; failure edges are drawn over it.
    if (e.kind === 'error')
      attrs.push('color="#c0392b"', 'fontcolor="#c0392b"', 'style=dashed', 'constraint=false');
    else if (e.failure) attrs.push('color="#c0392b"', 'fontcolor="#c0392b"', 'constraint=false');
    else if (e.kind === 'always') attrs.push('style=dotted', 'weight=3');
    else attrs.push('weight=3');
    return attrs.join(', ');
  };
  for (const e of d.edges) {
    if (e.to === null) continue;
    const from = byId.get(e.from)!;
    const to = byId.get(e.to)!;
    lines.push(`  ${q(exit(from))} -> ${q(entry(to))} [${edgeAttrs(e)}];`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
