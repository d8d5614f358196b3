import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MACHINES_TO_DRAW } from '../../../machines/index.js';
import { toDot, toMermaid, toSvg } from '../../diagram/index.js';
import type { Command } from '../command.js';
import { fileError, UsageError } from '../errors.js';
import { packageRoot } from '../packageRoot.js';

export const diagram: Command = {
  name: 'diagram',
  summary: 'draw a machine as Mermaid, DOT or SVG',
  args: [{ name: 'MACHINE', optional: true, choices: Object.keys(MACHINES_TO_DRAW) }],
  options: ['format', 'output'],
  description: `Draws the machine from the machine object itself (default: migration). Failure edges are red
(dashed for an effect's error); the commit point and the point of no return are gold. SVG is rendered
offline by Graphviz (WebAssembly).`,
  examples: ['drbd-migrate diagram migration --format svg -o migration.svg', 'drbd-migrate diagram cleanup'],
  async run({ args, values, io }) {
    const name = args.MACHINE ?? 'migration';
    const machine = MACHINES_TO_DRAW[name]!;
    const format = values.format ?? 'mermaid';
    let text: string;
    if (format === 'mermaid') text = toMermaid(machine);
    else if (format === 'dot') text = toDot(machine);
    else if (format === 'svg') text = (await shippedSvg(name, toDot(machine))) ?? (await toSvg(machine));
    else throw new UsageError(`unknown format '${format}': expected mermaid, dot or svg`);
    if (values.output === undefined) {
      io.out(text.trimEnd());
      return 0;
    }
    await writeFile(values.output, text).catch((error: unknown) => {
      throw fileError('write', values.output!, error);
    });
    io.err(`wrote the ${name} machine as ${format} to ${values.output}`);
    return 0;
  },
};

/**
 * The SVG shipped in docs/, rendered from the same DOT (so the same drawing): Graphviz's layout of
 * a machine this size takes most of a second, and loading it another.
 */
async function shippedSvg(name: string, dot: string): Promise<string | null> {
  const root = packageRoot();
  if (root === null) return null;
  const docs = join(root.dir, 'docs');
  const [shippedDot, svg] = await Promise.all([
    readFile(join(docs, `${name}.dot`), 'utf8').catch(() => null),
    readFile(join(docs, `${name}.svg`), 'utf8').catch(() => null),
  ]);
  return shippedDot === dot ? svg : null;
}
