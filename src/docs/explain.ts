import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { type StateMeta, statesOnPath } from '../../machines/describe.js';
import { EVACUATION_OUTCOMES } from '../../machines/evacuation.js';
import { guardLabel } from '../diagram/model.js';

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
/** The states whose path ends in `what` ("attaching": migration.dualMaster.attaching). */
export function statesNamed(machines: Record<string, AnyStateMachine>, what: string): string[] {
  return Object.entries(machines).flatMap(([name, machine]) =>
    explainEntries(machine)
      .filter((e) => e.path.endsWith(`.${what}`))
      .map((e) => `${name}.${e.path}`),
  );
}

export function explain(machines: Record<string, AnyStateMachine>, what: string): string[] | null {
  // A state's own name, as the live view shows it ("dualMaster › attaching"), finds it when only one
  // state of the machines has it.
  const named = statesNamed(machines, what);
  for (const [name, machine] of Object.entries(machines)) {
    const entries = explainEntries(machine);
    const asked = what.startsWith(`${name}.`) ? what.slice(name.length + 1) : what;
    const exact = entries.some((e) => e.path === asked);
    const path =
      !exact && named.length === 1 && named[0]!.startsWith(`${name}.`)
        ? named[0]!.slice(name.length + 1)
        : asked;
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
  // A drain's outcomes are its output's, not states of its machine.
  const outcome = what.replace(/^evacuation\./, '') as keyof typeof EVACUATION_OUTCOMES;
  const known = EVACUATION_OUTCOMES[outcome];
  if (known === undefined) return null;
  return [`evacuation outcome ${outcome}`, known.means, `check: ${known.check}`];
}

/**
 * What an operator abort would do now, read from the machine's own ABORT transitions (the innermost
 * state handling it wins, its candidates tried in order).
 */
/** Guards as an operator reads them: "the memory copy has passed the point of no return". */
const GUARD_WORDS: Record<string, string> = {
  pastPointOfNoReturn: 'the memory copy has passed the point of no return',
};
function guardWords(label: string | null): string | null {
  if (label === null) return null;
  return GUARD_WORDS[label] ?? label.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

export function abortOutlook(machine: AnyStateMachine, path: string): string {
  const handler = statesOnPath(machine, path)
    .reverse()
    .map((n) => n.transitions.get('ABORT'))
    .find((list) => list !== undefined && list.length > 0);
  if (handler === undefined) return 'the run ignores it';
  return handler
    .map((t, i) => {
      const target = t.target?.[0] as AnyStateNode | undefined;
      const what =
        target === undefined
          ? 'the run refuses it and finishes what it started'
          : `the run goes to ${target.key}${target.description ? ` (${target.description.replace(/\.$/, '')})` : ''}`;
      const guard = guardWords(guardLabel(t.guard));
      return guard !== null ? `if ${guard}, ${what}` : i > 0 ? `otherwise ${what}` : what;
    })
    .join('; ');
}
