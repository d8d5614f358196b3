import type { AnyStateMachine } from 'xstate';
import { type Diagram, type DiagramState, diagramOf } from './model.js';

const idOf = (id: string) => id.replace(/[^A-Za-z0-9_]/g, '_');
const text = (s: string) =>
  s
    .replace(/[:;"#]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();

/** Mermaid stateDiagram-v2: renders on GitHub as it is. Failure states are coloured, markers noted. */
export function toMermaid(machine: AnyStateMachine | Diagram): string {
  const d: Diagram = 'edges' in machine ? (machine as Diagram) : diagramOf(machine);
  const byId = new Map(d.states.map((s) => [s.id, s]));
  const lines = [
    'stateDiagram-v2',
    '  classDef failure fill:#fde2e2,stroke:#c0392b,color:#7b1d1d',
    '  classDef marked fill:#fff3c4,stroke:#b7950b,stroke-width:2px',
  ];
  const render = (s: DiagramState, indent: string) => {
    const name = s.marker === null ? s.key : `${s.key} (${s.marker})`;
    if (s.children.length === 0) {
      lines.push(`${indent}state "${text(name)}" as ${idOf(s.id)}`);
    } else {
      lines.push(`${indent}state "${text(name)}" as ${idOf(s.id)} {`);
      if (s.initial !== null) lines.push(`${indent}  [*] --> ${idOf(s.initial)}`);
      for (const c of s.children) render(byId.get(c)!, `${indent}  `);
      lines.push(`${indent}}`);
    }
    if (s.invokes.length > 0) lines.push(`${indent}${idOf(s.id)} : invoke ${s.invokes.join(', ')}`);
    if (s.kind === 'final') lines.push(`${indent}${idOf(s.id)} --> [*]`);
  };
  const root = d.states.find((s) => s.parent === null)!;
  if (root.initial !== null) lines.push(`  [*] --> ${idOf(root.initial)}`);
  for (const c of root.children) render(byId.get(c)!, '  ');
  for (const e of d.edges) {
    if (e.to === null) continue;
    lines.push(`  ${idOf(e.from)} --> ${idOf(e.to)} : ${text(e.label)}`);
  }
  for (const s of d.states) {
    if (s.parent === null) continue;
    if (s.tags.includes('failure')) lines.push(`  class ${idOf(s.id)} failure`);
    else if (s.marker !== null) lines.push(`  class ${idOf(s.id)} marked`);
  }
  return `${lines.join('\n')}\n`;
}
