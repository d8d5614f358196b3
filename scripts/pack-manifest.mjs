// npm pack/publish hooks: the published package.json leaves out `prepare` (it builds a development
// checkout after `npm ci`; a consumer has nothing to build). prepack saves the manifest and strips
// it, postpack puts the saved one back byte for byte.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const [action] = process.argv.slice(2);
const saved = 'package.json.unpacked';
if (action === 'strip') {
  const text = readFileSync('package.json', 'utf8');
  writeFileSync(saved, text);
  const pkg = JSON.parse(text);
  delete pkg.scripts.prepare;
  writeFileSync('package.json', `${JSON.stringify(pkg, null, 2)}\n`);
} else if (action === 'restore') {
  if (existsSync(saved)) renameSync(saved, 'package.json');
} else {
  console.error('usage: pack-manifest.mjs strip|restore');
  process.exit(2);
}
