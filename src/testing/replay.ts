import type { AnyActorRef, AnyMachineSnapshot, AnyStateMachine, Snapshot } from 'xstate';
import {
  EFFECT_NAMES,
  type EffectName,
  type Effects,
  MACHINES,
  NEEDS_A_PERSON,
  type ProtocolInput,
  type ProtocolOutput,
  pathHasTag,
} from '../../machines/index.js';
import { RunInterrupted, runMachine, stateKey } from '../runner/index.js';
import type { Perturbation } from '../sim/index.js';
import { outcomeProblems, restProblems, safetyProblems } from './oracle.js';
import type { GeneratedPath, PlanEntry } from './paths.js';
import { recordTransitions } from './transitions.js';
import type { Recipe, StartPoint } from './variants.js';
import type { MakeWorld, TestWorld, WorldView } from './world.js';

export interface ReplayOptions {
  /** Drop the run (as a dead orchestrator would) on reaching the path's last state, then run cleanup. */
  crashAtEnd?: boolean;
  /** Run this machine instead of the shipped one (a mutated copy, an extension). */
  logic?: AnyStateMachine;
}

export interface ReplayResult {
  path: GeneratedPath;
  output: ProtocolOutput | null;
  /** Everything that went wrong: broken safety rules, untruthful outcomes, a path not realised. */
  problems: string[];
  /** Keys of the transitions the machine took (see transitionsOf). */
  covered: Set<string>;
  visited: string[];
  cleanup: ProtocolOutput | null;
}

const OUTCOMES = new Set(['migrated', 'reverted', 'rejected', 'needsCleanup', 'cleaned', 'failed']);

const START_CRASH: Record<
  Exclude<
    StartPoint,
    'healthy' | 'afterFailover' | 'pausedOnSource' | 'replaceCommitted' | 'thirdCopyRestarted'
  >,
  string
> = {
  crashMidCopy: 'migrating.transferring.polling',
  crashAfterCopy: 'finalizing.source',
  crashBeforeCommit: 'committing.writing',
};

/** Things that happen to nodes, not to the instance's steps. */
const NODE_EVENTS = new Set<Perturbation>([
  'sourceDies',
  'sourceIsolated',
  'sourceWritesAloneAndDies',
  'sourceUnreachable',
  'sourceCutFromTarget',
  'targetIsolated',
  'secondaryDies',
  'staleCopy',
  'sourceReturns',
  'primaryDegrades',
  // The third copy (or the secondary) falls behind (writes it missed): fewer copies in sync than the run found, by no
  // doing of the run.
  'thirdCopyBehind',
  'secondaryBehind',
]);

/** Machines whose crashed run is resumed from its last snapshot (the journal's way), not cleaned up. */
const RESUMED = new Set(['failover', 'rejoin', 'changeSecondary']);

interface Run {
  output: ProtocolOutput | null;
  visited: string[];
  crashed: boolean;
  /** The last persisted snapshot, as a journal would hold it. */
  snapshot: Snapshot<unknown> | null;
}

/** Runs a machine on a world, with the plan's faults injected at the calls it names. */
async function runOn(
  logic: AnyStateMachine,
  world: TestWorld,
  input: ProtocolInput,
  plan: PlanEntry[],
  options: {
    graceMs?: number;
    crashAt?: string;
    covered?: Set<string>;
    problems: string[];
    snapshot?: Snapshot<unknown>;
    /** Told after the world changed by itself (a perturbation of the plan). */
    onEvent?: (kind: Perturbation) => void | Promise<void>;
  },
): Promise<Run & { unfired: PlanEntry[] }> {
  let actor: AnyActorRef | null = null;
  const stateOf = () => (actor === null ? '' : stateKey((actor.getSnapshot() as AnyMachineSnapshot).value));
  const counts = new Map<string, number>();
  const fired = new Set<PlanEntry>();
  const note = (p: string) => {
    if (!options.problems.includes(p)) options.problems.push(p);
  };
  // Rule 3 between steps: the instance is started on a node the config does not name only by the
  // hypervisor's handover (or at the commit that makes the config name it). A copy that was there
  // already (incoming, paused) may come to run by itself; one where there was none is a start.
  let present: string[] | null = null;
  const rebase = async () => {
    present = Object.keys((await world.inspect()).instance);
  };
  const check = async () => {
    const view = await world.inspect();
    for (const p of safetyProblems(view)) note(p);
    const state = stateOf();
    const moving = pathHasTag(logic, state, 'handover') || pathHasTag(logic, state, 'commit');
    if (present !== null && !moving) {
      const started = Object.entries(view.instance).filter(
        ([n, s]) => s === 'running' && !present!.includes(n) && n !== view.configPrimary,
      );
      for (const [n] of started)
        note(
          `rule 3: the instance was started on ${n} in ${state}, outside the handover, while the config names ${view.configPrimary}`,
        );
    }
    present = Object.keys(view.instance);
  };
  const effects = Object.fromEntries(
    EFFECT_NAMES.map((name: EffectName) => {
      const real = world.effects[name] as (input: unknown, signal: AbortSignal) => Promise<unknown>;
      const wrapped = async (callInput: { instance: string; node?: string }, signal: AbortSignal) => {
        const state = stateOf();
        const key = `${state}|${name}`;
        const n = (counts.get(key) ?? 0) + 1;
        counts.set(key, n);
        const entry = plan.find((e) => e.state === state && e.effect === name && e.occurrence === n);
        if (entry !== undefined) fired.add(entry);
        const injected = () =>
          new Error(`${callInput.node ?? 'nodes'}: injected fault: ${name} failed in ${state}`);
        try {
          switch (entry?.action) {
            case undefined:
              return await real(callInput, signal);
            case 'error':
              throw injected();
            case 'hang':
              return await new Promise((_, reject) =>
                signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
              );
            case 'lost':
              await real(callInput, signal);
              throw injected();
            case 'abort':
              operator.abort();
              return await real(callInput, signal);
            default:
              await world.perturb(entry!.action as Perturbation, callInput.instance);
              await options.onEvent?.(entry!.action as Perturbation);
              // What the world did by itself is no step of the machine's.
              await rebase();
              return await real(callInput, signal);
          }
        } finally {
          await check();
        }
      };
      return [name, wrapped];
    }),
  ) as unknown as Effects;

  const visited: string[] = [];
  await rebase();
  const stop = new AbortController();
  const operator = new AbortController();
  // Persisted at the crash, as a journal's last record would be (not at every transition: only a
  // crashed run is resumed from it).
  let snapshot: Snapshot<unknown> | null = null;
  try {
    const output = await runMachine(logic, input, effects, {
      ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
      clock: world.clock,
      signal: stop.signal,
      abort: operator.signal,
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      ...(options.covered === undefined ? {} : { inspect: recordTransitions(options.covered) }),
      onStart: (a) => {
        actor = a;
      },
      onEvent: (e) => {
        if (e.type !== 'state') return;
        visited.push(e.value);
        if (options.crashAt === e.value && fired.size === plan.length)
          queueMicrotask(() => {
            snapshot = actor?.getPersistedSnapshot() ?? null;
            stop.abort();
          });
      },
    });
    return { output, visited, crashed: false, snapshot, unfired: plan.filter((e) => !fired.has(e)) };
  } catch (error) {
    if (!(error instanceof RunInterrupted)) throw error;
    return { output: null, visited, crashed: true, snapshot, unfired: plan.filter((e) => !fired.has(e)) };
  }
}

function inputOf(recipe: Recipe): ProtocolInput {
  return { instance: 'web1', ...recipe.input, limits: { ...recipe.input?.limits, ...recipe.limits } };
}

/**
 * Replays one generated path on a fresh world: the recipe shapes the world, the plan injects the
 * path's failures at the calls it names, and after every call the safety rules are checked. The
 * result lists every problem; an empty list means the path was realised and everything held.
 */
export async function replayPath(
  path: GeneratedPath,
  makeWorld: MakeWorld,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const world = await makeWorld(path.recipe);
  const problems: string[] = [];
  const covered = new Set<string>();
  try {
    const input = inputOf(path.recipe);
    const start = path.recipe.start ?? 'healthy';
    if (start === 'afterFailover') {
      // The primary, cut off from its peer, writes on alone and dies; it is failed over from, and
      // boots again: what a rejoin starts from. Its return is a split brain, so a backend that does
      // not connect it with --discard-my-data leaves it StandAlone, and the rejoin says so.
      await world.perturb('sourceWritesAloneAndDies', 'web1');
      await runOn(MACHINES.failover, world, { instance: 'web1', sourceIsDown: true }, [], { problems });
      await world.perturb('sourceReturns', 'web1');
    } else if (start === 'replaceCommitted') {
      const prep = await runOn(
        MACHINES.changeSecondary,
        world,
        {
          instance: 'web1',
          newSecondary: 'node-c',
          ...(input.replaceCopy === undefined ? {} : { replaceCopy: input.replaceCopy }),
        },
        [],
        {
          // Right after the commit: on DRBD 8.4 before the attach, on 9 before the old peer leaves.
          crashAt: path.recipe.spec?.instances?.some((i) => i.drbd === '9')
            ? 'removingFormerPeer'
            : 'attachingNew',
          problems,
        },
      );
      if (!prep.crashed) problems.push(`could not set up the start point ${start}`);
    } else if (start === 'thirdCopyRestarted') {
      await world.perturb('thirdCopyRestarts', 'web1');
    } else if (start === 'pausedOnSource') {
      await world.perturb('sourcePauses', 'web1');
    } else if (path.machine === 'cleanup' && start !== 'healthy') {
      const prep = await runOn(MACHINES.migration, world, { instance: 'web1' }, [], {
        crashAt: START_CRASH[start],
        problems,
      });
      if (!prep.crashed) problems.push(`could not set up the start point ${start}`);
    }
    let before: WorldView = await world.inspect();
    // A node that dies, is cut off, or boots again changes the world the run starts from: what
    // "nothing was touched" is measured against is the world right after it.
    const onEvent = async (kind: Perturbation) => {
      if (NODE_EVENTS.has(kind)) before = await world.inspect();
    };
    const logic = options.logic ?? MACHINES[path.machine];
    const run = await runOn(logic, world, input, path.plan, {
      // A path that ends in an outcome has nothing left to crash: its world goes to cleanup as it is.
      ...(options.crashAtEnd && !OUTCOMES.has(path.target) ? { crashAt: path.target } : {}),
      covered,
      problems,
      onEvent,
    });
    for (const e of run.unfired)
      problems.push(`the world never made ${e.effect} call ${e.occurrence} in ${e.state} (${e.action})`);
    if (!run.visited.includes(path.target)) problems.push(`never reached ${path.target}`);
    for (const v of world.violations()) problems.push(v);
    let cleanup: ProtocolOutput | null = null;
    if (run.output !== null) {
      for (const p of outcomeProblems(run.output, before, await world.inspect())) problems.push(p);
    }
    if (options.crashAtEnd && RESUMED.has(path.machine)) {
      // The orchestrator died: the run is resumed from its last snapshot and must end truthfully.
      if (run.crashed && run.snapshot !== null) {
        const resumed = await runOn(logic, world, input, [], { problems, snapshot: run.snapshot });
        cleanup = resumed.output;
        if (resumed.output === null) problems.push('the resumed run did not end');
        else
          for (const p of outcomeProblems(resumed.output, before, await world.inspect()))
            problems.push(`resumed: ${p}`);
      }
      for (const v of world.violations()) if (!problems.includes(v)) problems.push(v);
    } else if (options.crashAtEnd) {
      const after = await runOn(MACHINES.cleanup, world, { instance: 'web1' }, [], { problems });
      cleanup = after.output;
      const outcome = cleanup?.outcome;
      const view = await world.inspect();
      if (outcome === 'cleaned')
        for (const p of restProblems(view)) problems.push(`cleanup after the crash: ${p}`);
      else if (outcome === 'failed' && cleanup !== null && NEEDS_A_PERSON.has(cleanup.verdict)) {
        // Ganeti's own verdicts for what no cleanup can repair; the safety rules must still hold.
      } else if (!(outcome === 'rejected' && run.output?.outcome === 'rejected')) {
        problems.push(`cleanup after the crash ended ${outcome}: ${cleanup?.error ?? ''}`);
      }
      for (const v of world.violations()) if (!problems.includes(v)) problems.push(v);
    }
    return { path, output: run.output, problems, covered, visited: run.visited, cleanup };
  } finally {
    await world.dispose?.();
  }
}
