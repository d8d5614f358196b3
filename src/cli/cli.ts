import { LockedError, ResumeError } from '../journal/index.js';
import { type Command, commandHelp, parseInvocation, synopsis } from './command.js';
import { COMMANDS } from './commands/index.js';
import { RunGoesOn, UsageError } from './errors.js';
import type { CliIo } from './io.js';
import { packageRoot } from './packageRoot.js';

export type { CliIo } from './io.js';

/** The package's version, from its package.json. */
export const version = (): string => packageRoot()?.version ?? 'unknown';

const EXIT_CODES = `Exit codes: 0 migrated or cleaned; 1 reverted (failed, the instance is safe on the source);
2 rejected or bad input (nothing touched); 3 needsCleanup or failed (something is left to repair);
4 this client lost Restate while the run goes on there (follow it with resume).`;

/** The overall help: every command's synopsis and summary, from the command table. */
export function overallHelp(commands: readonly Command[] = COMMANDS): string {
  return [
    'drbd-migrate: live migration of DRBD-backed instances as explicit state machines',
    '',
    'Usage:',
    ...commands.map((c) => `  ${synopsis(c)}\n      ${c.summary}`),
    '  drbd-migrate COMMAND --help',
    '  drbd-migrate --version',
    '',
    EXIT_CODES,
  ].join('\n');
}

/** The whole reference (docs/cli.md): the overall help, then each command's. */
export function fullHelp(): string {
  return [overallHelp(), ...COMMANDS.map((c) => `\n${'-'.repeat(72)}\n\n${commandHelp(c)}`)].join('\n');
}

/** Refusals that touched nothing: bad input, a held lock, a journal that cannot be trusted. */
const isRefusal = (error: unknown) =>
  error instanceof UsageError || error instanceof ResumeError || error instanceof LockedError;

/** Runs one CLI invocation; resolves with the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined) {
      io.out(overallHelp());
      io.err('drbd-migrate: a COMMAND is needed (see above)');
      return 2;
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      const about = first === 'help' ? rest[0] : undefined;
      const command = COMMANDS.find((c) => c.name === about);
      io.out(command === undefined ? overallHelp() : commandHelp(command));
      return 0;
    }
    if (first === '--version' || first === '-V') {
      io.out(`drbd-migrate ${version()}`);
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === first);
    if (command === undefined) {
      throw new UsageError(
        first.startsWith('-')
          ? `unknown option ${first} before the command; see 'drbd-migrate --help'`
          : `unknown command '${first}'; the commands are ${COMMANDS.map((c) => c.name).join(', ')}`,
      );
    }
    const call = parseInvocation(command, rest, io, COMMANDS);
    if (call.values.help === true) {
      io.out(commandHelp(command));
      return 0;
    }
    return await command.run(call);
  } catch (error) {
    io.err(`drbd-migrate: ${(error as Error).message ?? error}`);
    return isRefusal(error) ? 2 : error instanceof RunGoesOn ? 4 : 3;
  }
}
