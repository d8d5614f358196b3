import { randomBytes } from 'node:crypto';
import { access, constants, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { LockedError, takeLockFile } from '../journal/index.js';
import { World } from '../sim/index.js';
import { fileError, UsageError } from './errors.js';

export { UsageError };

/** Reads and validates a saved simulated cluster; every problem is a usage error (exit 2). */
export async function loadWorld(file: string): Promise<World> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw fileError('read world file', file, error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`world file ${file} is not JSON: ${(error as Error).message}`);
  }
  const parsed = World.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `world file ${file} is malformed at ${issue?.path.join('.') || '(top)'}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

/** Atomic replace, so a crash mid-write never leaves half a world behind. */
export async function saveWorld(file: string, world: World): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(world, null, 2)}\n`, { mode: 0o644 });
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => {});
    throw fileError('write world file', file, error);
  }
}

/** Checks before a run that the world file can be written back (each step saves it). */
export async function checkWritable(file: string): Promise<void> {
  try {
    await access(file, constants.W_OK);
    await access(resolve(file, '..'), constants.W_OK);
  } catch (error) {
    throw fileError('write world file', file, error);
  }
}

/** The instance's two nodes in a simulated world, locked with it. */
export function worldNodes(world: World, instance: string): string[] {
  const config = world.config.instances[instance];
  return config === undefined
    ? []
    : [config.primaryNode, config.secondaryNode, config.thirdCopy].filter((n): n is string => n !== null);
}

/** A command that writes a new world refuses to replace a file that is there, unless told to. */
export async function refuseExisting(file: string, force: boolean): Promise<void> {
  if (force) return;
  const there = await access(file).then(
    () => true,
    () => false,
  );
  if (there) throw new UsageError(`${file} exists: add --force to replace it, or name another file`);
}

/**
 * One writer at a time on a world file: every command that writes it holds FILE.lock while it may
 * (a run saves the world after each step; a second writer's changes would be overwritten, or would
 * overwrite). Released by the returned function; the lock of a writer that died is taken over.
 */
export async function holdWorld(file: string, operation: string): Promise<() => Promise<void>> {
  const path = `${file}.lock`;
  const owner = { host: hostname(), pid: process.pid, since: new Date().toISOString(), operation };
  try {
    await takeLockFile(path, owner, `world file ${file}`);
  } catch (error) {
    if (error instanceof LockedError) {
      throw new UsageError(
        `world file ${file} is being written by ${error.holder.operation} (pid ${error.holder.pid} on ${error.holder.host}, since ${error.holder.since}): wait for it to end, or stop it first`,
      );
    }
    throw fileError('write world file', file, error);
  }
  return () => rm(path, { force: true });
}
