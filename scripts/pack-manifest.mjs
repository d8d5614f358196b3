// npm pack/publish hooks: the published package.json leaves out what only a development checkout
// uses: the devDependencies, and every script but these two hooks (`prepare` builds a checkout after
// `npm ci`; the tests, benches and docs scripts name files that are not shipped). prepack saves the
// manifest and strips it, postpack puts the saved one back byte for byte.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const [action] = process.argv.slice(2);
const saved = 'package.json.unpacked';
if (action === 'strip') {
  const text = readFileSync('package.json', 'utf8');
  writeFileSync(saved, text);
  const pkg = JSON.parse(text);
  pkg.scripts = { prepack: pkg.scripts.prepack, postpack: pkg.scripts.postpack };
  delete pkg.devDependencies;
  // Scarf rides in with the Restate server, a devDependency only.
  delete pkg.scarfSettings;
  writeFileSync('package.json', `${JSON.stringify(pkg, null, 2)}\n`);
} else if (action === 'restore') {
  if (existsSync(saved)) renameSync(saved, 'package.json');
} else {
  console.error('usage: pack-manifest.mjs strip|restore');
  process.exit(2);
}
