import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { InstanceName, MACHINE_NAMES, type MachineName } from '../../machines/index.js';

/** One journal entry: the machine's persisted snapshot after a transition, and what it belongs to. */
export const JournalEntry = z.object({
  schema: z.literal(1),
  machine: z.enum(MACHINE_NAMES as [MachineName, ...MachineName[]]),
  machineVersion: z.string(),
  instance: InstanceName,
  input: z.record(z.string(), z.unknown()),
  /** The state after the transition, dotted. */
  state: z.string(),
  /** xstate's persisted snapshot (getPersistedSnapshot), restored as it is. */
  snapshot: z.record(z.string(), z.unknown()),
  writtenAt: z.string(),
  owner: z.object({ host: z.string(), pid: z.number().int() }),
  /**
   * What the run acted on ("cluster /path/cluster.yaml", "world /path/w.json"), so that it is never
   * resumed against something else. Absent in journals written before it existed.
   */
  where: z.string().optional(),
});
export type JournalEntry = z.infer<typeof JournalEntry>;

export class JournalError extends Error {
  override name = 'JournalError';
}

/** Where journals live; orchestrators with a database of their own implement this. */
export interface JournalStore {
  /** The unfinished run's last entry, or null when there is none. Throws JournalError when unreadable. */
  read(instance: string): Promise<JournalEntry | null>;
  /** Durably replaces the instance's entry (atomic: a crash leaves the old one or the new one). */
  write(entry: JournalEntry): Promise<void>;
  /** Appends to the instance's event log (timestamped). */
  log(instance: string, record: Record<string, unknown>): Promise<void>;
  /** The run ended: the entry goes (nothing to resume), the log stays. */
  close(instance: string): Promise<void>;
}

export const owner = () => ({ host: hostname(), pid: process.pid });

/** Durable files under DIR/journal: INSTANCE.json (the last entry) and INSTANCE.log (JSON lines). */
export class FileJournal implements JournalStore {
  private readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'journal');
  }

  private entryPath(instance: string) {
    return join(this.dir, `${InstanceName.parse(instance)}.json`);
  }

  async read(instance: string): Promise<JournalEntry | null> {
    let text: string;
    try {
      text = await readFile(this.entryPath(instance), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new JournalError(`cannot read the journal of ${instance}: ${(error as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new JournalError(`the journal of ${instance} (${this.entryPath(instance)}) is corrupt: not JSON`);
    }
    const parsed = JournalEntry.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new JournalError(
        `the journal of ${instance} (${this.entryPath(instance)}) is corrupt at ${issue?.path.join('.') || '(top)'}: ${issue?.message}`,
      );
    }
    return parsed.data;
  }

  async write(entry: JournalEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const path = this.entryPath(entry.instance);
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(JSON.stringify(entry));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    // The rename itself must survive a power loss too.
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  async log(instance: string, record: Record<string, unknown>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await appendFile(
      join(this.dir, `${InstanceName.parse(instance)}.log`),
      `${JSON.stringify({ at: new Date().toISOString(), ...record })}\n`,
    );
  }

  async close(instance: string): Promise<void> {
    await unlink(this.entryPath(instance)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  /** Where the instance's entry is kept (named in messages about it). */
  fileOf(instance: string): string {
    return this.entryPath(instance);
  }

  /** Moves an entry that cannot be read out of the way, kept beside it; returns where it went. */
  async setAside(instance: string): Promise<string> {
    const path = this.entryPath(instance);
    const aside = `${path}.corrupt-${Date.now()}`;
    await rename(path, aside);
    return aside;
  }
}
