#!/usr/bin/env node
import { runCli } from './cli.js';

const tty = process.stdout.isTTY === true;
runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  screen: {
    tty,
    // Colour only on a terminal, and never with NO_COLOR (no-color.org).
    color: tty && (process.env.NO_COLOR ?? '') === '',
    columns: process.stdout.columns ?? 100,
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
