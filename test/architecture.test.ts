import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );

const importsOf = (file: string) =>
  [...readFileSync(file, 'utf8').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1] as string);

describe('the layering', () => {
  it('keeps machines/ pure: no I/O, nothing from src/, only xstate and zod from outside', () => {
    for (const file of sources('machines')) {
      for (const spec of importsOf(file)) {
        expect(spec.startsWith('./') || spec === 'xstate' || spec === 'zod', `${file} imports ${spec}`).toBe(
          true,
        );
      }
    }
  });

  it('exports drbd-migrate/machines on its own, as a user imports it', () => {
    const script =
      "const m = await import('drbd-migrate/machines'); console.log(typeof m.migrationMachine.provide, typeof m.cleanupMachine.provide, m.EFFECT_NAMES.length)";
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(out.trim()).toBe('function function 25');
  });
});
