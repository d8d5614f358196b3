#!/usr/bin/env node
// Ctrl-C and SIGTERM go to the run in progress (an operator abort at its next safe point). One that
// comes before a run has its handler is kept for it; a second with no run to take it ends the
// process, as an unhandled signal would.
type Signal = 'SIGINT' | 'SIGTERM';
const handlers = new Set<(signal: Signal) => void>();
let pending: Signal | null = null;
const onSignal = (signal: Signal) => {
  if (handlers.size > 0) for (const h of handlers) h(signal);
  else if (pending === null) pending = signal;
  else process.exit(signal === 'SIGINT' ? 130 : 143);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// The handlers are in place before the CLI's modules load (a static import would load them first).
const { runCli } = await import('./cli.js');

const tty = process.stdout.isTTY === true;
// A reader that went away (drbd-migrate … | head) is not an error of the run: stop writing to it.
let closed = false;
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  closed = true;
});
const write = (text: string) => {
  if (!closed) process.stdout.write(text);
};
const env = (name: string) => process.env[name] ?? '';
// no-color.org: NO_COLOR (non-empty) turns colour off; FORCE_COLOR (not "0") turns it on anywhere.
const color = env('NO_COLOR') !== '' ? false : env('FORCE_COLOR') !== '' ? env('FORCE_COLOR') !== '0' : tty;
// A process with nothing left to wait for before its outcome is known (a wait on a promise nothing
// will settle: a bug) would otherwise end with exit 0, as if it had succeeded.
let told = false;
runCli(process.argv.slice(2), {
  out: (line) => write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  screen: {
    tty,
    color,
    // A terminal that reports no width (0, or none) is taken as 80 columns wide.
    columns: process.stdout.columns || 80,
    write,
  },
  onInterrupt: (handler) => {
    handlers.add(handler);
    // A signal that came before the run was ready is an abort all the same: the run gets it now,
    // and stops at its first safe point, touching nothing.
    if (pending !== null) {
      const signal = pending;
      pending = null;
      queueMicrotask(() => handler(signal));
    }
    return () => handlers.delete(handler);
  },
}).then((code) => {
  told = true;
  process.exitCode = code;
});
process.on('beforeExit', () => {
  if (told) return;
  process.stderr.write(
    'drbd-migrate: internal error: the process ran out of work before the outcome was known (a bug: please report it); what it started may still be under way: run drbd-migrate status NAME\n',
  );
  process.exit(70);
});
