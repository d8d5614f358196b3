import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type EffectCall,
  InstanceName,
  NodeName,
  type ProtocolInput,
  type ProtocolOutput,
} from '../../machines/index.js';
import { toDot, toMermaid, toSvg } from '../diagram/index.js';
import { abortOutlook, explain } from '../docs/explain.js';
import { MACHINES_TO_DRAW } from '../docs/generate.js';
import {
  FileJournal,
  FileLocks,
  LockedError,
  type Resumed,
  ResumeError,
  resumeMigration,
  runJournaled,
} from '../journal/index.js';
import { type RunEvent, type RunOptions, runMigration } from '../runner/index.js';
import {
  createSimCluster,
  createWorld,
  DEMO_SPEC,
  type Fault,
  parseFault,
  runningOn,
  type World,
} from '../sim/index.js';
import { ClusterUsageError, dryRun, resumeOnCluster, runOnCluster } from './cluster.js';
import { LiveView, seconds } from './live.js';
import { pathSummary } from './paths.js';
import { describeWorldState, EXIT, resultLines, worldLines } from './report.js';
import { loadWorld, saveWorld, UsageError } from './worldFile.js';

export const HELP = `drbd-migrate: live migration of DRBD-backed instances as explicit state machines

Usage:
  drbd-migrate demo [--fail EFFECT[@N]] [--hang EFFECT[@N]] [--lose EFFECT[@N]] [--non-live]
                    [--json] [--quiet] [--world FILE] [--fast]
  drbd-migrate migrate INSTANCE --cluster FILE [--cleanup] [--non-live] [--dry-run] [--json] [--quiet]
                    [--state-dir DIR]
  drbd-migrate migrate INSTANCE --world FILE [--cleanup] [--non-live] [--target NODE]
                    [--no-runtime-changes] [--fail ...] [--hang ...] [--lose ...] [--json] [--quiet]
                    [--state-dir DIR]
  drbd-migrate resume INSTANCE --cluster FILE|--world FILE [--state-dir DIR] [--json] [--quiet]
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
  migrate: `drbd-migrate migrate INSTANCE --cluster FILE: migrate (or clean up) an instance on real nodes over SSH
drbd-migrate migrate INSTANCE --world FILE: the same on a saved simulated cluster

With --cluster, the nodes, keys and instances come from the cluster file (docs/cluster.md); the
commit point rewrites it. --dry-run drives the machine on a simulated copy of the file and prints
the exact commands each node would run, touching nothing.

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

Every transition is journaled under --state-dir (default: $DRBD_MIGRATE_STATE_DIR, else
$XDG_STATE_HOME/drbd-migrate, else ~/.local/state/drbd-migrate), and the instance and its two nodes
are locked for the run. If the process dies, 'drbd-migrate resume INSTANCE' continues it.

Ctrl-C (or SIGTERM) aborts at the next safe point, once the step in flight has finished: before the
handover the run reverts; after the point of no return it finishes forward and says so. A second
Ctrl-C only says what is in flight and how long it may take; the process is never killed
mid-step by it.

--kill-at N (crash tests): the process kills itself (SIGKILL) right after the journal
records its Nth transition.

Examples:
  drbd-migrate init --world /tmp/w.json
  drbd-migrate migrate web1 --world /tmp/w.json --non-live
  drbd-migrate migrate web1 --world /tmp/w.json --cleanup`,
  resume: `drbd-migrate resume INSTANCE --cluster FILE|--world FILE: continue a migration or cleanup
whose process died

It reads the journal under --state-dir and continues from the last transition. Where continuing
blind is unsafe (the process died inside the hypervisor's handover, or the config no longer says
what the journal believed), it looks where the instance really runs and runs the cleanup instead.
With no journal, a corrupt one, or one written by another version of the machine, it says so and
touches nothing (exit 2).

Examples:
  drbd-migrate resume web1 --cluster cluster.yaml
  drbd-migrate resume web1 --world /tmp/w.json`,
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
  cluster: { type: 'string' },
  'dry-run': { type: 'boolean' },
  fast: { type: 'boolean' },
  cleanup: { type: 'boolean' },
  target: { type: 'string' },
  'no-runtime-changes': { type: 'boolean' },
  machine: { type: 'string' },
  format: { type: 'string' },
  output: { type: 'string', short: 'o' },
  quiet: { type: 'boolean' },
  'state-dir': { type: 'string' },
  'kill-at': { type: 'string' },
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
  result: ProtocolOutput;
  world: World;
  view: LiveView;
}

export function defaultStateDir(): string {
  if (process.env.DRBD_MIGRATE_STATE_DIR) return process.env.DRBD_MIGRATE_STATE_DIR;
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'drbd-migrate');
}

type Runner = (
  effects: ReturnType<typeof createSimCluster>['effects'],
  options: RunOptions,
) => Promise<ProtocolOutput>;

/** Runs one machine on a simulated cluster, with the live view, the safety record and Ctrl-C. */
async function simulate(
  world: World,
  values: Values,
  machineName: 'migration' | 'cleanup',
  run: Runner,
  options: { pace?: number; worldFile?: string } = {},
): Promise<Simulated> {
  const sim = createSimCluster(world, {
    faults: faultsOf(values),
    ...(options.pace === undefined ? {} : { pace: options.pace }),
  });
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
  // The simulated nodes are the world file: saved after every step, before the machine hears the answer.
  const worldFile = options.worldFile;
  if (worldFile !== undefined) sim.afterStep = () => saveWorld(worldFile, sim.snapshot());
  const inFlight = new Map<string, { effect: string; node: string; startedAt: number; timeoutMs: number }>();
  const onCall = (call: EffectCall) => {
    const input = call.input as { node?: string; nodes?: string[]; timeoutMs?: number };
    const key = `${call.effect}:${input.node ?? input.nodes?.join(',')}`;
    if (call.phase === 'start') {
      inFlight.set(key, {
        effect: call.effect,
        node: input.node ?? input.nodes?.join(' and ') ?? 'the config',
        startedAt: sim.clock.now(),
        timeoutMs: input.timeoutMs ?? 0,
      });
    } else inFlight.delete(key);
  };
  const operator = new AbortController();
  const removeHandler = io.onInterrupt?.(() => {
    const step = [...inFlight.values()][0];
    const now = step === undefined ? '' : `${step.effect} on ${step.node}`;
    if (!operator.signal.aborted) {
      operator.abort();
      const what = explain(MACHINES_TO_DRAW, `${machineName}.${view.current}`);
      view.line(
        `Ctrl-C: abort requested in ${view.current || 'the first step'}${what?.[1] ? ` (${what[1]})` : ''}`,
      );
      view.line(
        `  It takes effect when the step in flight${now ? ` (${now})` : ''} ends; the run then ${abortOutlook(MACHINES_TO_DRAW[machineName]!, view.current)}.`,
      );
      return;
    }
    const left = step === undefined ? 0 : Math.max(0, step.startedAt + step.timeoutMs - sim.clock.now());
    view.line(
      `Ctrl-C again: still in ${view.current}${now ? `, waiting for ${now}, running for ${seconds(sim.clock.now() - step!.startedAt)}; its deadline is in ${seconds(left)}` : ''}.`,
    );
    view.line(
      `  The run will not be killed in the middle of a step. To kill it anyway: kill -9 ${process.pid}, then 'drbd-migrate resume'.`,
    );
  });
  try {
    const result = await run(sim.effects, { clock: sim.clock, onEvent, onCall, abort: operator.signal });
    return { result, world: sim.snapshot(), view };
  } finally {
    removeHandler?.();
  }
}

function report(run: Simulated, json: boolean, quiet: boolean): number {
  const { result, world } = run;
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

/** migrate --cluster: real nodes over SSH (or --dry-run), with the same events, output and exit codes. */
async function migrateOnCluster(
  path: string,
  input: ProtocolInput,
  values: Values,
  resume = false,
): Promise<number> {
  const kind = values.cleanup === true ? 'cleanup' : 'migration';
  const json = values.json === true;
  try {
    if (values['dry-run'] === true) {
      const result = await dryRun(path, kind, input, json ? () => {} : out);
      if (json) out(JSON.stringify({ type: 'result', dryRun: true, ...result }));
      return EXIT[result.outcome];
    }
    const screen = io.screen ?? {
      tty: false,
      color: false,
      columns: 100,
      write: (t: string) => out(t.replace(/\n$/, '')),
    };
    const view = new LiveView(
      values.quiet === true || json ? { ...screen, tty: false, write: () => {} } : screen,
    );
    const onEvent = (e: RunEvent) => (json ? out(JSON.stringify(e)) : view.onEvent(e));
    const operator = new AbortController();
    const removeHandler = io.onInterrupt?.(() => {
      operator.abort();
      view.line('Ctrl-C: abort requested; it takes effect when the step in flight ends.');
    });
    let result: ProtocolOutput;
    try {
      const journal = journalStores(values, whereOf('cluster', path));
      const run = { onEvent, abort: operator.signal, journal };
      if (resume) {
        const resumed = await resumeOnCluster(path, input.instance, run).catch((error: Error) => {
          if (error instanceof ResumeError) throw new UsageError(error.message);
          throw error;
        });
        if (resumed.how === 'cleanup') view.line(`resume: running the cleanup instead: ${resumed.reason}`);
        result = resumed.output;
      } else {
        await refuseUnfinished(journal.store, input.instance, `--cluster ${path}`);
        result = await runOnCluster(path, kind, input, run);
      }
    } finally {
      removeHandler?.();
    }
    if (result.outcome === 'rejected') err(`drbd-migrate: ${result.error}`);
    if (json) out(JSON.stringify({ type: 'result', ...result }));
    else if (values.quiet === true) for (const l of resultLines(result)) out(l);
    else for (const l of view.finish(result, Date.now(), result.primaryNode ?? null)) out(l);
    return EXIT[result.outcome];
  } catch (error) {
    if (error instanceof ClusterUsageError) throw new UsageError(error.message);
    throw error;
  }
}

/** For crash tests: SIGKILL this process right after the journal records its Nth transition. */
function killer(n: number) {
  let last = '';
  let transitions = 0;
  return (_written: number, state: string) => {
    if (state === last) return;
    last = state;
    transitions++;
    if (transitions === n) process.kill(process.pid, 'SIGKILL');
  };
}

/** The journal and locks under --state-dir, what the run acts on, and --kill-at for crash tests. */
function journalStores(values: Values, where: string) {
  const stateDir = values['state-dir'] ?? defaultStateDir();
  const killAt = values['kill-at'] === undefined ? null : Number(values['kill-at']);
  if (killAt !== null && !(Number.isInteger(killAt) && killAt > 0)) {
    throw new UsageError(`bad --kill-at '${values['kill-at']}': expected a journal entry number from 1`);
  }
  return {
    store: new FileJournal(stateDir),
    locks: new FileLocks(stateDir),
    where,
    ...(killAt === null ? {} : { afterWrite: killer(killAt) }),
  };
}

/** How the journal names what a run acts on: "cluster /abs/path" or "world /abs/path". */
const whereOf = (kind: 'cluster' | 'world', file: string) => `${kind} ${resolve(file)}`;

function journalOptions(values: Values, world: World, instance: string, worldFile: string) {
  const config = world.config.instances[instance];
  return {
    ...journalStores(values, whereOf('world', worldFile)),
    nodes:
      config === undefined
        ? []
        : [config.primaryNode, config.secondaryNode].filter((n): n is string => n !== null),
  };
}

/** Refuses to start over a journaled run that did not finish: it must be resumed or cleaned up. */
async function refuseUnfinished(store: FileJournal, instance: string, where: string) {
  const unfinished = await store.read(instance).catch((error: Error) => {
    throw new UsageError(`${error.message}; inspect it, then remove it or run migrate --cleanup`);
  });
  if (unfinished !== null) {
    // Resumed where it ran: "cluster /x.yaml" → --cluster /x.yaml.
    const there = unfinished.where?.replace(/^(cluster|world) /, '--$1 ') ?? where;
    throw new UsageError(
      `an unfinished ${unfinished.machine} of ${instance} (pid ${unfinished.owner.pid} on ${unfinished.owner.host}, last in ${unfinished.state} at ${unfinished.writtenAt}) is journaled; run 'drbd-migrate resume ${instance} ${there}'`,
    );
  }
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
        values,
        'migration',
        (effects, options) => runMigration(input, effects, options),
        values.fast ? {} : { pace: DEMO_PACE },
      );
      if (values.world !== undefined) await saveWorld(values.world, run.world);
      return report(run, values.json === true, values.quiet === true);
    }
    case 'migrate': {
      const [instance, ...extra] = rest;
      if (instance === undefined) throw new UsageError('migrate needs an INSTANCE');
      if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
      if (values.cluster !== undefined)
        return migrateOnCluster(values.cluster, inputOf(instance, values), values);
      if (values.world === undefined)
        throw new UsageError(
          'migrate needs --cluster FILE (real nodes) or --world FILE (a simulated cluster)',
        );
      const input = inputOf(instance, values);
      faultsOf(values);
      const world = await loadWorld(values.world);
      const kind = values.cleanup === true ? 'cleanup' : 'migration';
      const journal = journalOptions(values, world, input.instance, values.world);
      await refuseUnfinished(journal.store, input.instance, `--world ${values.world}`);
      const original = await readFile(values.world, 'utf8');
      const run = await simulate(
        world,
        values,
        kind,
        (effects, options) => runJournaled(kind, input, effects, { ...options, ...journal }),
        { worldFile: values.world },
      );
      // Whatever happened is saved, so a cleanup finds the world as this run left it; a rejected
      // run touched nothing and leaves the file as it was.
      if (run.result.outcome === 'rejected') await writeFile(values.world, original);
      else await saveWorld(values.world, run.world);
      return report(run, values.json === true, values.quiet === true);
    }
    case 'resume': {
      const [instance, ...extra] = rest;
      if (instance === undefined) throw new UsageError('resume needs an INSTANCE');
      if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
      const name = valid(InstanceName, instance, 'instance name');
      if (values.cluster !== undefined) {
        if (values['dry-run'] === true) throw new UsageError('resume has no --dry-run');
        return migrateOnCluster(values.cluster, { instance: name }, values, true);
      }
      if (values.world === undefined)
        throw new UsageError(
          'resume needs --cluster FILE (real nodes) or --world FILE (the simulated cluster to act on)',
        );
      const world = await loadWorld(values.world);
      const journal = journalOptions(values, world, name, values.world);
      const entry = await journal.store.read(name).catch((error: Error) => {
        throw new UsageError(error.message);
      });
      if (entry === null) {
        throw new UsageError(
          `there is no unfinished migration or cleanup of ${name} to resume (no journal in ${values['state-dir'] ?? defaultStateDir()})`,
        );
      }
      const run = await simulate(
        world,
        values,
        entry.machine,
        async (effects, options) => {
          const resumed: Resumed = await resumeMigration(name, effects, { ...options, ...journal });
          return resumed.output;
        },
        { worldFile: values.world },
      );
      await saveWorld(values.world, run.world);
      return report(run, values.json === true, values.quiet === true);
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
    // Refusals that touched nothing: bad input, a held lock, a journal that cannot be trusted.
    const usage =
      error instanceof UsageError ||
      error instanceof ResumeError ||
      error instanceof LockedError ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    given.err(`drbd-migrate: ${(error as Error).message ?? error}`);
    return usage ? 2 : 3;
  }
}
