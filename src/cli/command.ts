import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';
import type { CliIo } from './io.js';
import { OPTIONS, type OptionName, type OptionSpec, optionLabel, type Values } from './options.js';

/**
 * A CLI command, declared: its arguments, the options it takes, which of them cannot go together,
 * its help text and its handler. Parsing, refusals and help all come from this declaration.
 */
export interface Command {
  name: string;
  /** One line, for the command list. */
  summary: string;
  args: { name: string; optional?: boolean; choices?: readonly string[] }[];
  options: readonly OptionName[];
  /** Exactly one of these must be given (what to act on). */
  oneOf?: OptionName[];
  /** An option that cannot go with others, and why. */
  conflicts?: { option: OptionName; with: readonly OptionName[]; why: string }[];
  /** Paragraphs after the synopsis. */
  description: string;
  examples: string[];
  run(call: Invocation): Promise<number>;
}

export interface Invocation {
  args: Record<string, string | undefined>;
  values: Values;
  io: CliIo;
}

const flag = (name: OptionName) => `--${name}`;

/** "drbd-migrate migrate INSTANCE (--world FILE | --cluster FILE) [options]" */
export function synopsis(command: Command): string {
  const args = command.args.map((a) => {
    const name = a.choices === undefined ? a.name : a.choices.join('|');
    return a.optional ? `[${name}]` : name;
  });
  const oneOf =
    command.oneOf === undefined ? [] : [`(${command.oneOf.map((o) => optionLabel(o)).join(' | ')})`];
  const rest = command.options.filter((o) => o !== 'help' && !command.oneOf?.includes(o));
  return ['drbd-migrate', command.name, ...args, ...oneOf, ...(rest.length > 0 ? ['[options]'] : [])].join(
    ' ',
  );
}

/** The command's help, generated from its declaration. */
export function commandHelp(command: Command): string {
  const options = command.options.filter((o) => o !== 'help');
  const width = Math.max(...options.map((o) => optionLabel(o).length), 0);
  const lines = [`${synopsis(command)}`, '', command.description.trim()];
  if (options.length > 0) {
    lines.push('', 'Options:');
    for (const o of options) lines.push(`  ${optionLabel(o).padEnd(width)}  ${OPTIONS[o].help}`);
  }
  if (command.conflicts !== undefined && command.conflicts.length > 0) {
    lines.push('', 'Not together:');
    for (const c of command.conflicts) {
      lines.push(`  ${flag(c.option)} with ${c.with.map(flag).join(', ')}: ${c.why}`);
    }
  }
  if (command.examples.length > 0) {
    lines.push('', 'Examples:', ...command.examples.map((e) => `  ${e}`));
  }
  return lines.join('\n');
}

/** Which commands take an option, for a refusal that says where it belongs. */
function takenBy(commands: readonly Command[], option: string): string[] {
  return commands.filter((c) => (c.options as string[]).includes(option)).map((c) => c.name);
}

/** The option name in an argument: "--world=x" → "world", "-o" → "output"; null for a positional. */
function optionOf(arg: string): string | null {
  if (arg === '--' || !arg.startsWith('-') || arg === '-') return null;
  if (arg.startsWith('--')) return arg.slice(2).split('=')[0] ?? '';
  const short = arg.slice(1, 2);
  const hit = (Object.entries(OPTIONS) as [string, OptionSpec][]).find(([, o]) => o.short === short);
  return hit === undefined ? `-${short}` : hit[0];
}

/**
 * Parses a command's arguments against its declaration: unknown options, options of other commands,
 * missing or extra arguments, conflicts and a missing target are refused with one line each.
 */
export function parseInvocation(
  command: Command,
  words: string[],
  io: CliIo,
  commands: readonly Command[],
): Invocation {
  // A negative number after an option that takes a value is its value ("--concurrency -1"), to be
  // judged by the option's own check, not read as an unknown option "-1".
  const argv = words.reduce<string[]>((out, arg) => {
    const name = out.at(-1)?.startsWith('--') ? out.at(-1)!.slice(2) : '';
    const spec = (OPTIONS as Record<string, OptionSpec | undefined>)[name];
    if (/^-\d/.test(arg) && spec?.type === 'string') out[out.length - 1] = `--${name}=${arg}`;
    else out.push(arg);
    return out;
  }, []);
  for (const arg of argv) {
    if (arg === '--') break;
    const name = optionOf(arg);
    if (name === null || (command.options as string[]).includes(name) || name === 'help') continue;
    const display = name.startsWith('-') ? name : `--${name}`;
    const elsewhere = takenBy(commands, name);
    throw new UsageError(
      elsewhere.length > 0
        ? `${command.name} does not take ${display} (it is an option of ${elsewhere.join(', ')}); see 'drbd-migrate ${command.name} --help'`
        : `unknown option ${display}; see 'drbd-migrate ${command.name} --help'`,
    );
  }
  const specs = Object.fromEntries(
    [...command.options, 'help' as const].map((o) => {
      const spec: OptionSpec = OPTIONS[o];
      return [
        o,
        {
          type: spec.type,
          ...(spec.multiple ? { multiple: true } : {}),
          ...(spec.short ? { short: spec.short } : {}),
        },
      ];
    }),
  );
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: specs, allowPositionals: true, strict: true });
  } catch (error) {
    const e = error as { code?: string; message: string };
    const name = /'(-{1,2}[A-Za-z-]+)/.exec(e.message)?.[1] ?? 'an option';
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const option = optionOf(name) as OptionName | null;
      const spec: OptionSpec | undefined = option === null ? undefined : OPTIONS[option];
      throw new UsageError(
        spec?.type === 'string'
          ? `${name} needs a value (${spec.value ?? 'VALUE'})`
          : `${name} takes no value`,
      );
    }
    throw new UsageError(`cannot read the arguments: ${e.message.replace(/'/g, '')}`);
  }
  const values = parsed.values as Values;
  if (values.help === true) return { args: {}, values, io };
  const positionals = parsed.positionals;
  const args: Record<string, string | undefined> = {};
  command.args.forEach((a, i) => {
    const value = positionals[i];
    if (value === undefined) {
      if (!a.optional)
        throw new UsageError(`${command.name} needs ${a.name}; see 'drbd-migrate ${command.name} --help'`);
      return;
    }
    if (a.choices !== undefined && !a.choices.includes(value)) {
      throw new UsageError(`unknown ${a.name.toLowerCase()} '${value}': expected ${a.choices.join(' or ')}`);
    }
    args[a.name] = value;
  });
  const extra = positionals.slice(command.args.length);
  if (extra.length > 0) throw new UsageError(`${command.name}: unexpected arguments: ${extra.join(' ')}`);
  const given = (o: OptionName) => values[o] !== undefined && values[o] !== false;
  for (const c of command.conflicts ?? []) {
    if (!given(c.option)) continue;
    const clash = c.with.filter(given);
    if (clash.length > 0) {
      throw new UsageError(`${flag(c.option)} cannot go with ${clash.map(flag).join(', ')}: ${c.why}`);
    }
  }
  if (command.oneOf !== undefined) {
    const chosen = command.oneOf.filter(given);
    if (chosen.length === 0) {
      throw new UsageError(
        `${command.name} needs ${command.oneOf.map((o) => optionLabel(o)).join(' or ')}; see 'drbd-migrate ${command.name} --help'`,
      );
    }
    if (chosen.length > 1) {
      throw new UsageError(`give one of ${chosen.map(flag).join(' and ')}, not both`);
    }
  }
  return { args, values, io };
}
