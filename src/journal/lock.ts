import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * One operation per instance, and none on a node another operation is using (Ganeti's node locks):
 * a migration takes the instance and both its nodes. Orchestrators may bring their own LockStore.
 */
export const LockOwner = z.object({
  host: z.string(),
  pid: z.number().int(),
  since: z.string(),
  operation: z.string(),
});
export type LockOwner = z.infer<typeof LockOwner>;

export class LockedError extends Error {
  override name = 'LockedError';
  constructor(
    readonly what: string,
    readonly holder: LockOwner,
  ) {
    super(
      `${what} is locked by ${holder.operation} (pid ${holder.pid} on ${holder.host}) since ${holder.since}`,
    );
  }
}

export interface Lease {
  release(): Promise<void>;
  /** Stale locks of dead owners that were taken over, for the record. */
  tookOver: LockOwner[];
}

export interface LockStore {
  acquire(names: string[], owner: LockOwner): Promise<Lease>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes one lock file, created exclusively: held by a live owner (or one on another host) it is
 * refused with LockedError(`what`); a lock whose owner died on this host is stale and taken over
 * (its owner returned, for the record).
 */
export async function takeLockFile(path: string, owner: LockOwner, what: string): Promise<LockOwner | null> {
  let stale: LockOwner | null = null;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, 'wx', 0o600);
      await file.writeFile(JSON.stringify(owner));
      await file.sync();
      await file.close();
      return stale;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = LockOwner.safeParse(JSON.parse(await readFile(path, 'utf8').catch(() => '{}')));
    if (holder.success && (holder.data.host !== hostname() || alive(holder.data.pid))) {
      throw new LockedError(what, holder.data);
    }
    // The owner died (or the file is unreadable): the lock is stale.
    if (holder.success) stale = holder.data;
    await unlink(path).catch(() => {});
  }
  throw new Error(`could not take the lock ${path}`);
}

/** Lock files under DIR/locks, created exclusively; a lock whose owner died on this host is stale. */
export class FileLocks implements LockStore {
  private readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'locks');
  }

  private async take(name: string, owner: LockOwner, tookOver: LockOwner[]): Promise<void> {
    const stale = await takeLockFile(join(this.dir, `${name}.lock`), owner, name);
    if (stale !== null) tookOver.push(stale);
  }

  async acquire(names: string[], owner: LockOwner): Promise<Lease> {
    await mkdir(this.dir, { recursive: true });
    const taken: string[] = [];
    const tookOver: LockOwner[] = [];
    // A fixed order, so two operations never wait on each other's half.
    for (const name of [...names].sort()) {
      try {
        await this.take(name, owner, tookOver);
        taken.push(name);
      } catch (error) {
        for (const t of taken) await unlink(join(this.dir, `${t}.lock`)).catch(() => {});
        throw error;
      }
    }
    return {
      tookOver,
      release: async () => {
        for (const t of taken) await unlink(join(this.dir, `${t}.lock`)).catch(() => {});
      },
    };
  }
}
