import { access, constants, mkdir, stat, statfs } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { MachineName } from '../../machines/index.js';
import { FileJournal, FileLocks, JournalError } from '../journal/index.js';
import { fileError, UsageError } from './errors.js';
import type { Values } from './options.js';
import { type Target, targetFlag, whereOf } from './target.js';

/** The state directory: the journals and locks of the runs this host starts. */

export function defaultStateDir(): string {
  if (process.env.DRBD_MIGRATE_STATE_DIR) return process.env.DRBD_MIGRATE_STATE_DIR;
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'drbd-migrate');
}

/** For crash tests: SIGKILL this process right after the journal records its Nth transition. */
function killer(n: number) {
  let last = '';
  let transitions = 0;
  return (_written: number, state: string) => {
    if (state === last) return;
    last = state;
    transitions++;
    if (transitions === n) process.kill(process.pid, 'SIGKILL');
  };
}

/** Kernel pseudo file systems (proc, sysfs): nothing is kept there, and Node's mkdir loops in them. */
const PSEUDO = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
]);

/** The nearest part of `path` that exists must be a real directory, on a real file system. */
async function checkStateDir(path: string): Promise<void> {
  let at = resolve(path);
  for (;;) {
    const found = await stat(at).catch(() => null);
    if (found !== null) {
      if (!found.isDirectory()) throw fileError('use the state directory', path, { code: 'ENOTDIR' });
      const kind = PSEUDO.get(Number((await statfs(at)).type));
      if (kind !== undefined) {
        throw new UsageError(
          `cannot use the state directory ${path}: ${at} is on the kernel's ${kind} file system, which keeps no files; choose another (--state-dir or DRBD_MIGRATE_STATE_DIR)`,
        );
      }
      return;
    }
    const up = dirname(at);
    if (up === at) return;
    at = up;
  }
}

/**
 * The journal and locks under --state-dir, and --kill-at for crash tests. The directory is made and
 * checked here, before any node is touched: an unwritable one is bad input, not a failed run.
 */
export async function journalStores(values: Values, target: Target) {
  const stateDir = values['state-dir'] ?? defaultStateDir();
  const killAt = values['kill-at'] === undefined ? null : Number(values['kill-at']);
  if (killAt !== null && !(Number.isInteger(killAt) && killAt > 0)) {
    throw new UsageError(`bad --kill-at '${values['kill-at']}': expected a journal entry number from 1`);
  }
  await checkStateDir(stateDir);
  for (const dir of [stateDir, join(stateDir, 'journal'), join(stateDir, 'locks')]) {
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, constants.W_OK);
    } catch (error) {
      throw fileError('use the state directory', dir, error);
    }
  }
  return {
    store: new FileJournal(stateDir),
    locks: new FileLocks(stateDir),
    stateDir,
    where: whereOf(target),
    ...(killAt === null ? {} : { afterWrite: killer(killAt) }),
  };
}

/**
 * Refuses to start over a journaled run that did not finish: it must be resumed or cleaned up. A
 * journal that cannot be read cannot be resumed either: a cleanup (which looks at the nodes, not the
 * journal) sets it aside and runs; anything else is refused, saying so. Returns what the caller says.
 */
export async function refuseUnfinished(
  store: FileJournal,
  instance: string,
  target: Target,
  kind: MachineName,
): Promise<string | null> {
  let unfinished: Awaited<ReturnType<FileJournal['read']>>;
  try {
    unfinished = await store.read(instance);
  } catch (error) {
    if (!(error instanceof JournalError)) throw error;
    if (kind === 'cleanup') {
      const aside = await store.setAside(instance);
      return `${error.message}: set aside as ${aside}; the cleanup looks at the nodes instead`;
    }
    throw new UsageError(
      `${error.message}, so the run it recorded cannot be resumed; run 'drbd-migrate migrate ${instance}${targetFlag(target)} --cleanup', which looks at the nodes and sets the file aside (removing ${store.fileOf(instance)} by hand does the same; the locks are other files, held only while their process lives)`,
    );
  }
  if (unfinished !== null) {
    // Resumed where it ran: "cluster /x.yaml" → --cluster /x.yaml.
    const there = unfinished.where?.replace(/^(cluster|world) /, '--$1 ') ?? targetFlag(target).trim();
    throw new UsageError(
      `an unfinished ${unfinished.machine} of ${instance} (pid ${unfinished.owner.pid} on ${unfinished.owner.host}, last in ${unfinished.state} at ${unfinished.writtenAt}) is journaled; run 'drbd-migrate resume ${instance} ${there}'`,
    );
  }
  return null;
}
