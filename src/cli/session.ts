import { access, constants, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type EffectCall,
  InstanceName,
  MACHINES_TO_DRAW,
  type MachineName,
  NodeName,
  type ProtocolInput,
  type ProtocolOutput,
} from '../../machines/index.js';
import { abortOutlook, explain } from '../docs/explain.js';
import { FileJournal, FileLocks } from '../journal/index.js';
import type { RunEvent, RunOptions } from '../runner/index.js';
import { createSimCluster, type Fault, parseFault, runningOn, type World } from '../sim/index.js';
import { fileError, UsageError } from './errors.js';
import { type CliIo, screenOf } from './io.js';
import { LiveView, seconds } from './live.js';
import type { Values } from './options.js';
import { describeWorldState, EXIT, resultLines, worldLines } from './report.js';
import { saveWorld } from './worldFile.js';

/** What a run acts on, as the journal records it and as the hints repeat it: "--world /x.json". */
export interface Target {
  kind: 'world' | 'cluster';
  file: string;
  /** Runs go to this Restate cluster's ingress (hints repeat it). */
  restate?: string;
}
export const targetFlag = (t: Target | null) =>
  t === null ? '' : ` --${t.kind} ${t.file}${t.restate === undefined ? '' : ` --restate ${t.restate}`}`;
/** How the journal names what a run acts on: "cluster /abs/path" or "world /abs/path". */
export const whereOf = (t: Target) => `${t.kind} ${resolve(t.file)}`;

/** The command that repairs what a run left, naming the file it acted on. */
export function cleanupCommand(instance: string, target: Target | null): string | null {
  return target === null ? null : `drbd-migrate migrate ${instance}${targetFlag(target)} --cleanup`;
}

export function faultsOf(values: Values): Fault[] {
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

export const instanceName = (name: string) => valid(InstanceName, name, 'instance name');
export const nodeName = (name: string) => valid(NodeName, name, 'node name');

export function inputOf(instance: string, values: Values): ProtocolInput {
  const input: ProtocolInput = { instance: instanceName(instance) };
  if (values['non-live'] === true) input.mode = 'non-live';
  if (values.target !== undefined) input.targetNode = valid(NodeName, values.target, 'target node');
  if (values['no-runtime-changes'] === true) input.allowRuntimeChanges = false;
  return input;
}

export function defaultStateDir(): string {
  if (process.env.DRBD_MIGRATE_STATE_DIR) return process.env.DRBD_MIGRATE_STATE_DIR;
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'drbd-migrate');
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

/**
 * The journal and locks under --state-dir, and --kill-at for crash tests. The directory is made and
 * checked here, before any node is touched: an unwritable one is bad input, not a failed run.
 */
export async function journalStores(values: Values, target: Target) {
  const stateDir = values['state-dir'] ?? defaultStateDir();
  const killAt = values['kill-at'] === undefined ? null : Number(values['kill-at']);
  if (killAt !== null && !(Number.isInteger(killAt) && killAt > 0)) {
    throw new UsageError(`bad --kill-at '${values['kill-at']}': expected a journal entry number from 1`);
  }
  for (const dir of [stateDir, join(stateDir, 'journal'), join(stateDir, 'locks')]) {
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, constants.W_OK);
    } catch (error) {
      throw fileError('use the state directory', dir, error);
    }
  }
  return {
    store: new FileJournal(stateDir),
    locks: new FileLocks(stateDir),
    stateDir,
    where: whereOf(target),
    ...(killAt === null ? {} : { afterWrite: killer(killAt) }),
  };
}

/** The instance's two nodes in a simulated world, locked with it. */
export function worldNodes(world: World, instance: string): string[] {
  const config = world.config.instances[instance];
  return config === undefined
    ? []
    : [config.primaryNode, config.secondaryNode].filter((n): n is string => n !== null);
}

/** Refuses to start over a journaled run that did not finish: it must be resumed or cleaned up. */
export async function refuseUnfinished(store: FileJournal, instance: string, target: Target) {
  const unfinished = await store.read(instance).catch((error: Error) => {
    throw new UsageError(
      `${error.message}; inspect it, then remove it or run 'drbd-migrate migrate ${instance}${targetFlag(target)} --cleanup'`,
    );
  });
  if (unfinished !== null) {
    // Resumed where it ran: "cluster /x.yaml" → --cluster /x.yaml.
    const there = unfinished.where?.replace(/^(cluster|world) /, '--$1 ') ?? targetFlag(target).trim();
    throw new UsageError(
      `an unfinished ${unfinished.machine} of ${instance} (pid ${unfinished.owner.pid} on ${unfinished.owner.host}, last in ${unfinished.state} at ${unfinished.writtenAt}) is journaled; run 'drbd-migrate resume ${instance} ${there}'`,
    );
  }
}

/** Runs `work` with Ctrl-C (and SIGTERM) turned into an operator abort at the next safe point. */
export async function withOperatorAbort<T>(
  io: CliIo,
  view: { line(text: string): void },
  work: (abort: AbortSignal) => Promise<T>,
): Promise<T> {
  const operator = new AbortController();
  const removeHandler = io.onInterrupt?.(() => {
    operator.abort();
    view.line('Ctrl-C: abort requested; it takes effect when the step in flight ends.');
  });
  try {
    return await work(operator.signal);
  } finally {
    removeHandler?.();
  }
}

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
  end: { at: number; runsOn: string | null; target: Target | null; world?: World; dryRun?: boolean },
): number {
  const cleanup = cleanupCommand(result.instance, end.target);
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

type SimRunner = (
  effects: ReturnType<typeof createSimCluster>['effects'],
  options: RunOptions,
) => Promise<ProtocolOutput>;

/**
 * Runs one machine on a simulated cluster with the live view, the safety record and Ctrl-C; saves
 * the world after every step when it is a file (so a crash leaves it as the nodes would be).
 */
export async function simulate(
  io: CliIo,
  world: World,
  values: Values,
  machineName: MachineName,
  run: SimRunner,
  options: {
    pace?: number;
    target: Target | null;
    instance: string;
    /** Saved after every step and journaled (migrate, resume), or only run (the demo). */
    journaled: boolean;
  },
): Promise<{ result: ProtocolOutput; world: World; code: number }> {
  const sim = createSimCluster(world, {
    faults: faultsOf(values),
    ...(options.pace === undefined ? {} : { pace: options.pace }),
  });
  const { view, onEvent } = viewFor(io, values);
  sim.onStep = (step) => {
    for (const v of step.violations)
      onEvent({ type: 'feedback', level: 'warning', message: `SAFETY RULE BROKEN: ${v}` });
  };
  const target = options.target;
  if (target !== null && options.journaled) sim.afterStep = () => saveWorld(target.file, sim.snapshot());
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
      target === null || !options.journaled
        ? '  The run will not be killed in the middle of a step. The demo keeps no journal: killed, the run is lost (migrate --world FILE keeps one).'
        : `  The run will not be killed in the middle of a step. To kill it anyway: kill -9 ${process.pid}, then 'drbd-migrate resume ${options.instance}${targetFlag(target)}'.`,
    );
  });
  try {
    const result = await run(sim.effects, { clock: sim.clock, onEvent, onCall, abort: operator.signal });
    const after = sim.snapshot();
    const code = finish(io, values, view, result, {
      at: after.time,
      runsOn: runningOn(after, result.instance).join(', ') || 'no node',
      target,
      world: after,
    });
    return { result, world: after, code };
  } finally {
    removeHandler?.();
  }
}

/** The effects a dry run on a simulated copy makes, one line each, with the node that would act. */
export function planPrinter(print: (line: string) => void) {
  return (call: EffectCall) => {
    if (call.phase !== 'start') return;
    const input = call.input as { node?: string; nodes?: string[] };
    const where = input.node ?? input.nodes?.join(' and ') ?? 'the config';
    print(`${call.effect} on ${where}`);
  };
}

/** Checks before a run that the world file can be written back (each step saves it). */
export async function checkWritable(file: string): Promise<void> {
  try {
    await access(file, constants.W_OK);
    await access(resolve(file, '..'), constants.W_OK);
  } catch (error) {
    throw fileError('write world file', file, error);
  }
}
