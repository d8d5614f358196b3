#!/usr/bin/env node
import { runCli } from './cli.js';

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
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  },
}).then((code) => {
  process.exitCode = code;
});
