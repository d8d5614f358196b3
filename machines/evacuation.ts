import { and, assign, emit, enqueueActions, fromCallback, setup } from 'xstate';
import { z } from 'zod';
import { isSharedStorage } from './checks.js';
import { type DirtyRate, type InstanceConfig, MigrationMode } from './contract.js';
import { Convergence, DEFAULT_CONVERGENCE, MAX_BANDWIDTH_MIBPS } from './convergence.js';
import {
  DEFAULT_RESYNC_MIBPS,
  type DrainForecast,
  describeDrain,
  forecastRun,
  pickStartable,
  type RunForecast,
  type ScheduledRun,
  scheduleLength,
} from './drainForecast.js';
import { errorText, unprovidedEffects } from './effects.js';
import { issuesText } from './input.js';
import { Limits } from './limits.js';
import { InstanceName, NodeName } from './names.js';
import { volumeNames } from './placement.js';
import { SAMPLE_PAGES } from './prediction.js';
import {
  copyNode,
  type Outcome,
  type ProtocolInput,
  type ProtocolOutput,
  type ReplacedCopy,
  VERDICTS,
  type Verdict,
  withDefaults,
} from './protocol.js';

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
    /** The rate a new secondary's resync reaches, MiB/s, for the forecast (default DRBD's c-max-rate, 100). */
    resyncMiBps: z.number().positive().max(MAX_BANDWIDTH_MIBPS).optional(),
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
  /** Where the run left the instance's third copy, when it moved it (a replace of the third copy). */
  thirdCopy: NodeName.nullable().optional(),
  /** A replace of the third copy: the old one the config still names as holding copies. */
  formerThirdCopy: NodeName.optional(),
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
  thirdCopy?: string | null;
  formerThirdCopy?: string;
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
      'The node holds no primary now; without the secondaries it still holds theirs, with them it holds no copy of any instance (with --all read from the node at the end).',
  },
  incomplete: {
    means:
      'Not every instance moved: each is listed with its own outcome, and why. Or, emptying the node (--all), it was found still holding a DRBD device or volume that no instance left there accounts for.',
    check:
      'Those reverted, refused or skipped are safe where they are; a needsCleanup or failed one is left to repair (its line says what and how). What the node still holds is listed: a copy the cluster file does not name may be the last good one, so look before removing it.',
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
  /** What the drain was predicted to take before it started (absent: it planned nothing to run). */
  forecast?: DrainForecast;
  /**
   * Emptying the node (primaries and secondaries): what it still held when the drain ended, read from it
   * (its DRBD minors, and its volumes named after a resource of the config), or why it could not be
   * read. A drain is `evacuated` only where the node holds nothing no listed instance accounts for.
   */
  stillHolds?: NodeHoldings | { unread: string };
  error?: string;
}

/** A node's DRBD devices and the config's volumes on it. */
export interface NodeHoldings {
  minors: number[];
  volumes: string[];
}

/** What a drain says of itself, beside its runs' own events: its measurements and its forecast. */
export type EvacuationEmitted =
  | { type: 'feedback'; message: string; level: 'info' | 'warning' }
  | { type: 'forecast'; forecast: DrainForecast };

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
  /** A replace of the instance's third copy (DRBD 9) that the node holds, not of its secondary. */
  copy?: ReplacedCopy;
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
  /** The rate a new copy's resync reaches, MiB/s (the forecast's). */
  resyncMiBps: number;
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
  /** The config of each instance planned (its memory, disks and migration mode predict its run). */
  configs: Record<string, InstanceConfig>;
  /** Guests still to measure before the drain is ordered and predicted, in order. */
  toMeasure: string[];
  /** Each guest's measured dirty rate (null: the measurement failed). */
  rates: Record<string, DirtyRate | null>;
  forecast: DrainForecast | null;
  /** Every DRBD disk of every instance of the config, by instance (what the node may still hold). */
  disksOf: Record<string, { resource: string; minor: number }[]>;
  /** What the node held at the end (emptying it), or why it could not be read. */
  stillHolds: NodeHoldings | { unread: string } | null;
}

const MOVED = new Set<string>(['migrated', 'failedOver', 'replaced']);
const childId = (instance: string) => `instance:${instance}`;

/**
 * What moves, what is skipped and why, and in which order. Runs that were under way when an earlier
 * orchestrator died come first (they hold the instance half-moved); then instances that are down
 * (a failover of a stopped instance copies nothing); then the rest largest first: the drain lasts as
 * long as its longest copies, and starting those first keeps the tail short (longest-processing-time
 * first). Once the guests are measured the queue is ordered again by predicted time (forecastDrain).
 * The scheduler passes over an instance whose target is full, so targets fill evenly.
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
    (scope.secondaries &&
      (c.secondaryNode === node ||
        c.formerSecondary === node ||
        (c.tiebreaker ?? null) === node ||
        (c.thirdCopy ?? null) === node ||
        (c.formerThirdCopy ?? null) === node));
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
    // A diskless tiebreaker holds no copy to move, but the node is not empty of the instance: said.
    if (
      c.tiebreaker === node &&
      c.primaryNode !== node &&
      c.secondaryNode !== node &&
      !inFlight.has(c.name)
    ) {
      skip(
        c,
        `${node} is the tiebreaker of ${c.name}'s resources (diskless, the third vote): a drain does not move a tiebreaker; without it a cut-off primary leaves no node with quorum, so a failover needs --source-is-down`,
      );
      continue;
    }
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
      const copy = copyOnNode(c, node);
      const held = copyNode(c, copy);
      const target = replacing
        ? held === node
          ? (scope.placements[c.name] ?? node)
          : (held ?? node)
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
        ...(replacing && copy === 'thirdCopy' ? { copy } : {}),
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
  queue.sort(longestFirst());
  return { queue, skipped };
}

/**
 * The queue's order: repairs of half-done runs first, then failovers (they copy nothing), then
 * migrations, then replaces of secondaries (the moves make more of them); within each the longest
 * first, by its predicted time once the drain has one, else by the memory to copy.
 */
function longestFirst(predicted: Record<string, number> = {}) {
  const rank = (p: Planned) =>
    isRepair(p) ? 0 : p.operation === 'failover' ? 1 : p.operation === 'migration' ? 2 : 3;
  return (a: Planned, b: Planned) =>
    rank(a) - rank(b) ||
    (predicted[b.instance] ?? 0) - (predicted[a.instance] ?? 0) ||
    b.memoryMiB - a.memoryMiB ||
    a.instance.localeCompare(b.instance);
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
  const copy = copyOnNode(c, node);
  const held = copyNode(c, copy);
  const third = copy === 'thirdCopy' ? { copy } : {};
  // A replace that left old copies here (the config still names the node as a former copy), or
  // one that stopped halfway: its repair finishes it.
  if (held !== node || repair)
    return {
      instance: c.name,
      operation: 'changeSecondary',
      source: c.primaryNode,
      target: held === node ? (scope.placements[c.name] ?? node) : (held ?? node),
      memoryMiB: 0,
      resumed: false,
      repair: true,
      ...third,
    };
  const target = scope.placements[c.name];
  const name = copy === 'thirdCopy' ? 'third copy' : 'secondary';
  if (target === undefined)
    return {
      skip: `its ${name} stays on ${node}: ${scope.unplaced[c.name] ?? `no new ${name} was placed for it`}`,
    };
  return {
    instance: c.name,
    operation: 'changeSecondary',
    source: c.primaryNode,
    target,
    memoryMiB: 0,
    resumed: false,
    ...third,
  };
}

/** Which copy of the instance the node holds for a replace: its third copy (or a former one), else its secondary. */
function copyOnNode(c: InstanceConfig, node: string): ReplacedCopy {
  return (c.thirdCopy ?? null) === node || (c.formerThirdCopy ?? null) === node ? 'thirdCopy' : 'secondary';
}

/** The runs that may start now: in queue order, each within the run's and every node's limit. */
export function startable(context: EvacuationContext): Planned[] {
  return pickStartable(Object.values(context.running), context.queue, context.concurrency, context.perNode);
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
  // A replace taken up after a crash, whose journal's repair undid it (it had not reached its commit):
  // the node still holds the copy, so it is begun again, once, onto the node placed for it.
  if (
    planned.operation === 'changeSecondary' &&
    planned.resumed &&
    result.outcome === 'reverted' &&
    scope.secondaries &&
    planned.target !== node
  )
    return { ...planned, resumed: false };
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
      ? (output.thirdCopy ?? output.secondaryNode) === planned.target
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
    ...(output.thirdCopy === undefined ? {} : { thirdCopy: output.thirdCopy }),
    ...(output.formerThirdCopy === undefined ? {} : { formerThirdCopy: output.formerThirdCopy }),
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
  const unaccounted = unaccountedHoldings(context, results);
  const outcome: EvacuationOutcome =
    context.error !== null
      ? 'rejected'
      : context.aborted
        ? 'aborted'
        : counts.moved === results.length && unaccounted === null
          ? 'evacuated'
          : 'incomplete';
  const error = context.error ?? unaccounted;
  return {
    outcome,
    node: context.node,
    results,
    counts,
    ...(context.forecast === null ? {} : { forecast: context.forecast }),
    ...(context.stillHolds === null ? {} : { stillHolds: context.stillHolds }),
    ...(error === null ? {} : { error }),
  };
}

/**
 * What the node still holds that no instance left on it accounts for (one skipped, refused or
 * failed keeps its copies there): a copy the config does not place on the node (a third diskful
 * copy made outside it) or a leftover. Said, never removed: it may be the last good copy of a disk.
 */
function unaccountedHoldings(context: EvacuationContext, results: InstanceResult[]): string | null {
  const held = context.stillHolds;
  if (held === null || 'unread' in held) return null;
  const kept = results
    .filter((r) => !emptied(r, context.scope))
    .flatMap((r) => context.disksOf[r.instance] ?? []);
  const minors = held.minors.filter((m) => !kept.some((d) => d.minor === m));
  const volumes = held.volumes.filter(
    (v) => !kept.some((d) => Object.values(volumeNames(d.resource)).includes(v)),
  );
  if (minors.length === 0 && volumes.length === 0) return null;
  const what = [
    ...(minors.length === 0 ? [] : [`DRBD minor${minors.length === 1 ? '' : 's'} ${minors.join(', ')}`]),
    ...(volumes.length === 0 ? [] : [`volume${volumes.length === 1 ? '' : 's'} ${volumes.join(', ')}`]),
  ].join(' and ');
  return `${context.node} still holds ${what}, which no instance the config places there accounts for: a copy the cluster file does not name (a third one) or a leftover, so the node is not empty; look at it there (drbdsetup status, lvs) before anything is removed`;
}

const policyOf = (context: EvacuationContext) =>
  withDefaults(DEFAULT_CONVERGENCE, context.request.convergence);
const stepTimeoutOf = (context: EvacuationContext) => context.request.limits?.stepTimeoutMs ?? 180_000;

/** A migration whose copy is live (the caller's mode, else the instance's own default). */
function liveCopy(context: EvacuationContext, p: Planned): boolean {
  const config = context.configs[p.instance];
  return (
    p.operation === 'migration' &&
    config !== undefined &&
    (context.request.mode ?? config.migrationMode) === 'live'
  );
}

/** The guests to measure before the drain starts: those of new live migrations, when predicting. */
function guestsToMeasure(context: EvacuationContext, queue: Planned[]): string[] {
  if (!policyOf(context).predict) return [];
  return queue.filter((p) => !isRepair(p) && liveCopy(context, p)).map((p) => p.instance);
}

/**
 * The queue ordered by its runs' predicted times (longest first within each rank), and the drain's
 * forecast: every run, and the replace that follows a move when the drain takes the secondaries too.
 */
export function forecastDrain(context: EvacuationContext): {
  queue: Planned[];
  forecast: DrainForecast | null;
} {
  if (context.queue.length === 0) return { queue: context.queue, forecast: null };
  const policy = policyOf(context);
  const predict = (p: Planned, operation: Operation = p.operation, repair = isRepair(p)): RunForecast =>
    forecastRun({
      instance: p.instance,
      operation,
      repair,
      config: context.configs[p.instance],
      live: liveCopy(context, p),
      rate: context.rates[p.instance],
      policy,
      resyncMiBps: context.resyncMiBps,
    });
  const own = new Map(context.queue.map((p) => [p.instance, predict(p)]));
  const seconds = Object.fromEntries([...own].map(([instance, r]) => [instance, r.seconds]));
  const queue = [...context.queue].sort(longestFirst(seconds));
  const runs: RunForecast[] = [];
  const scheduled = queue.map((p): ScheduledRun => {
    const run = own.get(p.instance)!;
    runs.push(run);
    const placement = context.scope.placements[p.instance];
    const moves = p.operation === 'migration' || p.operation === 'failover';
    if (!context.scope.secondaries || !moves || isRepair(p) || placement === undefined)
      return { instance: p.instance, source: p.source, target: p.target, seconds: run.seconds };
    const replace = predict(p, 'changeSecondary', false);
    runs.push(replace);
    return {
      instance: p.instance,
      source: p.source,
      target: p.target,
      seconds: run.seconds,
      followedBy: { instance: p.instance, source: p.target, target: placement, seconds: replace.seconds },
    };
  });
  const limits = { concurrency: context.concurrency, perNode: context.perNode };
  const length = scheduleLength(scheduled, limits.concurrency, limits.perNode).seconds;
  return { queue, forecast: { seconds: length, runs, says: describeDrain(length, runs, limits) } };
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
    emitted: {} as EvacuationEmitted,
  },
  actors: {
    listInstances: unprovidedEffects().listInstances,
    setNodeDrained: unprovidedEffects().setNodeDrained,
    measureDirtyRate: unprovidedEffects().measureDirtyRate,
    nodeStorage: unprovidedEffects().nodeStorage,
    instanceRun: notProvided,
  },
  guards: {
    badInput: ({ context }) => context.error !== null,
    drainMarked: ({ context }) => context.drain,
    /** A guest is still to measure, and the drain may still start new runs. */
    measuring: ({ context }) => context.toMeasure.length > 0 && !context.closed && !context.aborted,
    /** Primaries and secondaries (`--all`), not aborted: the node is to be empty, and is read to see that it is. */
    emptiesNode: ({ context }) => context.scope.primaries && context.scope.secondaries && !context.aborted,
    /** Nothing waits that may still start, and nothing runs. */
    finished: ({ context }) =>
      Object.keys(context.running).length === 0 &&
      (context.queue.length === 0 || context.aborted || (context.closed && !context.queue.some(isRepair))),
  },
  actions: {
    /** The queue ordered by the predicted times, and the forecast said before anything starts. */
    forecast: enqueueActions(({ context, enqueue }) => {
      const { queue, forecast } = forecastDrain(context);
      const queued = new Set(queue.map((p) => p.instance));
      enqueue.assign({
        queue,
        forecast,
        order: [...context.order.filter((i) => !queued.has(i)), ...queue.map((p) => p.instance)],
      });
      if (forecast === null) return;
      enqueue.emit({ type: 'forecast', forecast });
      enqueue.emit({ type: 'feedback', message: `* ${forecast.says}`, level: 'info' });
    }),
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
              ...(p.copy === undefined ? {} : { replaceCopy: p.copy }),
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
      resyncMiBps: given?.resyncMiBps ?? DEFAULT_RESYNC_MIBPS,
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
      configs: {},
      toMeasure: [],
      rates: {},
      forecast: null,
      disksOf: {},
      stillHolds: null,
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
          timeoutMs: stepTimeoutOf(context),
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
        input: ({ context }) => ({ timeoutMs: stepTimeoutOf(context) }),
        onDone: {
          target: 'predicting',
          actions: assign(({ context, event }) => {
            const plan = planEvacuation(
              context.node,
              event.output,
              context.request.allowFailover === true,
              { results: context.results, inFlight: context.inFlight, needCleanup: context.needCleanup },
              context.scope,
            );
            const queued = new Set(plan.queue.map((p) => p.instance));
            const configs = Object.fromEntries(
              event.output.filter((c) => queued.has(c.name)).map((c) => [c.name, c]),
            );
            return {
              queue: plan.queue,
              configs,
              disksOf: Object.fromEntries(
                event.output.map((c) => [
                  c.name,
                  c.disks.map((d) => ({ resource: d.resource, minor: d.minor })),
                ]),
              ),
              toMeasure: guestsToMeasure({ ...context, configs }, plan.queue),
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
    predicting: {
      description:
        "Each live copy's guest measured in turn (how fast it dirties its memory), then the queue ordered longest first and the drain's length predicted.",
      always: [
        { guard: 'measuring', target: 'measuring' },
        { target: 'evacuating', actions: 'forecast' },
      ],
    },
    measuring: {
      description:
        'How fast does this guest dirty its memory (QEMU calc-dirty-rate, page sampling)? A failure is a warning: that guest and those after it are predicted unmeasured (a node that does not answer would cost a deadline per guest).',
      on: { ABORT: { target: 'done', actions: assign({ aborted: true }) } },
      invoke: {
        id: 'measureDirtyRate',
        src: 'measureDirtyRate',
        input: ({ context }) => ({
          instance: context.toMeasure[0]!,
          node: context.queue.find((p) => p.instance === context.toMeasure[0])!.source,
          calcSeconds: policyOf(context).measureSeconds,
          samplePages: SAMPLE_PAGES,
          timeoutMs: stepTimeoutOf(context) + policyOf(context).measureSeconds * 1000,
        }),
        onDone: {
          target: 'predicting',
          actions: assign(({ context, event }) => ({
            rates: { ...context.rates, [context.toMeasure[0]!]: event.output },
            toMeasure: context.toMeasure.slice(1),
          })),
        },
        onError: {
          target: 'predicting',
          actions: [
            emit(({ context, event }) => ({
              type: 'feedback' as const,
              level: 'warning' as const,
              message: `Could not measure how fast ${context.toMeasure[0]} dirties its memory (${errorText(event.error)}); it and the ${context.toMeasure.length - 1} guest(s) after it are predicted unmeasured, and each copy is judged pass by pass as always`,
            })),
            assign(({ context }) => ({
              rates: { ...context.rates, [context.toMeasure[0]!]: null },
              toMeasure: [],
            })),
          ],
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
      always: [
        { guard: and(['finished', 'emptiesNode']), target: 'checkingEmpty' },
        { guard: 'finished', target: 'done' },
      ],
    },
    checkingEmpty: {
      description:
        'Emptying the node (primaries and secondaries): what does it still hold (DRBD devices, volumes of the config’s resources)? Read from the node, not assumed from the runs: a copy the config does not name there keeps the drain incomplete. An unreadable node (down) is said, and not judged.',
      invoke: {
        id: 'nodeStorage',
        src: 'nodeStorage',
        input: ({ context }) => ({ node: context.node, timeoutMs: stepTimeoutOf(context) }),
        onDone: {
          target: 'done',
          actions: assign(({ context, event }) => {
            const names = new Set(
              Object.values(context.disksOf).flatMap((disks) =>
                disks.flatMap((d) => Object.values(volumeNames(d.resource))),
              ),
            );
            return {
              stillHolds: {
                minors: [...event.output.minors].sort((a, b) => a - b),
                volumes: event.output.volumes
                  .map((v) => v.name)
                  .filter((v) => names.has(v))
                  .sort(),
              },
            };
          }),
        },
        onError: {
          target: 'done',
          actions: assign({
            stillHolds: ({ event }) => ({ unread: errorText(event.error) }),
          }),
        },
      },
    },
    done: {
      type: 'final',
      description:
        'Every instance ended, was skipped, or (after an abort) was not started; the output lists each.',
    },
  },
});
