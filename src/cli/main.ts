#!/usr/bin/env node
import { runCli } from './cli.js';

const tty = process.stdout.isTTY === true;
const env = (name: string) => process.env[name] ?? '';
// no-color.org: NO_COLOR (non-empty) turns colour off; FORCE_COLOR (not "0") turns it on anywhere.
const color = env('NO_COLOR') !== '' ? false : env('FORCE_COLOR') !== '' ? env('FORCE_COLOR') !== '0' : tty;
runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  screen: {
    tty,
    color,
    // A terminal that reports no width (0, or none) is taken as 80 columns wide.
    columns: process.stdout.columns || 80,
    write: (text) => process.stdout.write(text),
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
