import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cleanupMachine, migrationMachine, protocol } from '../machines/index.js';
import { fullHelp } from '../src/cli/cli.js';
import { toDot, toMermaid } from '../src/diagram/index.js';
import { generatedDocs } from '../src/docs/generate.js';

describe('docs/ cannot go stale', async () => {
  const docs = await generatedDocs(fullHelp());
  it.each([...docs.keys()])('docs/%s is what the code generates (npm run docs)', (file) => {
    expect(readFileSync(`docs/${file}`, 'utf8')).toBe(docs.get(file));
  });

  it('notices a renamed state', () => {
    // Rename one state of a copy of the machine, and every reference to it.
    const rename = (value: unknown): unknown => {
      if (typeof value === 'string') {
        return value === 'singleMasterFailed' || value.startsWith('#migration.singleMasterFailed')
          ? value.replace('singleMasterFailed', 'backToSingleMasterFailed')
          : value;
      }
      if (Array.isArray(value)) return value.map(rename);
      if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
        return Object.fromEntries(
          Object.entries(value).map(([k, v]) => [
            k === 'singleMasterFailed' ? 'backToSingleMasterFailed' : k,
            rename(v),
          ]),
        );
      }
      return value;
    };
    // biome-ignore lint/suspicious/noExplicitAny: the config of a copy, mutated for the test
    const renamed = protocol.createMachine(rename(migrationMachine.config) as any);
    expect(toMermaid(renamed)).toContain('backToSingleMasterFailed');
    expect(toMermaid(renamed)).not.toBe(readFileSync('docs/migration.mmd', 'utf8'));
    expect(toDot(renamed)).not.toBe(readFileSync('docs/migration.dot', 'utf8'));
  });
});

describe('diagrams', () => {
  it('draw every transition, failure edges apart, the commit point and the point of no return', () => {
    const dot = toDot(migrationMachine);
    expect(dot).toContain('★ commit point');
    expect(dot).toContain('★ point of no return');
    expect(dot).toMatch(/label="error\(acceptInstance\)"[^\]]*color="#c0392b"[^\]]*style=dashed/);
    expect(dot).toMatch(
      /"migration\.committing\.writing" -> "migration\.singleMaster#in" \[label="done\(setPrimaryNode\)"/,
    );
    const mermaid = toMermaid(cleanupMachine);
    expect(mermaid.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(mermaid).toContain('cleanup_judging --> cleanup_committing : always [onTargetOnly]');
    expect(mermaid).toContain('class cleanup_failed failure');
  });
});
