import { parseArgs } from 'node:util';
import { InstanceName, NodeName, type ProtocolInput, type ProtocolOutput } from '../../machines/index.js';
import { type RunEvent, runCleanup, runMigration } from '../runner/index.js';
import {
  createSimCluster,
  createWorld,
  DEMO_SPEC,
  type Fault,
  parseFault,
  type World,
} from '../sim/index.js';
import { pathSummary } from './paths.js';
import { describeWorldState, EXIT, plainPrinter, resultLines, worldLines } from './report.js';
import { loadWorld, saveWorld, UsageError } from './worldFile.js';

const HELP = `drbd-migrate: live migration of DRBD-backed instances as explicit state machines

Usage:
  drbd-migrate demo [--fail EFFECT[@N]] [--hang EFFECT[@N]] [--lose EFFECT[@N]] [--non-live]
                    [--json] [--world FILE] [--fast]
  drbd-migrate migrate INSTANCE --world FILE [--cleanup] [--non-live] [--target NODE]
                    [--no-runtime-changes] [--fail ...] [--hang ...] [--lose ...] [--json]
  drbd-migrate paths [--machine migration|cleanup] [--json]
                    the test paths generated from a machine, and the transitions they cover
  drbd-migrate init --world FILE        write the demo's simulated cluster to FILE
  drbd-migrate show --world FILE [--json]

Faults (simulator): --fail makes an effect fail, --hang makes it never answer (cut off by its
deadline), --lose makes it act and then lose its answer. EFFECT@N hits the Nth call only, EFFECT
every call. Several may be given.

Exit codes: 0 migrated or cleaned; 1 reverted (failed, instance safe on the source);
2 rejected or bad input (nothing touched); 3 needsCleanup or failed.

Examples:
  drbd-migrate demo
  drbd-migrate demo --fail acceptInstance --world /tmp/w.json
  drbd-migrate migrate web1 --world /tmp/w.json --cleanup`;

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
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values'];

/** The demo's pace: simulated ms per wall ms, so a whole migration takes a few seconds to watch. */
const DEMO_PACE = 5;

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

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

async function simulate(world: World, input: ProtocolInput, values: Values, cleanup: boolean, pace?: number) {
  const sim = createSimCluster(world, { faults: faultsOf(values), ...(pace === undefined ? {} : { pace }) });
  const json = values.json === true;
  const print = plainPrinter(out);
  const onEvent = (event: RunEvent) => {
    if (json) out(JSON.stringify(event));
    else print(event);
  };
  sim.onStep = (step) => {
    for (const v of step.violations)
      onEvent({ type: 'feedback', level: 'warning', message: `SAFETY RULE BROKEN: ${v}` });
  };
  const run = cleanup ? runCleanup : runMigration;
  const result: ProtocolOutput = await run(input, sim.effects, { clock: sim.clock, onEvent });
  return { result, world: sim.snapshot() };
}

function report(result: ProtocolOutput, world: World, json: boolean) {
  // Bad input gets its one-line cause on stderr whatever the output format.
  if (result.outcome === 'rejected') err(`drbd-migrate: ${result.error}`);
  if (json) {
    out(JSON.stringify({ type: 'result', ...result }));
    out(JSON.stringify({ type: 'world', ...describeWorldState(world) }));
    return;
  }
  out('');
  for (const l of resultLines(result)) out(l);
  out('');
  for (const l of worldLines(world)) out(l);
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
  if (values.help === true || command === undefined || command === 'help') {
    out(HELP);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  switch (command) {
    case 'demo': {
      if (rest.length > 0) throw new UsageError(`demo takes no arguments, got '${rest.join(' ')}'`);
      const input = inputOf('web1', values);
      faultsOf(values);
      const { result, world } = await simulate(
        createWorld(DEMO_SPEC),
        input,
        values,
        false,
        values.fast ? undefined : DEMO_PACE,
      );
      if (values.world !== undefined) await saveWorld(values.world, world);
      report(result, world, values.json === true);
      return EXIT[result.outcome];
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
      const { result, world: after } = await simulate(world, input, values, values.cleanup === true);
      // Whatever happened is saved, so a cleanup finds the world as this run left it; a rejected
      // run touched nothing and leaves the file as it was.
      if (result.outcome !== 'rejected') await saveWorld(values.world, after);
      report(result, after, values.json === true);
      return EXIT[result.outcome];
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
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  out = io.out;
  err = io.err;
  try {
    return await command(argv);
  } catch (error) {
    const usage =
      error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    io.err(`drbd-migrate: ${(error as Error).message ?? error}`);
    return usage ? 2 : 3;
  }
}
