import { mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { judgeLease, type LeaseStore } from '../runner/index.js';

const Held = z.object({ holder: z.string(), untilMs: z.number() });

/** A guard file is held for one read and one write: one older than this was left by a dead process. */
const STALE_GUARD_MS = 2_000;

/**
 * Instance leases in files under `dir` (beside the cluster or world file: the config store every
 * runtime acting on it shares, with its commits). Each decision is one read and one atomic write
 * under a guard file created exclusively, so two processes never both take a free lease.
 */
export function fileLeases(dir: string, now: () => number = Date.now): LeaseStore {
  const file = (instance: string) => join(dir, `${instance}.lease`);
  async function guarded<T>(
    instance: string,
    work: (current: z.infer<typeof Held> | undefined) => Promise<T>,
  ) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const guard = `${file(instance)}.guard`;
    for (let wait = 2; ; wait = Math.min(2 * wait, 50)) {
      try {
        await (await open(guard, 'wx', 0o600)).close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const since = await stat(guard).then(
          (s) => now() - s.mtimeMs,
          () => 0,
        );
        if (since > STALE_GUARD_MS) await unlink(guard).catch(() => {});
        else await sleep(wait);
      }
    }
    try {
      const text = await readFile(file(instance), 'utf8').catch(() => null);
      const current = text === null ? undefined : Held.safeParse(JSON.parse(text)).data;
      return await work(current);
    } finally {
      await unlink(guard).catch(() => {});
    }
  }
  return {
    acquire: (instance, holder, ttlMs) =>
      guarded(instance, async (current) => {
        const { answer, next } = judgeLease(current, holder, ttlMs, now());
        if (next !== current && next !== undefined) {
          const tmp = `${file(instance)}.${process.pid}.tmp`;
          await writeFile(tmp, JSON.stringify(next), { mode: 0o600 });
          await rename(tmp, file(instance));
        }
        return answer;
      }),
    release: (instance, holder) =>
      guarded(instance, async (current) => {
        if (current?.holder === holder) await unlink(file(instance)).catch(() => {});
      }),
  };
}
