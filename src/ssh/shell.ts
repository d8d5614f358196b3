/**
 * Commands are argv arrays built from validated names; this is the one place they become a shell
 * line (for ssh exec and for --dry-run). Every argument is single-quoted unless it is plainly safe.
 */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function shellQuote(arg: string): string {
  return SAFE.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
