import { access, constants, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FileJournal, FileLocks } from '../journal/index.js';
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

/** Refuses to start over a journaled run that did not finish: it must be resumed or cleaned up. */
export async function refuseUnfinished(store: FileJournal, instance: string, target: Target) {
  const unfinished = await store.read(instance).catch((error: Error) => {
    throw new UsageError(
      `${error.message}; inspect it, then remove it or run 'drbd-migrate migrate ${instance}${targetFlag(target)} --cleanup'`,
    );
  });
  if (unfinished !== null) {
    // Resumed where it ran: "cluster /x.yaml" → --cluster /x.yaml.
    const there = unfinished.where?.replace(/^(cluster|world) /, '--$1 ') ?? targetFlag(target).trim();
    throw new UsageError(
      `an unfinished ${unfinished.machine} of ${instance} (pid ${unfinished.owner.pid} on ${unfinished.owner.host}, last in ${unfinished.state} at ${unfinished.writtenAt}) is journaled; run 'drbd-migrate resume ${instance} ${there}'`,
    );
  }
}
