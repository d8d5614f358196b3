import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { InstanceName, NodeName, type ProtocolInput, type ProtocolOutput } from '../../machines/index.js';
import { toDot, toMermaid, toSvg } from '../diagram/index.js';
import { explain } from '../docs/explain.js';
import { MACHINES_TO_DRAW } from '../docs/generate.js';
import { type RunEvent, RunInterrupted, runCleanup, runMigration } from '../runner/index.js';
import {
  createSimCluster,
  createWorld,
  DEMO_SPEC,
  type Fault,
  parseFault,
  runningOn,
  type World,
} from '../sim/index.js';
import { LiveView } from './live.js';
import { pathSummary } from './paths.js';
import { describeWorldState, EXIT, resultLines, worldLines } from './report.js';
import { loadWorld, saveWorld, UsageError } from './worldFile.js';

export const HELP = `drbd-migrate: live migration of DRBD-backed instances as explicit state machines

Usage:
  drbd-migrate demo [--fail EFFECT[@N]] [--hang EFFECT[@N]] [--lose EFFECT[@N]] [--non-live]
                    [--json] [--quiet] [--world FILE] [--fast]
  drbd-migrate migrate INSTANCE --world FILE [--cleanup] [--non-live] [--target NODE]
                    [--no-runtime-changes] [--fail ...] [--hang ...] [--lose ...] [--json] [--quiet]
  drbd-migrate diagram [migration|cleanup] [--format mermaid|dot|svg] [-o FILE]
  drbd-migrate explain OUTCOME|STATE
  drbd-migrate paths [--machine migration|cleanup] [--json]
  drbd-migrate init --world FILE
  drbd-migrate show --world FILE [--json]
  drbd-migrate COMMAND --help

Exit codes: 0 migrated or cleaned; 1 reverted (failed, instance safe on the source);
2 rejected or bad input (nothing touched); 3 needsCleanup or failed.`;

export const COMMAND_HELP: Record<string, string> = {
  demo: `drbd-migrate demo: migrate instance web1 from node-a to node-b on a simulated two-node cluster

Options:
  --fail EFFECT[@N]   make an effect fail (the Nth call, or every call); may repeat
  --hang EFFECT[@N]   make an effect never answer; its deadline cuts it off
  --lose EFFECT[@N]   make an effect act, then lose its answer
  --non-live          pause the instance for the copy
  --world FILE        save the final simulated cluster to FILE (for migrate --cleanup)
  --fast              run simulated time as fast as the CPU allows (default: watchable pace)
  --json              one JSON object per line: state, feedback, progress, result, world
  --quiet             print only the result

Examples:
  drbd-migrate demo
  drbd-migrate demo --fail acceptInstance
  drbd-migrate demo --fail finalizeMigrationTarget --world /tmp/w.json`,
  migrate: `drbd-migrate migrate INSTANCE --world FILE: migrate (or clean up) an instance of a saved simulated cluster

The cluster is saved back to FILE whatever the outcome, so a cleanup finds it as this run left it;
a rejected run leaves the file untouched.

Options:
  --cleanup              repair a failed migration: find where the instance runs and make the config
                         and the disks agree (safe on a healthy instance)
  --target NODE          must be the instance's secondary node
  --non-live             pause the instance for the copy
  --no-runtime-changes   do not balloon the instance down to fit the target
  --fail/--hang/--lose   inject faults, as for demo
  --json, --quiet        as for demo

Ctrl-C: the first press says what stopping now would leave behind; a second press within 5 s
stops after the current step and saves the cluster as it is (then run --cleanup).

Examples:
  drbd-migrate init --world /tmp/w.json
  drbd-migrate migrate web1 --world /tmp/w.json --non-live
  drbd-migrate migrate web1 --world /tmp/w.json --cleanup`,
  diagram: `drbd-migrate diagram [migration|cleanup]: draw a machine

Options:
  --format mermaid|dot|svg   default mermaid; svg is rendered offline by Graphviz (WebAssembly)
  -o FILE                    write to FILE instead of standard output

Failure edges are red (dashed for an effect's error); the commit point and the point of no return
are gold.

Examples:
  drbd-migrate diagram migration --format svg -o migration.svg
  drbd-migrate diagram cleanup`,
  explain: `drbd-migrate explain OUTCOME|STATE: what a state or outcome means, which safety rule it guards,
and what to check

Examples:
  drbd-migrate explain needsCleanup
  drbd-migrate explain dualMaster.syncing
  drbd-migrate explain cleanup.failed`,
  paths: `drbd-migrate paths: the test paths generated from a machine, and the transitions they cover
when replayed on the simulated cluster

Options:
  --machine migration|cleanup   default migration
  --json                        one path per line, then the coverage

Example:
  drbd-migrate paths --machine cleanup`,
  init: `drbd-migrate init --world FILE: write the demo's simulated cluster to FILE

Example:
  drbd-migrate init --world /tmp/w.json`,
  show: `drbd-migrate show --world FILE: print a saved simulated cluster

Example:
  drbd-migrate show --world /tmp/w.json --json`,
};

const options = {
  fail: { type: 'string', multiple: true },
  hang: { type: 'string', multiple: true },
  lose: { type: 'string', multiple: true },
  'non-live': { type: 'boolean' },
  json: { type: 'boolean' },
  world: { type: 'string' },
  fast: { type: 'boolean' },
  cleanup: { type: 'boolean' },
  target: { type: 'string' },
  'no-runtime-changes': { type: 'boolean' },
  machine: { type: 'string' },
  format: { type: 'string' },
  output: { type: 'string', short: 'o' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values'];

/** The demo's pace: simulated ms per wall ms, so a whole migration takes a few seconds to watch. */
const DEMO_PACE = 5;

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** How the terminal looks; absent: plain lines, no colour. */
  screen?: { tty: boolean; color: boolean; columns: number; write(text: string): void };
  /** Registers a Ctrl-C handler for the duration of a run; returns its remover. */
  onInterrupt?: (handler: () => void) => () => void;
}

let io: CliIo = { out: () => {}, err: () => {} };

let out: (line: string) => void = () => {};
let err: (line: string) => void = () => {};

function faultsOf(values: Values): Fault[] {
  try {
    return [
      ...(values.fail ?? []).map((f) => parseFault(f, 'error')),
      ...(values.hang ?? []).map((f) => parseFault(f, 'hang')),
      ...(values.lose ?? []).map((f) => parseFault(f, 'lost')),
    ];
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function valid<T>(
  schema: {
    safeParse(
      v: unknown,
    ): { success: true; data: T } | { success: false; error: { issues: { message: string }[] } };
  },
  value: unknown,
  what: string,
): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UsageError(`bad ${what} '${String(value)}': ${r.error.issues[0]?.message}`);
  return r.data;
}

interface Simulated {
  result: ProtocolOutput | null;
  /** The state the run was stopped in by the operator, when it was. */
  stoppedIn: string | null;
  world: World;
  view: LiveView;
}

/** What stopping in a state leaves behind, for the Ctrl-C prompt. */
function stopHint(state: string): string {
  if (
    state === '' ||
    state.startsWith('checkingPrereqs') ||
    state === 'fetchingMigrationInfo' ||
    state === 'loadingConfig' ||
    state === 'locating'
  ) {
    return 'nothing has been touched yet';
  }
  return "the disks may be left dual-master or standalone: run the cleanup afterwards ('--cleanup')";
}

async function simulate(
  world: World,
  input: ProtocolInput,
  values: Values,
  cleanup: boolean,
  pace?: number,
): Promise<Simulated> {
  const sim = createSimCluster(world, { faults: faultsOf(values), ...(pace === undefined ? {} : { pace }) });
  const json = values.json === true;
  const quiet = values.quiet === true;
  const screen = io.screen ?? {
    tty: false,
    color: false,
    columns: 100,
    write: (t: string) => out(t.replace(/\n$/, '')),
  };
  const view = new LiveView(quiet || json ? { ...screen, tty: false, write: () => {} } : screen);
  const onEvent = (event: RunEvent) => {
    if (json) out(JSON.stringify(event));
    else view.onEvent(event);
  };
  sim.onStep = (step) => {
    for (const v of step.violations)
      onEvent({ type: 'feedback', level: 'warning', message: `SAFETY RULE BROKEN: ${v}` });
  };
  const stop = new AbortController();
  let pressedAt: number | null = null;
  const machineName = cleanup ? 'cleanup' : 'migration';
  const removeHandler = io.onInterrupt?.(() => {
    if (pressedAt !== null && Date.now() - pressedAt < 5_000) {
      view.line('Ctrl-C again: stopping after the current step; the cluster is saved as it is.');
      stop.abort();
      return;
    }
    pressedAt = Date.now();
    const what = explain(MACHINES_TO_DRAW, `${machineName}.${view.current}`);
    view.line(`Ctrl-C: the run is in ${view.current || 'its first step'}${what?.[1] ? `: ${what[1]}` : ''}`);
    view.line(`  Stopping now: ${stopHint(view.current)}. Press Ctrl-C again within 5 s to stop.`);
  });
  const run = cleanup ? runCleanup : runMigration;
  try {
    const result = await run(input, sim.effects, { clock: sim.clock, onEvent, signal: stop.signal });
    return { result, stoppedIn: null, world: sim.snapshot(), view };
  } catch (error) {
    if (!(error instanceof RunInterrupted)) throw error;
    return { result: null, stoppedIn: error.state, world: sim.snapshot(), view };
  } finally {
    removeHandler?.();
  }
}

function report(run: Simulated, json: boolean, quiet: boolean, worldFile: string | undefined): number {
  const { result, world } = run;
  if (result === null) {
    const hint =
      worldFile === undefined ? '' : `; run 'drbd-migrate migrate web1 --world ${worldFile} --cleanup'`;
    err(`drbd-migrate: stopped by the operator in ${run.stoppedIn}; the cluster is saved as it is${hint}`);
    return 3;
  }
  // Bad input gets its one-line cause on stderr whatever the output format.
  if (result.outcome === 'rejected') err(`drbd-migrate: ${result.error}`);
  if (json) {
    out(JSON.stringify({ type: 'result', ...result }));
    out(JSON.stringify({ type: 'world', ...describeWorldState(world) }));
  } else if (quiet) {
    for (const l of resultLines(result)) out(l);
  } else {
    const where = runningOn(world, result.instance).join(', ') || 'no node';
    for (const l of run.view.finish(result, world.time, where)) out(l);
    out('');
    for (const l of worldLines(world)) out(l);
  }
  return EXIT[result.outcome];
}

function inputOf(instance: string, values: Values): ProtocolInput {
  const input: ProtocolInput = { instance: valid(InstanceName, instance, 'instance name') };
  if (values['non-live'] === true) input.mode = 'non-live';
  if (values.target !== undefined) input.targetNode = valid(NodeName, values.target, 'target node');
  if (values['no-runtime-changes'] === true) input.allowRuntimeChanges = false;
  return input;
}

async function command(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const [command, ...rest] = positionals;
  if (command === 'help' && rest[0] !== undefined && COMMAND_HELP[rest[0]] !== undefined) {
    out(COMMAND_HELP[rest[0]]!);
    return 0;
  }
  if (values.help === true && command !== undefined && COMMAND_HELP[command] !== undefined) {
    out(COMMAND_HELP[command]!);
    return 0;
  }
  if (values.help === true || command === undefined || command === 'help') {
    out(HELP);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  switch (command) {
    case 'demo': {
      if (rest.length > 0) throw new UsageError(`demo takes no arguments, got '${rest.join(' ')}'`);
      const input = inputOf('web1', values);
      faultsOf(values);
      const run = await simulate(
        createWorld(DEMO_SPEC),
        input,
        values,
        false,
        values.fast ? undefined : DEMO_PACE,
      );
      if (values.world !== undefined) await saveWorld(values.world, run.world);
      return report(run, values.json === true, values.quiet === true, values.world);
    }
    case 'migrate': {
      const [instance, ...extra] = rest;
      if (instance === undefined) throw new UsageError('migrate needs an INSTANCE');
      if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
      if (values.world === undefined)
        throw new UsageError('migrate needs --world FILE (the simulated cluster to act on)');
      const input = inputOf(instance, values);
      faultsOf(values);
      const world = await loadWorld(values.world);
      const run = await simulate(world, input, values, values.cleanup === true);
      // Whatever happened is saved, so a cleanup finds the world as this run left it; a rejected
      // run touched nothing and leaves the file as it was.
      if (run.result?.outcome !== 'rejected') await saveWorld(values.world, run.world);
      return report(run, values.json === true, values.quiet === true, values.world);
    }
    case 'diagram': {
      const [name = 'migration', ...extra] = rest;
      if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
      const machine = MACHINES_TO_DRAW[name];
      if (machine === undefined)
        throw new UsageError(`unknown machine '${name}': expected migration or cleanup`);
      const format = values.format ?? 'mermaid';
      let text: string;
      if (format === 'mermaid') text = toMermaid(machine);
      else if (format === 'dot') text = toDot(machine);
      else if (format === 'svg') text = await toSvg(machine);
      else throw new UsageError(`unknown format '${format}': expected mermaid, dot or svg`);
      if (values.output === undefined) out(text.trimEnd());
      else {
        await writeFile(values.output, text);
        err(`wrote the ${name} machine as ${format} to ${values.output}`);
      }
      return 0;
    }
    case 'explain': {
      const [what, ...extra] = rest;
      if (what === undefined)
        throw new UsageError('explain needs an OUTCOME or STATE (e.g. needsCleanup, dualMaster.syncing)');
      if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
      const lines = explain(MACHINES_TO_DRAW, what);
      if (lines === null)
        throw new UsageError(`no state or outcome '${what}' in the migration or cleanup machine`);
      for (const l of lines) out(l);
      return 0;
    }
    case 'paths': {
      const machine = values.machine ?? 'migration';
      if (machine !== 'migration' && machine !== 'cleanup') {
        throw new UsageError(`unknown machine '${machine}': expected migration or cleanup`);
      }
      const summary = await pathSummary(machine);
      if (values.json === true) {
        for (const p of summary.set.paths) out(JSON.stringify({ type: 'path', ...p }));
        out(JSON.stringify({ type: 'coverage', ...summary.coverage }));
      } else {
        for (const p of summary.set.paths) out(`${p.description} ⇒ ${p.target}`);
        const c = summary.coverage;
        out('');
        out(
          `${machine}: ${c.paths} paths over ${c.vertices} vertices and ${c.edges} edges; ${c.covered}/${c.transitions} transitions covered when replayed on the simulated cluster`,
        );
        for (const u of c.uncovered) out(`uncovered: ${u}`);
      }
      return summary.coverage.uncovered.length === 0 ? 0 : 3;
    }
    case 'init': {
      if (values.world === undefined) throw new UsageError('init needs --world FILE');
      await saveWorld(values.world, createWorld(DEMO_SPEC));
      out(`wrote the demo cluster to ${values.world}`);
      return 0;
    }
    case 'show': {
      if (values.world === undefined) throw new UsageError('show needs --world FILE');
      const world = await loadWorld(values.world);
      if (values.json === true) out(JSON.stringify({ type: 'world', ...describeWorldState(world) }));
      else for (const l of worldLines(world)) out(l);
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${command}' (try --help)`);
  }
}

/** Runs one CLI invocation; resolves with the exit code. Never throws. */
export async function runCli(argv: string[], given: CliIo): Promise<number> {
  io = given;
  out = given.out;
  err = given.err;
  try {
    return await command(argv);
  } catch (error) {
    const usage =
      error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    given.err(`drbd-migrate: ${(error as Error).message ?? error}`);
    return usage ? 2 : 3;
  }
}
