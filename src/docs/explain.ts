import type { AnyStateMachine, AnyStateNode } from 'xstate';
import type { StateMeta } from '../../machines/describe.js';

export interface ExplainEntry {
  /** Dotted path below the machine: "dualMaster.syncing.polling". */
  path: string;
  description: string | null;
  rules: number[];
  check: string | null;
  marker: string | null;
  invokes: string[];
  tags: string[];
}

/** Every state of a machine with what it means, read from the machine itself. */
export function explainEntries(machine: AnyStateMachine): ExplainEntry[] {
  const out: ExplainEntry[] = [];
  const visit = (node: AnyStateNode, path: string[]) => {
    for (const [key, child] of Object.entries(node.states) as [string, AnyStateNode][]) {
      const p = [...path, key];
      const meta = (child.meta ?? {}) as StateMeta;
      out.push({
        path: p.join('.'),
        description: child.description ?? null,
        rules: meta.rules ?? [],
        check: meta.check ?? null,
        marker: meta.marker ?? null,
        invokes: child.invoke.map((i: { src: unknown; id: string }) =>
          typeof i.src === 'string' ? i.src : i.id,
        ),
        tags: [...child.tags],
      });
      visit(child, p);
    }
  };
  visit(machine.root, []);
  return out;
}

/**
 * What a state (or outcome) means for an operator: its own description, and those of the states it
 * sits in, nearest first, so an inner step without a text of its own is still explained.
 */
export function explain(machines: Record<string, AnyStateMachine>, what: string): string[] | null {
  for (const [name, machine] of Object.entries(machines)) {
    const entries = explainEntries(machine);
    const path = what.startsWith(`${name}.`) ? what.slice(name.length + 1) : what;
    const entry = entries.find((e) => e.path === path);
    if (entry === undefined) continue;
    const lines = [`${name}.${entry.path}${entry.marker ? ` (★ ${entry.marker})` : ''}`];
    const chain = entries.filter((e) => path === e.path || path.startsWith(`${e.path}.`)).reverse();
    for (const e of chain)
      if (e.description) lines.push(`${e === entry ? '' : `within ${e.path}: `}${e.description}`);
    const rules = [...new Set(chain.flatMap((e) => e.rules))].sort();
    if (rules.length > 0)
      lines.push(`guards safety rule${rules.length > 1 ? 's' : ''} ${rules.join(', ')} (docs/safety.md)`);
    if (entry.invokes.length > 0) lines.push(`calls: ${entry.invokes.join(', ')}`);
    const check = chain.find((e) => e.check !== null)?.check;
    if (check) lines.push(`check: ${check}`);
    return lines;
  }
  return null;
}
