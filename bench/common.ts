import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SshBackend } from '../src/backend/ssh.js';
import type { EffectCall } from '../src/index.js';

/** What the testbed benches share. */

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Reads QEMU's own total-time for the copy from the source before the backend quits it (the value
 * dies with the process). Returns a getter for the last value read.
 */
export function captureQemuTotalTime(backend: SshBackend, instance: string): () => number {
  const finalize = backend.effects.finalizeMigrationSource;
  let total = Number.NaN;
  backend.effects.finalizeMigrationSource = async (input, signal, hurry) => {
    total = (await backend.qemu(input.node, instance).queryMigrate(5_000))['total-time'] ?? Number.NaN;
    return finalize(input, signal, hurry);
  };
  return () => total;
}

/** Wall time spent inside each effect over a run (the onCall hook of a runner), ms. */
export function timePerEffect() {
  const started = new Map<string, number>();
  const spent: Record<string, number> = {};
  return {
    spent,
    onCall: (c: EffectCall) => {
      const key = `${c.effect} ${JSON.stringify(c.input)}`;
      if (c.phase === 'start') started.set(key, performance.now());
      else spent[c.effect] = (spent[c.effect] ?? 0) + performance.now() - (started.get(key) ?? Number.NaN);
    },
  };
}

/**
 * A part of the bench run on its own (`npx tsx bench/x.ts [runs]`) when its module is the entry
 * point: exit 2 saying why when its testbed cannot start here.
 */
export async function runAlone(
  url: string,
  unavailable: () => string | null,
  bench: (runs: number) => Promise<unknown>,
  defaultRuns: number,
): Promise<void> {
  if (url !== pathToFileURL(process.argv[1] ?? '').href) return;
  const why = unavailable();
  if (why !== null) {
    console.error(`bench/${basename(new URL(url).pathname)}: ${why}`);
    process.exit(2);
  }
  await bench(Number(process.argv[2] ?? defaultRuns));
}
