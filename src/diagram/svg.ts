import type { AnyStateMachine } from 'xstate';
import { toDot } from './dot.js';
import type { Diagram } from './model.js';

let graphviz: Promise<{ dot(source: string, format?: 'svg'): string }> | null = null;

/** SVG rendered offline by Graphviz compiled to WebAssembly (no browser, no system package). */
export async function toSvg(machine: AnyStateMachine | Diagram): Promise<string> {
  graphviz ??= import('@hpcc-js/wasm-graphviz').then((m) => m.Graphviz.load());
  return (await graphviz).dot(toDot(machine), 'svg');
}
