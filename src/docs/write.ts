/** Writes the generated docs (npm run docs). */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fullHelp } from '../cli/cli.js';
import { generatedDocs } from './generate.js';

const dir = process.argv[2] ?? 'docs';
for (const [file, text] of await generatedDocs(fullHelp())) {
  await writeFile(join(dir, file), text);
  console.log(`wrote ${join(dir, file)}`);
}
