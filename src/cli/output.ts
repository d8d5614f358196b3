import type { EffectCall, ProtocolOutput } from '../../machines/index.js';
import type { PlannedCommand } from '../backend/index.js';
import type { RunEvent } from '../runner/index.js';
import type { World } from '../sim/index.js';
import { type CliIo, screenOf } from './io.js';
import { LiveView } from './live.js';
import type { Values } from './options.js';
import { describeWorldState, EXIT, resultLines, worldLines } from './report.js';
import { cleanupCommand, type RepairOf, type Target } from './target.js';

/** How a run shows itself: the live view on a terminal, plain lines, JSON lines, or only the result. */
export function viewFor(io: CliIo, values: Values) {
  const json = values.json === true;
  const view = new LiveView(screenOf(io, json || values.quiet === true));
  const onEvent = (event: RunEvent) => {
    if (json) io.out(JSON.stringify(event));
    else view.onEvent(event);
  };
  return { view, onEvent, json };
}

/**
 * Ends a run: the result in the chosen form, and for every exit other than 0 one line on stderr
 * saying why, whatever the form. Returns the exit code.
 */
export function finish(
  io: CliIo,
  values: Values,
  view: LiveView,
  result: ProtocolOutput,
  end: {
    at: number;
    runsOn: string | null;
    target: Target | null;
    world?: World;
    dryRun?: boolean;
    /** The run that ended, for the repair command it needs. */
    of?: RepairOf;
  },
): number {
  const cleanup = cleanupCommand(
    result.instance,
    end.target,
    end.of,
    result.primaryNode,
    result.thirdCopy ?? result.secondaryNode ?? null,
  );
  const code = EXIT[result.outcome];
  if (values.json === true) {
    io.out(JSON.stringify({ type: 'result', ...(end.dryRun ? { dryRun: true } : {}), ...result }));
    if (end.world !== undefined) io.out(JSON.stringify({ type: 'world', ...describeWorldState(end.world) }));
  } else if (values.quiet === true || end.dryRun === true) {
    if (end.dryRun === true) io.out('');
    for (const l of resultLines(result, cleanup)) io.out(`${end.dryRun ? '# planned: ' : ''}${l}`);
  } else {
    for (const l of view.finish(result, end.at, end.runsOn, cleanup)) io.out(l);
    if (end.world !== undefined) {
      io.out('');
      for (const l of worldLines(end.world)) io.out(l);
    }
  }
  if (code !== 0) io.err(`drbd-migrate: ${result.outcome}: ${result.error ?? 'see the output above'}`);
  return code;
}

/** A dry run's forecast of the copy, as the machine said it, printed as a comment line. */
/**
 * What a dry run says besides its calls, as comment lines: the copy's forecast, and every warning
 * (a replace's one-copy window is said before it opens, in a dry run too).
 */
export const forecastPrinter = (print: (line: string) => void) => (event: RunEvent) => {
  if (event.type !== 'feedback') return;
  if (event.message.startsWith('* predicted')) print(`# ${event.message.slice(2)}`);
  else if (event.level === 'warning') print(`# warning: ${event.message}`);
};

/**
 * The one dry-run printer: each effect the machine calls on the simulated copy, with the node it
 * acts on, and (on a cluster file) the exact commands each node would run for it.
 */
export function planPrinter(
  print: (line: string) => void,
  commandsOf?: (call: EffectCall) => PlannedCommand[],
) {
  return (call: EffectCall) => {
    if (call.phase !== 'start') return;
    const input = call.input as { node?: string; nodes?: string[] };
    const where = input.node ?? input.nodes?.join(' and ') ?? 'the config';
    print(`${call.effect} on ${where}`);
    for (const c of commandsOf?.(call) ?? []) {
      print(`  ${c.node}${c.kind === 'sh' ? '$' : c.kind === 'qmp' ? ' qmp>' : ':'} ${c.text}`);
    }
  };
}
