import type { Screen } from './live.js';

/** What the CLI talks to: lines out and err, a terminal when there is one, Ctrl-C. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** How the terminal looks; absent: plain lines, no colour. */
  screen?: Screen;
  /** Registers a Ctrl-C (and SIGTERM) handler for the duration of a run; returns its remover. */
  onInterrupt?: (handler: (signal: 'SIGINT' | 'SIGTERM') => void) => () => void;
}

/** The screen a run draws on: the terminal, plain lines when there is none, nothing when quiet. */
export function screenOf(io: CliIo, silent: boolean): Screen {
  const screen = io.screen ?? {
    tty: false,
    color: false,
    columns: 80,
    write: (t: string) => {
      for (const line of t.replace(/\n$/, '').split('\n')) io.out(line);
    },
  };
  return silent ? { ...screen, tty: false, write: () => {} } : screen;
}
