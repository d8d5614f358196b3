/** Writes the generated docs (npm run docs): the machines' diagrams and tables, and the CLI's help. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fullHelp } from '../src/cli/cli.js';
import { generatedDocs } from '../src/docs/generate.js';

const dir = process.argv[2] ?? 'docs';
for (const [file, text] of await generatedDocs(fullHelp())) {
  await writeFile(join(dir, file), text);
  console.log(`wrote ${join(dir, file)}`);
}
