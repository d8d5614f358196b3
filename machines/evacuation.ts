import { assign, enqueueActions, fromCallback, setup } from 'xstate';
import { z } from 'zod';
import { isSharedStorage } from './checks.js';
import { type InstanceConfig, MigrationMode } from './contract.js';
import { Convergence } from './convergence.js';
import { errorText, unprovidedEffects } from './effects.js';
import { issuesText } from './input.js';
import { Limits } from './limits.js';
import { InstanceName, NodeName } from './names.js';
import { type Outcome, type ProtocolInput, type ProtocolOutput, VERDICTS, type Verdict } from './protocol.js';

/**
 * Draining a node (Ganeti's gnt-node migrate, Proxmox's migrateall): every instance whose primary is
 * the node moves to its secondary, each as its own run of the migration (or failover) machine. This
 * machine only decides: what moves and in which order, when each may start under the limits, and what
 * the whole came to. Each instance's run is an actor the runtime provides (`instanceRun`), so that it
 * is journaled, locked and resumed as any single migration is.
 */

export const DEFAULT_CONCURRENCY = 2;

const slots = z.number().int('must be a whole number').min(1, 'must be at least 1').max(1024);

export const EvacuationInputSchema = z
  .object({
    node: NodeName,
    /** Runs at once in all. */
    concurrency: slots.optional(),
    /** Runs at once that touch any one node (its link is shared by every copy to or from it). */
    perNode: slots.optional(),
    mode: MigrationMode.optional(),
    /** Instances that are down are failed over (config and disks only); without it they are skipped. */
    allowFailover: z.boolean().optional(),
    /** Move the instances whose primary is the node (default true). */
    primaries: z.boolean().optional(),
    /**
     * Then give every instance whose secondary is the node (those just moved off it included) a new
     * secondary, where `placements` says; one without a placement is skipped, saying why (`unplaced`).
     */
    secondaries: z.boolean().optional(),
    /** The new secondary of each instance, chosen before the drain (the runner's placement). */
    placements: z.record(InstanceName, NodeName).optional(),
    /** Why an instance has no placement. */
    unplaced: z.record(InstanceName, z.string()).optional(),
    /** Mark the node drained in the config first: nothing new is placed there while it empties. */
    drain: z.boolean().optional(),
    /**
     * Start nothing new after this many ms (on the run's clock, from when the drain or its resume
     * starts): runs under way end, a half-done one still gets its repair, the rest is listed.
     */
    deadlineMs: z.number().int().positive().max(2_147_483_647).optional(),
    limits: Limits.partial().optional(),
    convergence: Convergence.partial().optional(),
    /** A resumed evacuation: what ended before the crash, and what was under way (taken up first). */
    resumed: z
      .object({
        results: z.array(z.lazy(() => InstanceResultSchema)),
        inFlight: z.array(InstanceName),
        /** Migrations that ended half-done before their cleanup ran. */
        needCleanup: z.array(InstanceName).default([]),
      })
      .optional(),
  })
  .strict();
export type EvacuationInput = z.input<typeof EvacuationInputSchema>;

/**
 * cleanup: a run that ended needsCleanup is followed by Ganeti's migrate --cleanup before the next.
 * changeSecondary: a new secondary for an instance whose secondary is the node (its repair too).
 */
export type Operation = 'migration' | 'failover' | 'cleanup' | 'changeSecondary';
const OPERATIONS = ['migration', 'failover', 'cleanup', 'changeSecondary'] as const;

/** One instance's run, as the evacuation asks the runtime for it. */
export interface InstanceRequest {
  instance: string;
  operation: Operation;
  source: string;
  target: string;
  input: ProtocolInput;
  /** Under way when an earlier orchestrator stopped: to be taken up from its journal, not begun again. */
  resumed: boolean;
}

export const InstanceResultSchema = z.object({
  instance: InstanceName,
  /** null: it was not run (skipped). */
  operation: z.enum(OPERATIONS).nullable(),
  outcome: z.string(),
  primaryNode: NodeName.nullable(),
  /** Where the run left the instance's secondary, when it changed it (a replace). */
  secondaryNode: NodeName.nullable().optional(),
  /** A replace: the old secondary the config still names as holding copies. */
  formerSecondary: NodeName.optional(),
  /** Why it ended (absent in journals written before verdicts, and where it was not run). */
  verdict: z.enum(VERDICTS).optional(),
  /** Why it was skipped, or what went wrong. */
  error: z.string().optional(),
  /** What a run that could not finish or undo its work left (needsCleanup, failed). */
  left: z.array(z.string()).optional(),
  tried: z.array(z.string()).optional(),
});
export interface InstanceResult {
  instance: string;
  operation: Operation | null;
  outcome: Outcome | 'skipped' | 'notStarted';
  primaryNode: string | null;
  secondaryNode?: string | null;
  formerSecondary?: string;
  verdict?: Verdict;
  error?: string;
  left?: string[];
  tried?: string[];
}

export type EvacuationOutcome = 'evacuated' | 'incomplete' | 'aborted' | 'rejected';

/** What a drain's outcomes, and an instance's outcomes of its own within one, mean (explain, docs). */
export const EVACUATION_OUTCOMES: Record<
  EvacuationOutcome | 'skipped' | 'notStarted',
  { means: string; check: string }
> = {
  evacuated: {
    means:
      'Every instance whose primary was the node moved, by migration or failover; with the secondaries, every instance whose secondary it was has a new one.',
    check:
      'The node holds no primary now; without the secondaries it still holds theirs, with them it holds no copy of any instance.',
  },
  incomplete: {
    means: 'Not every instance moved: each is listed with its own outcome, and why.',
    check:
      'Those reverted, refused or skipped are safe where they are; a needsCleanup or failed one is left to repair (its line says what and how).',
  },
  aborted: {
    means:
      'The operator stopped the drain: nothing more started, and each run under way ended at its own safe point.',
    check: 'The instances not started are listed; run the evacuation again to move them.',
  },
  rejected: {
    means: 'Bad input, or the config could not be read: nothing was touched.',
    check: 'Fix the cause the error names and run again.',
  },
  skipped: {
    means:
      'An instance the drain did not run: no second node to move to, local disks, or down without --allow-failover.',
    check: 'Its line says why; move it by other means, or allow the failover of instances that are down.',
  },
  notStarted: {
    means: 'An instance the drain had not started when the operator aborted it; it is where it was.',
    check: 'Run the evacuation again to move it.',
  },
};

export interface EvacuationOutput {
  outcome: EvacuationOutcome;
  node: string;
  /** Every instance the evacuation concerned, in the order it was planned (skipped ones first). */
  results: InstanceResult[];
  counts: { moved: number; failed: number; skipped: number; notStarted: number };
  error?: string;
}

export type EvacuationEvent =
  | { type: 'ABORT' }
  /** The drain's deadline passed: nothing new starts (see EvacuationInput.deadlineMs). */
  | { type: 'DEADLINE' }
  | { type: 'INSTANCE.DONE'; instance: string; output: ProtocolOutput }
  | { type: 'INSTANCE.ERROR'; instance: string; error: string };

interface Planned {
  instance: string;
  operation: Operation;
  source: string;
  target: string;
  memoryMiB: number;
  resumed: boolean;
  /** Follow-up runs so far after one left it half-done (see followUpOf). */
  cleanups?: number;
  /** A replace's own repair (replace-secondary --cleanup), after one left it half-done. */
  repair?: boolean;
}

/** What the drain does besides moving primaries (from its input). */
interface Scope {
  primaries: boolean;
  secondaries: boolean;
  placements: Record<string, string>;
  unplaced: Record<string, string>;
}

export interface EvacuationContext {
  node: string;
  concurrency: number;
  perNode: number;
  request: Pick<ProtocolInput, 'mode' | 'allowFailover' | 'limits' | 'convergence'>;
  scope: Scope;
  drain: boolean;
  /** Waiting to start, in order. */
  queue: Planned[];
  /** Under way, by instance. */
  running: Record<string, Planned>;
  results: InstanceResult[];
  /** Every instance concerned, in plan order (the output lists them so). */
  order: string[];
  /** Of a resumed evacuation: the runs that were under way, and the migrations left for a cleanup. */
  inFlight: string[];
  needCleanup: string[];
  aborted: boolean;
  /** The deadline passed: only repairs of half-done runs still start. */
  closed: boolean;
  error: string | null;
}

const MOVED = new Set<string>(['migrated', 'failedOver', 'replaced']);
const childId = (instance: string) => `instance:${instance}`;

/**
 * What moves, what is skipped and why, and in which order. Runs that were under way when an earlier
 * orchestrator died come first (they hold the instance half-moved); then instances that are down
 * (a failover of a stopped instance copies nothing); then the rest largest first: the drain lasts as
 * long as its longest copies, and starting those first keeps the tail short (longest-processing-time
 * first). The scheduler passes over an instance whose target is full, so targets fill evenly.
 */
export function planEvacuation(
  node: string,
  configs: InstanceConfig[],
  allowFailover: boolean,
  resumed: { results: InstanceResult[]; inFlight: string[]; needCleanup?: string[] } = {
    results: [],
    inFlight: [],
  },
  scope: Scope = PRIMARIES_ONLY,
): { queue: Planned[]; skipped: InstanceResult[] } {
  const ended = new Set(resumed.results.map((r) => r.instance));
  const inFlight = new Set(resumed.inFlight);
  const needCleanup = new Set(resumed.needCleanup ?? []);
  const holds = (c: InstanceConfig) =>
    (scope.primaries && c.primaryNode === node) ||
    (scope.secondaries && (c.secondaryNode === node || c.formerSecondary === node));
  const concerned = configs
    .filter((c) => !ended.has(c.name) && (holds(c) || inFlight.has(c.name) || needCleanup.has(c.name)))
    .sort((a, b) => a.name.localeCompare(b.name));
  const queue: Planned[] = [];
  const skipped: InstanceResult[] = [];
  const skip = (c: InstanceConfig, why: string) =>
    skipped.push({
      instance: c.name,
      operation: null,
      outcome: 'skipped',
      primaryNode: c.primaryNode,
      error: why,
    });
  for (const c of concerned) {
    // An instance whose primary is elsewhere is here for its secondary: it gets a new one.
    if (c.primaryNode !== node && !inFlight.has(c.name)) {
      const replace = replacement(node, c, scope, needCleanup.has(c.name));
      if ('skip' in replace) skip(c, replace.skip);
      else queue.push(replace);
      continue;
    }
    if (needCleanup.has(c.name)) {
      const target = c.primaryNode === node ? (c.secondaryNode ?? node) : c.primaryNode;
      queue.push({
        instance: c.name,
        operation: 'cleanup',
        source: node,
        target,
        memoryMiB: c.memoryMiB,
        resumed: false,
        cleanups: 1,
      });
    } else if (inFlight.has(c.name)) {
      // Half-moved, perhaps already committed: where it goes is the node the config does not name.
      // A replace under way (the primary elsewhere, the node its secondary) is taken up as one.
      const replacing = c.primaryNode !== node && scope.secondaries;
      const target = replacing
        ? c.secondaryNode === node
          ? (scope.placements[c.name] ?? node)
          : (c.secondaryNode ?? node)
        : c.primaryNode === node
          ? (c.secondaryNode ?? node)
          : c.primaryNode;
      queue.push({
        instance: c.name,
        operation: replacing ? 'changeSecondary' : c.adminState === 'down' ? 'failover' : 'migration',
        source: replacing ? c.primaryNode : node,
        target,
        memoryMiB: replacing ? 0 : c.memoryMiB,
        resumed: true,
      });
    } else if (c.secondaryNode === null) {
      skip(c, `not migratable: its ${c.diskTemplate} disks have no second node to move to`);
    } else if (c.diskTemplate !== 'drbd' && !isSharedStorage(c)) {
      skip(c, `not migratable: its ${c.diskTemplate} disks exist on ${node} only`);
    } else if (c.adminState === 'down') {
      if (allowFailover) {
        queue.push({
          instance: c.name,
          operation: 'failover',
          source: node,
          target: c.secondaryNode,
          memoryMiB: 0,
          resumed: false,
        });
      } else {
        skip(c, 'it is down: there is no running guest to migrate (allow failover to move it by a failover)');
      }
    } else {
      queue.push({
        instance: c.name,
        operation: 'migration',
        source: node,
        target: c.secondaryNode,
        memoryMiB: c.memoryMiB,
        resumed: false,
      });
    }
  }
  // The primaries move first; the replaces of secondaries follow (the moves make more of them).
  const rank = (p: Planned) =>
    p.resumed || p.operation === 'cleanup' || p.repair === true
      ? 0
      : p.operation === 'failover'
        ? 1
        : p.operation === 'migration'
          ? 2
          : 3;
  queue.sort(
    (a, b) => rank(a) - rank(b) || b.memoryMiB - a.memoryMiB || a.instance.localeCompare(b.instance),
  );
  return { queue, skipped };
}

const PRIMARIES_ONLY: Scope = { primaries: true, secondaries: false, placements: {}, unplaced: {} };

/**
 * The replace of an instance's secondary that is the node (or of copies a replace left there), or
 * why it is skipped: only DRBD has copies to move, and only a placement says where.
 */
function replacement(
  node: string,
  c: InstanceConfig,
  scope: Scope,
  repair: boolean,
): Planned | { skip: string } {
  if (c.diskTemplate !== 'drbd')
    return { skip: `its ${c.diskTemplate} disks have no copy on ${node} to move (it only names ${node})` };
  // A replace that left old copies here (the config still names the node as formerSecondary), or
  // one that stopped halfway: its repair finishes it.
  if (c.formerSecondary === node || repair)
    return {
      instance: c.name,
      operation: 'changeSecondary',
      source: c.primaryNode,
      target: c.secondaryNode === node ? (scope.placements[c.name] ?? node) : (c.secondaryNode ?? node),
      memoryMiB: 0,
      resumed: false,
      repair: true,
    };
  const target = scope.placements[c.name];
  if (target === undefined)
    return {
      skip: `its secondary stays on ${node}: ${scope.unplaced[c.name] ?? 'no new secondary was placed for it'}`,
    };
  return {
    instance: c.name,
    operation: 'changeSecondary',
    source: c.primaryNode,
    target,
    memoryMiB: 0,
    resumed: false,
  };
}

/** The runs that may start now: in queue order, each within the run's and every node's limit. */
export function startable(context: EvacuationContext): Planned[] {
  const running = Object.values(context.running);
  const load = new Map<string, number>();
  for (const r of running) for (const n of [r.source, r.target]) load.set(n, (load.get(n) ?? 0) + 1);
  const picked: Planned[] = [];
  for (const p of context.queue) {
    if (running.length + picked.length >= context.concurrency) break;
    if ([p.source, p.target].some((n) => (load.get(n) ?? 0) >= context.perNode)) continue;
    picked.push(p);
    for (const n of [p.source, p.target]) load.set(n, (load.get(n) ?? 0) + 1);
  }
  return picked;
}

/**
 * A run left half-done gets another, next, before anything new: a migration the cleanup (which looks
 * where the instance runs and repairs it, Ganeti's migrate --cleanup), at most twice; a failover
 * itself again, once, if it had not reached its commit.
 */
function followUpOf(planned: Planned, result: InstanceResult, scope: Scope, node: string): Planned | null {
  const halfDone = result.outcome === 'needsCleanup' || result.outcome === 'failed';
  // Moved off the node (by this run, or by a run of its journal taken up after a crash), the instance
  // has its secondary there now: it gets a new one, last.
  const moved = result.outcome === 'migrated' || result.outcome === 'failedOver';
  if (scope.secondaries && moved && result.primaryNode !== null && result.primaryNode !== node) {
    const target = scope.placements[planned.instance];
    return target === undefined
      ? null
      : {
          instance: planned.instance,
          operation: 'changeSecondary',
          source: result.primaryNode,
          target,
          memoryMiB: 0,
          resumed: false,
        };
  }
  if (!halfDone) return null;
  // A replace has its own repair, run once: it finishes one past its commit and undoes one before.
  if (planned.operation === 'changeSecondary')
    return planned.repair === true ? null : { ...planned, resumed: false, repair: true };
  // The cleanup is safe to run again (it looks before it acts); twice at most.
  const cleanups = planned.operation === 'cleanup' ? (planned.cleanups ?? 1) : 0;
  if (planned.operation !== 'failover' && cleanups < MAX_CLEANUPS && !final(result)) {
    return { ...planned, operation: 'cleanup', resumed: false, cleanups: cleanups + 1 };
  }
  // A failover is run again only where the config still names the source: after its commit, a
  // second one would move the instance back.
  if (
    planned.operation === 'failover' &&
    planned.cleanups === undefined &&
    result.primaryNode === planned.source
  ) {
    return { ...planned, resumed: false, cleanups: 0 };
  }
  return null;
}

const MAX_CLEANUPS = 2;
/** A run that repairs what another left half-done (not a new move). */
const isRepair = (p: Planned) => p.operation === 'cleanup' || p.repair === true || p.resumed;
/** A migration's end after which the evacuation runs the cleanup (see followUpOf). */
export const leftForCleanup = (r: InstanceResult) =>
  r.operation !== 'failover' &&
  r.operation !== 'changeSecondary' &&
  (r.outcome === 'needsCleanup' || r.outcome === 'failed') &&
  !final(r);
/**
 * The cleanup's own verdicts that no second cleanup changes: the instance on two nodes, on none, or
 * only as a leftover. (One that stays paused is tried again: a second resume may take.)
 */
const NO_SECOND_CLEANUP = new Set<Verdict>(['onBothNodes', 'runsNowhere', 'onlyLeftovers']);
const final = (r: InstanceResult) => r.verdict !== undefined && NO_SECOND_CLEANUP.has(r.verdict);

/**
 * A drain of the secondaries too: an instance moved off the node whose secondary could not be
 * replaced still has a copy there, and says why.
 */
function withScope(result: InstanceResult, context: EvacuationContext): InstanceResult {
  if (!context.scope.secondaries || (result.outcome !== 'migrated' && result.outcome !== 'failedOver'))
    return result;
  const why = context.scope.unplaced[result.instance] ?? 'no new secondary was placed for it';
  return { ...result, error: `its secondary stays on ${context.node}: ${why}` };
}

/** Whether the node holds nothing of the instance the drain was to take off it. */
const emptied = (r: InstanceResult, scope: Scope) =>
  scope.secondaries ? r.outcome === 'replaced' : MOVED.has(r.outcome);

/** What one run came to, for the evacuation's list (and its journal). */
export function instanceResult(
  planned: Pick<InstanceRequest, 'instance' | 'operation' | 'target'>,
  output: ProtocolOutput,
): InstanceResult {
  // Only a cleanup ends 'cleaned': the evacuation's own follow-up, or the runtime's when it resumed a
  // half-done run and found the world changed since. Found running on its target, it moved.
  const cleaned = output.outcome === 'cleaned';
  const replace = planned.operation === 'changeSecondary';
  const outcome = !cleaned
    ? output.outcome
    : replace
      ? output.secondaryNode === planned.target
        ? 'replaced'
        : 'reverted'
      : output.primaryNode === planned.target
        ? 'migrated'
        : 'reverted';
  return {
    instance: planned.instance,
    operation: cleaned && !replace ? 'cleanup' : planned.operation,
    outcome,
    primaryNode: output.primaryNode,
    ...(output.secondaryNode === undefined ? {} : { secondaryNode: output.secondaryNode }),
    ...(output.formerSecondary === undefined ? {} : { formerSecondary: output.formerSecondary }),
    verdict: output.verdict,
    ...(output.error === undefined ? {} : { error: output.error }),
    ...(output.left === undefined ? {} : { left: output.left }),
    ...(output.tried === undefined ? {} : { tried: output.tried }),
  };
}

export function evacuationOutput(context: EvacuationContext): EvacuationOutput {
  const notStarted = context.queue.map(
    (p): InstanceResult => ({
      instance: p.instance,
      operation: null,
      outcome: 'notStarted',
      primaryNode: p.source,
      error: context.aborted
        ? 'not started: the evacuation was aborted by the operator'
        : 'not started: the drain’s deadline had passed',
    }),
  );
  const rank = new Map(context.order.map((name, i) => [name, i]));
  const results = [...context.results, ...notStarted].sort(
    (a, b) => (rank.get(a.instance) ?? 0) - (rank.get(b.instance) ?? 0),
  );
  const counts = {
    moved: results.filter((r) => emptied(r, context.scope)).length,
    skipped: results.filter((r) => r.outcome === 'skipped').length,
    notStarted: notStarted.length,
    failed: 0,
  };
  counts.failed = results.length - counts.moved - counts.skipped - counts.notStarted;
  const outcome: EvacuationOutcome =
    context.error !== null
      ? 'rejected'
      : context.aborted
        ? 'aborted'
        : counts.moved === results.length
          ? 'evacuated'
          : 'incomplete';
  return {
    outcome,
    node: context.node,
    results,
    counts,
    ...(context.error === null ? {} : { error: context.error }),
  };
}

/** What an InstanceRunner does for the evacuation: one instance's whole run, journaled as the runtime does it. */
export type InstanceRunner = (
  request: InstanceRequest,
  control: {
    /** The operator's abort, passed on: the run honours it at its next safe point. */
    abort: AbortSignal;
    /** The evacuation itself stopped (its orchestrator dies): stop where it is. */
    stop: AbortSignal;
  },
) => Promise<ProtocolOutput>;

/** The actor an evacuation starts per instance, around the runtime's runner. */
export function instanceRunActor(runner: InstanceRunner) {
  return fromCallback<EvacuationEvent, InstanceRequest>(({ input, sendBack, receive }) => {
    const abort = new AbortController();
    const stop = new AbortController();
    receive((event) => {
      if (event.type === 'ABORT') abort.abort();
    });
    let settled = false;
    runner(input, { abort: abort.signal, stop: stop.signal }).then(
      (output) => {
        settled = true;
        if (!stop.signal.aborted) sendBack({ type: 'INSTANCE.DONE', instance: input.instance, output });
      },
      (error: unknown) => {
        settled = true;
        if (!stop.signal.aborted)
          sendBack({ type: 'INSTANCE.ERROR', instance: input.instance, error: errorText(error) });
      },
    );
    return () => {
      if (!settled) stop.abort();
    };
  });
}

const notProvided = instanceRunActor(async (request) => {
  throw new Error(`no instance runner was provided for the ${request.operation} of ${request.instance}`);
});

export const evacuation = setup({
  types: {
    context: {} as EvacuationContext,
    input: {} as EvacuationInput,
    output: {} as EvacuationOutput,
    events: {} as EvacuationEvent,
  },
  actors: {
    listInstances: unprovidedEffects().listInstances,
    setNodeDrained: unprovidedEffects().setNodeDrained,
    instanceRun: notProvided,
  },
  guards: {
    badInput: ({ context }) => context.error !== null,
    drainMarked: ({ context }) => context.drain,
    /** Nothing waits that may still start, and nothing runs. */
    finished: ({ context }) =>
      Object.keys(context.running).length === 0 &&
      (context.queue.length === 0 || context.aborted || (context.closed && !context.queue.some(isRepair))),
  },
  actions: {
    /** Starts every run the limits allow now (none after an operator abort). */
    startEligible: enqueueActions(({ context, enqueue }) => {
      if (context.aborted) return;
      // After the deadline only the repair of a run left half-done starts.
      const starts = startable(
        context.closed ? { ...context, queue: context.queue.filter(isRepair) } : context,
      );
      if (starts.length === 0) return;
      for (const p of starts) {
        enqueue.spawnChild('instanceRun', {
          id: childId(p.instance),
          input: {
            instance: p.instance,
            operation: p.operation,
            source: p.source,
            target: p.target,
            resumed: p.resumed,
            input: {
              instance: p.instance,
              ...Object.fromEntries(Object.entries(context.request).filter(([, v]) => v !== undefined)),
              ...(p.operation === 'changeSecondary' ? { newSecondary: p.target } : {}),
              ...(p.repair === true ? { cleanup: true } : {}),
            },
          },
        });
      }
      const started = new Set(starts.map((p) => p.instance));
      enqueue.assign({
        queue: context.queue.filter((p) => !started.has(p.instance)),
        running: { ...context.running, ...Object.fromEntries(starts.map((p) => [p.instance, p])) },
      });
    }),
    /** A run ended: its result is kept, its actor stopped, its slots freed. */
    recordEnd: enqueueActions(({ context, enqueue, event }) => {
      if (event.type !== 'INSTANCE.DONE' && event.type !== 'INSTANCE.ERROR') return;
      const planned = context.running[event.instance];
      if (planned === undefined) return;
      const result: InstanceResult =
        event.type === 'INSTANCE.DONE'
          ? instanceResult(planned, event.output)
          : {
              instance: planned.instance,
              operation: planned.operation,
              outcome: 'failed',
              primaryNode: null,
              error: event.error,
            };
      const { [event.instance]: _, ...running } = context.running;
      enqueue.stopChild(childId(event.instance));
      const followUp = followUpOf(planned, result, context.scope, context.node);
      if (followUp !== null && !context.aborted) {
        // A repair goes first; a replace after a move goes last, after the other moves.
        const last = followUp.operation === 'changeSecondary' && followUp.repair !== true;
        enqueue.assign({
          running,
          queue: last ? [...context.queue, followUp] : [followUp, ...context.queue],
        });
        return;
      }
      enqueue.assign({ running, results: [...context.results, withScope(result, context)] });
    }),
    /** The operator stops the drain: nothing more starts, and each run under way is told. */
    abortAll: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ aborted: true });
      for (const instance of Object.keys(context.running))
        enqueue.sendTo(childId(instance), { type: 'ABORT' });
    }),
  },
});

export const evacuationMachine = evacuation.createMachine({
  id: 'evacuation',
  context: ({ input }) => {
    const parsed = EvacuationInputSchema.safeParse(input);
    const given = parsed.success ? parsed.data : null;
    return {
      node: input.node,
      concurrency: given?.concurrency ?? DEFAULT_CONCURRENCY,
      perNode: given?.perNode ?? given?.concurrency ?? DEFAULT_CONCURRENCY,
      request: {
        mode: given?.mode,
        allowFailover: given?.allowFailover,
        limits: given?.limits,
        convergence: given?.convergence,
      } as EvacuationContext['request'],
      scope: {
        primaries: given?.primaries ?? true,
        secondaries: given?.secondaries ?? false,
        placements: given?.placements ?? {},
        unplaced: given?.unplaced ?? {},
      },
      drain: given?.drain ?? false,
      queue: [],
      running: {},
      results: (given?.resumed?.results ?? []) as InstanceResult[],
      inFlight: given?.resumed?.inFlight ?? [],
      needCleanup: given?.resumed?.needCleanup ?? [],
      order: [],
      aborted: false,
      closed: false,
      error: parsed.success ? null : `bad input: ${issuesText(parsed.error.issues)}`,
    };
  },
  output: ({ context }) => evacuationOutput(context),
  on: { DEADLINE: { actions: assign({ closed: true }) } },
  initial: 'checkingInput',
  states: {
    checkingInput: {
      description: 'Bad input is refused before the config is read.',
      always: [
        { guard: 'badInput', target: 'done' },
        { guard: 'drainMarked', target: 'markingDrained' },
        { target: 'planning' },
      ],
    },
    markingDrained: {
      description:
        'The node is marked drained in the config first: nothing new is placed there, and no instance moves to it, while it empties.',
      on: { ABORT: { target: 'done', actions: assign({ aborted: true }) } },
      invoke: {
        id: 'setNodeDrained',
        src: 'setNodeDrained',
        input: ({ context }) => ({
          node: context.node,
          drained: true,
          timeoutMs: context.request.limits?.stepTimeoutMs ?? 180_000,
        }),
        onDone: 'planning',
        onError: {
          target: 'done',
          actions: assign({
            error: ({ context, event }) =>
              `Cannot mark ${context.node} drained in the config: ${errorText(event.error)}; nothing was moved`,
          }),
        },
      },
    },
    planning: {
      description:
        'Reading the config: which instances have the node as primary, which can move and how, in which order.',
      on: { ABORT: { target: 'done', actions: assign({ aborted: true }) } },
      invoke: {
        id: 'listInstances',
        src: 'listInstances',
        input: ({ context }) => ({ timeoutMs: context.request.limits?.stepTimeoutMs ?? 180_000 }),
        onDone: {
          target: 'evacuating',
          actions: assign(({ context, event }) => {
            const plan = planEvacuation(
              context.node,
              event.output,
              context.request.allowFailover === true,
              { results: context.results, inFlight: context.inFlight, needCleanup: context.needCleanup },
              context.scope,
            );
            return {
              queue: plan.queue,
              results: [...context.results, ...plan.skipped],
              order: [
                ...context.results.map((r) => r.instance),
                ...plan.skipped.map((r) => r.instance),
                ...plan.queue.map((p) => p.instance),
              ],
            };
          }),
        },
        onError: {
          target: 'done',
          actions: assign({
            error: ({ event }) => `Cannot read the instances from the config: ${errorText(event.error)}`,
          }),
        },
      },
    },
    evacuating: {
      description:
        'Each instance moved by its own run, as many at once as the limits allow (in all, and per node); a failed run does not stop the others.',
      entry: 'startEligible',
      on: {
        'INSTANCE.DONE': { actions: ['recordEnd', 'startEligible'] },
        'INSTANCE.ERROR': { actions: ['recordEnd', 'startEligible'] },
        ABORT: { actions: 'abortAll' },
      },
      always: { guard: 'finished', target: 'done' },
    },
    done: {
      type: 'final',
      description:
        'Every instance ended, was skipped, or (after an abort) was not started; the output lists each.',
    },
  },
});
