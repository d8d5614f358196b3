import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './tmp.js';

/**
 * The package as a user gets it: packed, unpacked into a fresh project's node_modules beside its
 * dependencies (linked from this checkout's, the versions the lock file pins: no network), every
 * entry point imported at run time without vitest, and type-checked under strict TypeScript.
 */

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  version: string;
  exports: Record<string, unknown>;
  dependencies: Record<string, string>;
};

/** Links every package of this checkout's node_modules into the consumer's, but the ones left out. */
function linkDependencies(consumer: string, leaveOut: (name: string) => boolean) {
  const root = resolve('node_modules');
  const names = readdirSync(root).flatMap((n) =>
    n.startsWith('@') ? readdirSync(join(root, n)).map((m) => `${n}/${m}`) : n.startsWith('.') ? [] : [n],
  );
  for (const name of names) {
    const at = join(consumer, 'node_modules', name);
    if (leaveOut(name) || existsSync(at)) continue;
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(join(root, name), at);
  }
}

describe('the packed package', () => {
  it('installs from its tarball and every entry point loads and type-checks', () => {
    const dir = tempDir('drbd-migrate-pack-');
    // Packed from a copy of what `files` ships (built by `npm test` before the tests), with npm's own
    // pack hooks run by name: packing here would rebuild dist/ under the other tests' feet.
    const copy = join(dir, 'checkout');
    for (const part of [
      'package.json',
      'README.md',
      'LICENSE',
      'scripts',
      'docs',
      'dist/machines',
      'dist/src',
    ]) {
      cpSync(part, join(copy, part), { recursive: true });
    }
    const manifest = readFileSync(join(copy, 'package.json'), 'utf8');
    const run = (args: string[]) =>
      execFileSync('npm', [...args, '--loglevel=error'], { cwd: copy, encoding: 'utf8' });
    run(['run', 'prepack']);
    const out = run(['pack', '--ignore-scripts', '--json', '--pack-destination', dir]);
    run(['run', 'postpack']);
    const packed = JSON.parse(out.slice(out.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('LICENSE');
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(
      files.filter((f) => !/^(dist\/(machines|src)\/|docs\/|README\.md$|LICENSE$|package\.json$)/.test(f)),
    ).toEqual([]);
    // The checkout's manifest is back as it was, byte for byte.
    expect(readFileSync(join(copy, 'package.json'), 'utf8')).toBe(manifest);

    const consumer = join(dir, 'consumer');
    const installed = join(consumer, 'node_modules', 'drbd-migrate');
    mkdirSync(installed, { recursive: true });
    execFileSync('tar', ['-xzf', join(dir, packed[0]!.filename), '-C', installed, '--strip-components=1']);
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    // What only a development checkout uses is not published: its devDependencies, its scripts.
    const published = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    expect(published.devDependencies).toBeUndefined();
    expect(Object.keys(published.scripts ?? {}).sort()).toEqual(['postpack', 'prepack']);
    expect(published.dependencies).toEqual(pkg.dependencies);
    // Without the optional peers: vitest, and Restate's SDK and server.
    linkDependencies(
      consumer,
      (name) => name === 'vitest' || name.startsWith('@vitest/') || name.startsWith('@restatedev/'),
    );

    // Run time, without vitest: every entry but the vitest suite's and the Restate runtime's.
    const entries = Object.keys(pkg.exports).filter(
      (e) => e !== './package.json' && e !== './testing/vitest' && e !== './restate',
    );
    const runtime = entries
      .map(
        (e, i) =>
          `import * as m${i} from 'drbd-migrate${e.slice(1)}'; if (Object.keys(m${i}).length === 0) throw new Error('${e} is empty');`,
      )
      .join('\n');
    writeFileSync(join(consumer, 'runtime.mjs'), `${runtime}\nconsole.log('ok');\n`);
    expect(execFileSync(process.execPath, ['runtime.mjs'], { cwd: consumer, encoding: 'utf8' }).trim()).toBe(
      'ok',
    );
    expect(
      execFileSync(process.execPath, [join(installed, 'dist/src/cli/main.js'), '--version'], {
        encoding: 'utf8',
      }),
    ).toBe(`drbd-migrate ${pkg.version}\n`);
    // The Restate runtime without its SDK says what to install; the CLI's worker refuses the same way.
    writeFileSync(join(consumer, 'restate.mjs'), "await import('drbd-migrate/restate');\n");
    const missing = spawnSync(process.execPath, ['restate.mjs'], { cwd: consumer, encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('npm install @restatedev/restate-sdk');
    const worker = spawnSync(
      process.execPath,
      [join(installed, 'dist/src/cli/main.js'), 'worker', '--world', join(consumer, 'none.json')],
      { encoding: 'utf8' },
    );
    expect(worker.status).toBe(2);
    expect(worker.stderr).toContain('npm install @restatedev/restate-sdk');
    // A local run needs none of it.
    const demo = spawnSync(
      process.execPath,
      [join(installed, 'dist/src/cli/main.js'), 'demo', '--fast', '--quiet'],
      {
        encoding: 'utf8',
      },
    );
    expect(demo.status, demo.stderr).toBe(0);
    expect(demo.stdout).toContain('migrated: web1 is primary on node-b');

    // Types, strict, with vitest there for the suite's entry; the Restate entry loads with its SDK.
    linkDependencies(consumer, () => false);
    writeFileSync(
      join(consumer, 'restate.mjs'),
      "const m = await import('drbd-migrate/restate'); console.log(typeof m.serveWorker);\n",
    );
    expect(execFileSync(process.execPath, ['restate.mjs'], { cwd: consumer, encoding: 'utf8' }).trim()).toBe(
      'function',
    );
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          types: ['node'],
          skipLibCheck: false,
        },
        files: ['consumer.ts'],
      }),
    );
    writeFileSync(
      join(consumer, 'consumer.ts'),
      `import { createActor } from 'xstate';
import { createSimCluster, runMigration, type ProtocolOutput } from 'drbd-migrate';
import { migrationMachine, provideEffects, type Effects } from 'drbd-migrate/machines';
import { machinePaths, replayPath, simWorld } from 'drbd-migrate/testing';
import { createContractSuite } from 'drbd-migrate/testing/vitest';
import { sshEffects } from 'drbd-migrate/ssh';
import { toDot, toMermaid, toSvg } from 'drbd-migrate/diagram';
import { runOnRestate, serveWorker } from 'drbd-migrate/restate';

const sim = createSimCluster();
const effects: Effects = sim.effects;
const actor = createActor(provideEffects(migrationMachine, effects), { input: { instance: 'web1' } });
const done: Promise<ProtocolOutput> = runMigration({ instance: 'web1' }, effects, { clock: sim.clock });
const drawn: string = toMermaid(migrationMachine) + toDot(migrationMachine);
const svg: Promise<string> = toSvg(migrationMachine);
const paths: number = machinePaths({ machine: 'cleanup' }).paths.length;
export { actor, done, drawn, svg, paths, replayPath, simWorld, createContractSuite, sshEffects, runOnRestate, serveWorker };
`,
    );
    const tsc = join(consumer, 'node_modules/typescript/bin/tsc');
    expect(execFileSync(process.execPath, [tsc, '-p', '.'], { cwd: consumer, encoding: 'utf8' })).toBe('');
  }, 240_000);
});
