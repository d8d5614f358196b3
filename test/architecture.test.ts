import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );

/**
 * Every module a file names, as the compiler reads it: imports of every form (type-only, side
 * effects, multi-line), `export … from`, dynamic `import()` and `require`.
 */
function specifiersOf(file: string): string[] {
  return ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);
}

/** A relative specifier as the file it names ("./x.js" → "machines/x.ts"). */
const resolved = (from: string, spec: string) => normalize(join(dirname(from), spec.replace(/\.js$/, '.ts')));

/** The room a file sits in: "machines", "src/cli", "src/index.ts". */
const roomOf = (file: string) =>
  file.startsWith('machines/') ? 'machines' : file.split('/').slice(0, 2).join('/');

const FILES = [...sources('machines'), ...sources('src')];
const GRAPH = new Map(
  FILES.map((f) => [
    f,
    specifiersOf(f)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolved(f, s)),
  ]),
);

/**
 * Which rooms each room may import (besides itself). The machines are the protocol alone; the runs
 * (runner, runtime, journal, restate, remote) never reach the simulator's testing kit nor the CLI;
 * transport (ssh) knows nothing of drivers; docs are generated from the machines, not the CLI; net
 * (ports on loopback for a child process to bind) stands on nothing.
 */
const ALLOWED: Record<string, string[]> = {
  machines: [],
  'src/runner': ['machines'],
  'src/runtime': ['machines', 'src/runner'],
  'src/journal': ['machines', 'src/runner', 'src/runtime'],
  'src/remote': ['machines', 'src/runner', 'src/runtime'],
  'src/restate': ['machines', 'src/net', 'src/runner', 'src/runtime'],
  'src/net': [],
  'src/sim': ['machines'],
  'src/cluster': ['machines'],
  'src/ssh': ['src/cluster'],
  'src/drivers': ['machines', 'src/cluster', 'src/ssh'],
  'src/backend': ['machines', 'src/cluster', 'src/drivers', 'src/sim', 'src/ssh'],
  'src/diagram': ['machines'],
  'src/docs': ['machines', 'src/cluster', 'src/diagram'],
  'src/testing': ['machines', 'src/runner', 'src/sim'],
};

/** Strongly connected groups of more than one file (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) found.push(group.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** The names a file imports, from each module it names (import and export … from, by the compiler). */
function namesImported(file: string): { spec: string; name: string }[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: { spec: string; name: string }[] = [];
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) {
      const spec = statement.moduleSpecifier.text;
      const bindings = statement.importClause?.namedBindings;
      if (bindings !== undefined && ts.isNamedImports(bindings))
        for (const e of bindings.elements) out.push({ spec, name: (e.propertyName ?? e.name).text });
    }
    if (ts.isExportDeclaration(statement) && statement.moduleSpecifier !== undefined) {
      const spec = (statement.moduleSpecifier as ts.StringLiteral).text;
      const clause = statement.exportClause;
      if (clause !== undefined && ts.isNamedExports(clause))
        for (const e of clause.elements) out.push({ spec, name: (e.propertyName ?? e.name).text });
    }
  }
  return out;
}

/** What starts a journaled or durable run or drain: the CLI reaches these only through a Runtime. */
const RUN_STARTERS = new Set([
  'runJournaled',
  'resumeRun',
  'runEvacuationJournaled',
  'runOnRestate',
  'submitRun',
  'submitEvacuation',
  'followRun',
  'followEvacuation',
]);

describe('the layering', () => {
  it('reads every import form (the guard sees what the compiler sees)', () => {
    const file = 'src/testing/index.ts';
    const specs = specifiersOf(file);
    // Only `export … from` lines there: a guard reading `import` lines would see none.
    expect(specs.length).toBeGreaterThan(5);
    expect(readFileSync(file, 'utf8')).not.toMatch(/^import /m);
  });

  it('keeps machines/ pure: no I/O, nothing from src/, only xstate and zod from outside', () => {
    const bad = sources('machines').flatMap((file) =>
      specifiersOf(file)
        .filter((spec) => !(spec.startsWith('./') || spec === 'xstate' || spec === 'zod'))
        .map((spec) => `${file} imports ${spec}`),
    );
    expect(bad).toEqual([]);
  });

  it('has no import cycle between files', () => {
    expect(cycles(GRAPH)).toEqual([]);
  });

  it('keeps each room to the rooms it may use', () => {
    const bad: string[] = [];
    for (const [file, deps] of GRAPH) {
      const room = roomOf(file);
      const allowed = ALLOWED[room];
      if (allowed === undefined) continue;
      for (const dep of deps) {
        const to = roomOf(dep);
        if (to !== room && !allowed.includes(to)) bad.push(`${file} imports ${dep}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('lets the CLI reach journaled and durable runs only through a Runtime', () => {
    const bad = sources('src/cli').flatMap((file) =>
      namesImported(file)
        .filter((i) => RUN_STARTERS.has(i.name))
        .map((i) => `${file} imports ${i.name} from ${i.spec}`),
    );
    expect(bad).toEqual([]);
    // The reading of names works: the runtimes' own modules do name them.
    expect(namesImported('src/journal/runtime.ts').map((i) => i.name)).toContain('runJournaled');
  });

  it('catches a planted violation (the checks can fail)', () => {
    const planted = new Map(GRAPH);
    planted.set('src/journal/run.ts', [...(GRAPH.get('src/journal/run.ts') ?? []), 'src/testing/oracle.ts']);
    planted.set('src/testing/oracle.ts', [
      ...(GRAPH.get('src/testing/oracle.ts') ?? []),
      'src/journal/run.ts',
    ]);
    expect(cycles(planted).length).toBeGreaterThan(0);
    expect(ALLOWED['src/journal']).not.toContain('src/testing');
  });

  it('exports drbd-migrate/machines on its own, as a user imports it', () => {
    const script =
      "const m = await import('drbd-migrate/machines'); console.log(typeof m.migrationMachine.provide, typeof m.cleanupMachine.provide, m.EFFECT_NAMES.length)";
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(out.trim()).toBe('function function 38');
  });
});
