/** Bad input or a refusal that touched nothing: exit 2, with one line saying why. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * This client lost the runtime while the run goes on there (Restate): nothing is left to repair, and
 * `resume` follows the run (exit 4).
 */
export class RunGoesOn extends Error {
  override name = 'RunGoesOn';
}

/**
 * A file the operator named could not be read or written: bad input (exit 2), naming the file and
 * the cause, never a temporary name behind it.
 */
export function fileError(what: string, path: string, error: unknown): UsageError {
  const e = error as NodeJS.ErrnoException;
  const cause =
    e.code === 'ENOENT'
      ? 'no such file or directory'
      : e.code === 'EACCES' || e.code === 'EPERM'
        ? 'permission denied'
        : e.code === 'EROFS'
          ? 'read-only file system'
          : e.code === 'ENOTDIR'
            ? 'a part of the path is not a directory'
            : e.code === 'EISDIR'
              ? 'it is a directory'
              : (e.code ?? e.message);
  return new UsageError(
    `cannot ${what} ${path}: ${cause}${e.code && cause !== e.code ? ` (${e.code})` : ''}`,
  );
}
