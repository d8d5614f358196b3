import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's folder and package.json (two or three folders up, from src or dist), if found. */
export function packageRoot(): { dir: string; version: string } | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'drbd-migrate') return { dir, version: pkg.version ?? 'unknown' };
    } catch {}
    dir = dirname(dir);
  }
  return null;
}
