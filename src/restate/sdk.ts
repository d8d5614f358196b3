/**
 * The Restate SDK, loaded once and only by this entry point: it is an optional peer dependency, so
 * the library and the CLI's local runs work without it, and a user who reaches for this runtime
 * without it installed is told what to install rather than shown a module resolution error.
 */
import type * as Sdk from '@restatedev/restate-sdk';

/**
 * SDK 1.14 to 1.17 call Promise.withResolvers (Node 22) on an invocation's first step and declare no
 * engines; the machines run on Node 20. The standard's own definition, only where it is missing.
 */
function polyfillWithResolvers(): void {
  const P = Promise as { withResolvers?: unknown };
  if (typeof P.withResolvers === 'function') return;
  P.withResolvers = <T>() => {
    let resolve!: (value: T | PromiseLike<T>) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

export class RestateMissingError extends Error {
  override name = 'RestateMissingError';
}

async function load(): Promise<typeof Sdk> {
  polyfillWithResolvers();
  // The SDK logs every invocation's start and end at INFO; a worker logs warnings unless asked.
  process.env.RESTATE_LOGGING ??= 'WARN';
  try {
    return await import('@restatedev/restate-sdk');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      throw new RestateMissingError(
        'the Restate runtime needs the Restate SDK, an optional peer dependency: npm install @restatedev/restate-sdk@^1.17.2',
      );
    }
    throw error;
  }
}

export const restate: typeof Sdk = await load();
export type { Sdk };
