import { assign, emit, enqueueActions, setup } from 'xstate';
import {
  checkRejoined,
  classifyMigration,
  describeWorld,
  inSyncWithPeer,
  isSharedStorage,
  locate,
  summarizeSync,
} from './checks.js';
import type {
  DiskRef,
  DiskStatus,
  InstanceConfig,
  MigrationMode,
  MigrationStatus,
  NodeProbe,
  NodeSync,
  RunningInstance,
} from './contract.js';
import {
  type Convergence,
  type ConvergenceState,
  DEFAULT_CONVERGENCE,
  nextStage,
  observePass,
  type Stage,
  stalled,
  startConvergence,
} from './convergence.js';
import { unprovidedEffects } from './effects.js';
import { DEFAULT_LIMITS, type Limits, observe, overdue, seconds, type Watch } from './limits.js';

export type Outcome =
  | 'migrated'
  | 'failedOver'
  | 'rejoined'
  | 'replaced'
  | 'reverted'
  | 'needsCleanup'
  | 'rejected'
  | 'cleaned'
  | 'failed';

export interface ProtocolInput {
  instance: string;
  /** live or non-live; when absent, the instance's own default (decided in the prerequisites). */
  mode?: MigrationMode;
  /** When given it must be the instance's secondary node (DRBD instances move nowhere else). */
  targetNode?: string;
  /** Allow ballooning the instance down to fit on the target (Ganeti's allow_runtime_changes). */
  allowRuntimeChanges?: boolean;
  /** Failover: go on although the disks are not in sync everywhere (the target's must still be UpToDate). */
  ignoreConsistency?: boolean;
  /**
   * Failover: the operator says the source is down (Ganeti's offline node). The machine still looks:
   * a source that answers and runs the instance, or a target still connected to it, refuses the run.
   */
  sourceIsDown?: boolean;
  /**
   * Migration: an instance that is not running cannot migrate; with this it is failed over instead
   * (decided in the prerequisites only, never mid-migration, as Ganeti's allow_failover).
   */
  allowFailover?: boolean;
  /**
   * The requester's intent: the node it saw the instance's primary on when it asked. A run that finds
   * the config naming another (a request queued behind one that moved the instance) is refused with
   * nothing touched, rather than moving the instance on from where the other left it.
   */
  expectedSource?: string;
  /**
   * Failover: repair one that stopped halfway (`failover --cleanup`). The instance is brought up on
   * the node the config names now, the other node proven stopped or down as for any failover; nothing
   * is reconnected (a node that wrote alone is taken back by `rejoin`, which reads which data is newer).
   */
  cleanup?: boolean;
  /**
   * Replace: the node that takes the replaced copy (the secondary's, or with replaceCopy 'thirdCopy'
   * the third copy's). With `cleanup`, the node a replace that stopped before its commit left volumes
   * on (a replace that passed its commit is in the config).
   */
  newSecondary?: string;
  /** Replace: which copy moves, the secondary (the default) or, on DRBD 9, the third copy. */
  replaceCopy?: ReplacedCopy;
  limits?: Partial<Limits>;
  /** Migration: how a live copy that does not converge is helped along, or given up (defaults otherwise). */
  convergence?: Partial<Convergence>;
}

/**
 * Why a run ended where it did, for programs to branch on (the evacuation, the CLI); `error` says it
 * for people. `done`: the run did what it was for; `refused`: nothing was touched (bad input or a
 * prerequisite); `aborted`: the operator's abort was honoured; `stepFailed`: a step failed and the
 * run reverted or gave up. The cleanup's own verdicts, which no second cleanup changes: the instance
 * runs on two nodes (`onBothNodes`), on none (`runsNowhere`), only as a migration leftover
 * (`onlyLeftovers`), or stays paused after it was resumed (`stuckPaused`).
 */
export const VERDICTS = [
  'done',
  'refused',
  'aborted',
  'stepFailed',
  'onBothNodes',
  'runsNowhere',
  'onlyLeftovers',
  'stuckPaused',
] as const;
export type Verdict = (typeof VERDICTS)[number];

/** The cleanup's verdicts that leave the repair to a person (Ganeti's two cases and their kin). */
export const NEEDS_A_PERSON: ReadonlySet<Verdict> = new Set<Verdict>([
  'onBothNodes',
  'runsNowhere',
  'onlyLeftovers',
  'stuckPaused',
]);

export interface ProtocolOutput {
  outcome: Outcome;
  /** Why it ended (see Verdict). */
  verdict: Verdict;
  instance: string;
  /** The node the cluster config names as primary when the machine stopped. */
  primaryNode: string | null;
  /** A replace: the node the config names as secondary when the machine stopped. */
  secondaryNode?: string | null;
  /** A replace past its commit: the old secondary the config still names as holding copies. */
  formerSecondary?: string;
  /** A replace of the third copy: the node the config names as the third copy when the machine stopped. */
  thirdCopy?: string | null;
  /** A replace of the third copy past its commit: the old third copy the config still names. */
  formerThirdCopy?: string;
  /** A rejoin: the node taken back (the secondary, or a three-copy instance's third copy). */
  rejoined?: string;
  live: boolean | null;
  error?: string;
  /** What the nodes looked like when the machine gave up (needsCleanup, failed). */
  left?: string[];
  /** A migration refused in its prerequisites that is to be done as a failover (allowFailover). */
  fallback?: 'failover';
  /** What the convergence policy did to a copy that stalled, in order (absent when it did nothing). */
  tried?: string[];
  warnings: string[];
}

/**
 * A run's context. Fields that change together sit in one group, and the top level stays small: xstate
 * copies the whole top level on every assign, and V8 keeps an object of more than about 16 keys added
 * one by one as a slow hash table (a copy then costs 20 times as much, at every poll).
 */
export interface ProtocolContext {
  instance: string;
  request: {
    mode: MigrationMode | null;
    targetNode: string | null;
    allowRuntimeChanges: boolean;
    ignoreConsistency: boolean;
    sourceIsDown: boolean;
    allowFailover: boolean;
    expectedSource: string | null;
    cleanup: boolean;
    newSecondary: string | null;
    replaceCopy: ReplacedCopy;
  };
  limits: Limits;
  policy: Convergence;
  config: InstanceConfig | null;
  /** The node the instance runs on when the machine starts (the config's primary). */
  source: string;
  /** The instance's DRBD secondary, where it moves to. */
  target: string;
  disks: DiskRef[];
  /** Progress watch of the wait in progress; its deadlines are absolute, so they survive a restore. */
  watch: Watch | null;
  sync: { done: boolean; percent: number } | null;
  found: Found;
  handover: Handover;
  commit: Commit;
  repair: Repair;
  replace: Replace;
  result: Result;
}

/**
 * The peer a survey reads a node's disks towards, where it is not the config's pair: a run between the
 * source and the third copy (DRBD 9) reads each towards the other. Undefined: the pair's other node.
 */
export function surveyPeer(c: ProtocolContext, node: string): string | undefined {
  if (c.target === '' || c.target !== (c.config?.thirdCopy ?? null)) return undefined;
  return node === c.source ? c.target : node === c.target ? c.source : undefined;
}

/** Which of an instance's copies a replace moves: its secondary, or (DRBD 9) its third copy. */
export type ReplacedCopy = 'secondary' | 'thirdCopy';

/** The node the config names as holding the copy. */
export const copyNode = (config: InstanceConfig, copy: ReplacedCopy): string | null =>
  copy === 'thirdCopy' ? config.thirdCopy : config.secondaryNode;

/**
 * A copy replaced (`source` the primary, which stays; `target` the new node). The replace's commit
 * is its own: the config's primary never changes.
 */
export interface Replace {
  /** The copy's node being replaced, whose copies are removed at the end ('' outside a replace). */
  former: string;
  /** Memory the new secondary needs free to take over from the primary (N+1), MiB. */
  needMiB: number | null;
  /** The config names the new secondary (and the former one as to be removed). */
  committed: boolean;
  /** The config no longer names the former secondary (its copies are gone). */
  forgotten: boolean;
}

/** What reading the nodes found out. */
export interface Found {
  /** The migration's prerequisites found it cannot migrate, and a failover was allowed instead. */
  fallback: boolean;
  /** Failover, rejoin: what the probe of the node in question answered. */
  probe: NodeProbe | null;
  /** Where the last instanceList found the instance. */
  locations: Record<string, RunningInstance[]> | null;
  /**
   * Rejoin: both nodes' disks before the reconnect. What each wrote while apart (its out-of-sync
   * count) says which way the resync will go and what, if anything, is discarded.
   */
  disksBefore: Record<string, DiskStatus[]> | null;
  /**
   * Each node read when giving up, for the outcome's `left`; a node absent did not answer (null: not
   * read yet).
   */
  surveyDisks: Record<string, DiskStatus[]> | null;
  surveyLists: Record<string, RunningInstance[]> | null;
  /**
   * Failover: the target would not stop the instance on losing quorum, so its commit withdraws the
   * instance's selfFenceMs (absent in journals from before it: false).
   */
  targetWithoutSelfFence?: boolean;
}

/** The hypervisor's part: memory, the copy and its convergence, the finalize steps. */
export interface Handover {
  live: boolean | null;
  currentMemoryMiB: number | null;
  balloonToMiB: number | null;
  migrationInfo: Record<string, unknown> | null;
  memory: MigrationStatus | null;
  converge: ConvergenceState;
  /** The hypervisor switched to postcopy: the source can no longer be resumed. */
  pastPointOfNoReturn: boolean;
  finalizeErrors: string[];
  /** Resuming the source after an aborted copy failed: a revert must look before it says so. */
  sourceResumeFailed: boolean;
}

/** The one commit point of the cluster config. */
export interface Commit {
  /** The config names the target: the one commit point has passed. */
  done: boolean;
  /** Writes tried so far (a failed write is read back, then tried once more). */
  attempts: number;
  /** The commit did not take: the instance runs on the target while the config names the source. */
  failed: boolean;
  /** Neither the commit's answer nor a read-back says what the config names now. */
  configUnknown: boolean;
  /** Why the commit failed; kept apart so that later steps cannot overwrite it. */
  error: string | null;
}

/** The back-to-single-master flow and the cleanup's repairs. */
export interface Repair {
  /** The node the back-to-single-master flow demotes. */
  demote: string;
  /** Back-to-single-master tries so far. */
  attempts: number;
  /** Cleanup: the migration found on both nodes (or paused on the source) was aborted once already. */
  abortTried: boolean;
}

/** What the run comes to. */
export interface Result {
  outcome: Outcome | null;
  error: string | null;
  /** Why the run failed, set with `error` where the reason is one a program branches on. */
  verdict: Verdict | null;
  warnings: string[];
}

/** A change to one group of the context, the rest of the group kept. */
export function patch<G extends 'found' | 'handover' | 'commit' | 'repair' | 'replace' | 'result'>(
  context: ProtocolContext,
  group: G,
  change: Partial<ProtocolContext[G]>,
): Pick<ProtocolContext, G> {
  return { [group]: { ...context[group], ...change } } as Pick<ProtocolContext, G>;
}

export type ProtocolEmitted =
  | { type: 'feedback'; message: string; level: 'info' | 'warning' }
  /** The copy's prediction before it starts (the hopeful reading, the one the run refuses by). */
  | { type: 'forecast'; copySeconds: number; downtimeMs: number; passes: number }
  | { type: 'progress'; kind: 'sync'; percent: number; at: number }
  | {
      type: 'progress';
      kind: 'memory';
      percent: number;
      transferredMiB: number;
      totalMiB: number;
      /** What is left of the current dirty pass (null when the hypervisor does not say). */
      remainingMiB: number | null;
      status: MigrationStatus['status'];
      at: number;
    };

export type ProtocolEvent = { type: 'ABORT' };

export function initialContext(input: ProtocolInput): ProtocolContext {
  return {
    instance: input.instance,
    request: {
      mode: input.mode ?? null,
      targetNode: input.targetNode ?? null,
      allowRuntimeChanges: input.allowRuntimeChanges ?? true,
      ignoreConsistency: input.ignoreConsistency ?? false,
      sourceIsDown: input.sourceIsDown ?? false,
      allowFailover: input.allowFailover ?? false,
      expectedSource: input.expectedSource ?? null,
      cleanup: input.cleanup ?? false,
      newSecondary: input.newSecondary ?? null,
      replaceCopy: input.replaceCopy ?? 'secondary',
    },
    limits: withDefaults(DEFAULT_LIMITS, input.limits),
    policy: withDefaults(DEFAULT_CONVERGENCE, input.convergence),
    config: null,
    source: '',
    target: '',
    disks: [],
    watch: null,
    sync: null,
    found: {
      fallback: false,
      probe: null,
      locations: null,
      disksBefore: null,
      surveyDisks: null,
      surveyLists: null,
    },
    handover: {
      live: null,
      currentMemoryMiB: null,
      balloonToMiB: null,
      migrationInfo: null,
      memory: null,
      converge: startConvergence(withDefaults(DEFAULT_CONVERGENCE, input.convergence)),
      pastPointOfNoReturn: false,
      finalizeErrors: [],
      sourceResumeFailed: false,
    },
    commit: { done: false, attempts: 0, failed: false, configUnknown: false, error: null },
    repair: { demote: '', attempts: 0, abortTried: false },
    replace: { former: '', needMiB: null, committed: false, forgotten: false },
    result: { outcome: null, error: null, verdict: null, warnings: [] },
  };
}

/** A key given as undefined keeps its default. */
export function withDefaults<T extends object>(defaults: T, given: Partial<T> | undefined): T {
  return {
    ...defaults,
    ...Object.fromEntries(Object.entries(given ?? {}).filter(([, v]) => v !== undefined)),
  };
}

export function handoverCompleted(c: ProtocolContext, lists: Record<string, RunningInstance[]>): boolean {
  return (
    locate(lists, c.instance, c.source) === 'postmigrate' && locate(lists, c.instance, c.target) === 'running'
  );
}

/**
 * Run states that are what a migration leaves behind, not a guest: an incoming QEMU that never got
 * the memory, a source whose memory moved on.
 */
export const LEFTOVER = new Set(['inmigrate', 'postmigrate', 'finish-migrate']);

/** The nodes (of the instance's two) on which the last instanceList found it. */
export function where(c: ProtocolContext): string[] {
  const { locations } = c.found;
  if (locations === null) return [];
  return bothNodes(c).filter((n) => locate(locations, c.instance, n) !== null);
}

/** How the last instanceList found the instance, node by node ("paused on node-a"); '' where nowhere. */
export const foundAt = (c: ProtocolContext) =>
  where(c)
    .map((n) => `${locate(c.found.locations!, c.instance, n)} on ${n}`)
    .join(', ');

export const bothNodes = (c: ProtocolContext): [string, string] => [c.source, c.target];
/** The nodes a run's outcome describes: its two, and a replace's former secondary. */
export const surveyedNodes = (c: ProtocolContext): string[] =>
  c.replace.former === '' ? bothNodes(c) : [...bothNodes(c), c.replace.former];
/** The deadline of one step's call. */
export const stepTimeout = (c: ProtocolContext) => c.limits.stepTimeoutMs;
/**
 * A probe of a node that may be dead waits less than a step: a node that has not answered an SSH
 * handshake in 10 s (the probe takes half of this) is not coming.
 */
export const probeTimeout = (c: ProtocolContext) => Math.min(stepTimeout(c), 20_000);

export function syncOverdueMessage(c: ProtocolContext): string {
  const why = c.watch === null ? null : overdue(c.watch, c.limits.syncTotalMs, c.limits.syncNoProgressMs);
  const at = `at ${c.sync?.percent ?? 0}%`;
  return why === 'total'
    ? `Resync did not finish within ${seconds(c.limits.syncTotalMs)} (${at}) on ${bothNodes(c).join(', ')}`
    : `Resync made no progress for ${seconds(c.limits.syncNoProgressMs)} (${at}) on ${bothNodes(c).join(', ')}`;
}

export function copyOverdueMessage(c: ProtocolContext): string {
  const why =
    c.watch === null ? null : overdue(c.watch, c.limits.migrationTotalMs, c.limits.migrationNoProgressMs);
  return why === 'total'
    ? `Could not migrate instance ${c.instance}: the memory transfer did not finish within ${seconds(c.limits.migrationTotalMs)}`
    : `Could not migrate instance ${c.instance}: the memory transfer made no progress for ${seconds(c.limits.migrationNoProgressMs)}`;
}

/** The verdict an outcome implies when no step recorded a more precise one. */
function verdictOf(outcome: Outcome): Verdict {
  if (outcome === 'rejected') return 'refused';
  return DONE.has(outcome) ? 'done' : 'stepFailed';
}
const DONE = new Set<Outcome>(['migrated', 'failedOver', 'rejoined', 'replaced', 'cleaned']);

export function outputOf(c: ProtocolContext): ProtocolOutput {
  const outcome = c.result.outcome ?? 'failed';
  const primaryNode =
    c.config === null || c.commit.configUnknown ? null : c.commit.done ? c.target : c.config.primaryNode;
  const out: ProtocolOutput = {
    outcome,
    verdict: c.result.verdict ?? verdictOf(outcome),
    instance: c.instance,
    primaryNode,
    live: c.handover.live,
    warnings: c.result.warnings,
  };
  const error = [c.commit.error, c.result.error]
    .filter((e): e is string => e !== null && e !== '')
    .join('; then: ');
  if (error !== '') out.error = error;
  if (outcome === 'rejoined') out.rejoined = c.target;
  if (c.replace.former !== '' && c.config !== null) {
    const held = c.replace.committed ? c.target : copyNode(c.config, c.request.replaceCopy);
    // Past the commit, a former copy the config still names (its copies not yet removed).
    const former = c.replace.committed && !c.replace.forgotten ? c.replace.former : undefined;
    if (c.request.replaceCopy === 'thirdCopy') {
      out.thirdCopy = held;
      if (former !== undefined) out.formerThirdCopy = former;
    } else {
      out.secondaryNode = held;
      if (former !== undefined) out.formerSecondary = former;
    }
  }
  if (c.found.fallback) out.fallback = 'failover';
  if (c.handover.converge.tried.length > 0) out.tried = c.handover.converge.tried;
  if (outcome === 'needsCleanup' || outcome === 'failed') {
    out.left =
      c.config === null
        ? []
        : describeWorld(
            c.instance,
            // Shared storage has no replication state to report.
            isSharedStorage(c.config)
              ? Object.fromEntries(bothNodes(c).map((n) => [n, []]))
              : c.found.surveyDisks,
            c.found.surveyLists,
            surveyedNodes(c),
            Object.fromEntries(
              surveyedNodes(c).flatMap((n) => {
                const peer = surveyPeer(c, n);
                return peer === undefined ? [] : [[n, peer]];
              }),
            ),
          );
  }
  return out;
}

interface WarningQueue {
  assign(update: Pick<ProtocolContext, 'result'>): void;
  emit(event: { type: 'feedback'; message: string; level: 'warning' }): void;
}

/** Shown now and kept for the output, so a run that succeeded still says what went wrong on the way. */
function warning(enqueue: WarningQueue, context: ProtocolContext, message: string) {
  enqueue.assign(patch(context, 'result', { warnings: [...context.result.warnings, message] }));
  enqueue.emit({ type: 'feedback', message, level: 'warning' });
}

/** How the last status read classes the copy, or null before the first. */
const copyPhase = (c: ProtocolContext) =>
  c.handover.memory === null ? null : classifyMigration(c.handover.memory.status);

/**
 * The one setup shared by the run machines (migration, cleanup, failover, rejoin), so that the steps
 * and flows (written once) fit them all. Effects are placeholders until provideEffects gives the
 * real ones.
 */
export const protocol = setup({
  types: {
    context: {} as ProtocolContext,
    input: {} as ProtocolInput,
    output: {} as ProtocolOutput,
    events: {} as ProtocolEvent,
    emitted: {} as ProtocolEmitted,
  },
  actors: unprovidedEffects(),
  guards: {
    rejects: (_, params: { problem: string | null }) => params.problem !== null,
    /** The config names a third copy (DRBD 9) that is not already the run's target. */
    hasThirdCopy: ({ context }) =>
      (context.config?.thirdCopy ?? null) !== null && context.config?.thirdCopy !== context.target,
    synced: ({ context }) => context.sync?.done === true,
    syncOverdue: ({ context }) =>
      context.watch !== null &&
      overdue(context.watch, context.limits.syncTotalMs, context.limits.syncNoProgressMs) !== null,
    committed: ({ context }) => context.commit.done,
    commitFailed: ({ context }) => context.commit.failed,
    /** A read-back of the config after a failed write: the write took after all. */
    configNamesTarget: ({ context }, params: { config: InstanceConfig }) =>
      params.config.primaryNode === context.target,
    mayRetryCommit: ({ context }) => context.commit.attempts < 2,
    finalizeFailed: ({ context }) => context.handover.finalizeErrors.length > 0,
    needsBalloon: ({ context }) => context.handover.balloonToMiB !== null,
    /** A live copy whose policy asks for a prediction first. */
    predictionWanted: ({ context }) => context.handover.live === true && context.policy.predict,
    sharedStorage: ({ context }) => isSharedStorage(context.config),
    migrationCompleted: ({ context }) => copyPhase(context) === 'completed',
    migrationFailed: ({ context }) => copyPhase(context) === 'failed',
    postcopyBroken: ({ context }) => copyPhase(context) === 'brokenPostcopy',
    pastPointOfNoReturn: ({ context }) => context.handover.pastPointOfNoReturn,
    /** The config says the instance is to be down (Ganeti's admin_state). */
    stoppedByAdmin: ({ context }) => context.config?.adminState === 'down',
    migrationOverdue: ({ context }) =>
      context.watch !== null &&
      overdue(context.watch, context.limits.migrationTotalMs, context.limits.migrationNoProgressMs) !== null,
    /** The copy's dirty passes stopped shrinking for as many passes as the policy allows. */
    copyStalled: ({ context }) => stalled(context.policy, context.handover.converge),
    /** The stage the convergence policy takes next for a stalled copy. */
    nextStageIs: ({ context }, params: { stage: Stage }) =>
      nextStage(context.policy, context.handover.converge) === params.stage,
    /** The instance was ballooned down to fit the target (its memory is to be put back on a revert). */
    ballooned: ({ context }) =>
      context.handover.balloonToMiB !== null && context.handover.currentMemoryMiB !== null,
    onBothNodes: ({ context }) => where(context).length === 2,
    onNoNode: ({ context }) => where(context).length === 0,
    onlyLeftovers: ({ context }) =>
      where(context).length > 0 &&
      where(context).every((n) =>
        LEFTOVER.has(locate(context.found.locations!, context.instance, n) ?? 'running'),
      ),
    onTargetOnly: ({ context }) => where(context).length === 1 && where(context)[0] === context.target,
    abortTried: ({ context }) => context.repair.abortTried,
    sourceResumeFailed: ({ context }) => context.handover.sourceResumeFailed,
    sourceIsDownClaimed: ({ context }) => context.request.sourceIsDown,
    /** The config gives the bound within which a node that lost DRBD quorum stops the instance itself. */
    selfFences: ({ context }) => (context.config?.selfFenceMs ?? null) !== null,
    /** A probe answer: the node did not answer. */
    unreachableIn: (_, params: { probe: NodeProbe }) => !params.probe.reachable,
    /** A probe answer: the node answered and the instance is there (running or otherwise). */
    presentIn: (_, params: { probe: NodeProbe }) => params.probe.reachable && params.probe.state !== null,
    /**
     * The probe found the instance on the node the failover leaves, where it may not stay: said to be
     * down but answering with it, or (a repair) running on the node the config does not name.
     */
    presentWhereItMayNotStayIn: ({ context }, params: { probe: NodeProbe }) =>
      (context.request.sourceIsDown || context.request.cleanup) &&
      params.probe.reachable &&
      params.probe.state !== null,
    /** Found only on the source, and paused there: a copy aborted without resuming it. */
    pausedOnSourceOnly: ({ context }) =>
      where(context).length === 1 &&
      where(context)[0] === context.source &&
      locate(context.found.locations!, context.instance, context.source) === 'paused',
    /** In the lists just read: the instance is nowhere, and a failover may be done instead. */
    fallsBackIn: ({ context }, params: { lists: Record<string, RunningInstance[]> }) =>
      context.request.allowFailover &&
      locate(params.lists, context.instance, context.source) === null &&
      locate(params.lists, context.instance, context.target) === null,
    /** In the lists just read: running on the source and present nowhere else. */
    runningOnSourceOnlyIn: ({ context }, params: { lists: Record<string, RunningInstance[]> }) =>
      locate(params.lists, context.instance, context.source) === 'running' &&
      locate(params.lists, context.instance, context.target) === null,
    /** The memory transfer completed but nobody finalized it: the target runs, the source is a paused husk. */
    handoverCompletedIn: ({ context }, params: { lists: Record<string, RunningInstance[]> }) =>
      handoverCompleted(context, params.lists),
    /**
     * In the disk status just read: the returning node is already the secondary, every disk
     * connected and in sync, single-master (a rejoin has nothing to do).
     */
    /** The run's target is the instance's third copy (a rejoin of the node that holds it). */
    returnsThirdCopy: ({ context }) =>
      (context.config?.thirdCopy ?? null) !== null && context.config?.thirdCopy === context.target,
    /** Every disk of a node's look Connected and UpToDate on both sides. */
    inSync: ({ context }, params: { disks: DiskStatus[] }) =>
      params.disks.length === context.disks.length && params.disks.every(inSyncWithPeer),
    rejoinedIn: ({ context }, params: { status: Record<string, DiskStatus[]> }) =>
      bothNodes(context).every((n) => (params.status[n]?.length ?? 0) === context.disks.length) &&
      checkRejoined(params.status, context.source, context.target) === null,
    /** A replace's commit has passed: the config names the new secondary. */
    replaceCommitted: ({ context }) => context.replace.committed,
    /** The run repairs one that stopped halfway (--cleanup). */
    cleanupRequested: ({ context }) => context.request.cleanup,
    /** DRBD 9: a new secondary joins as a further peer before the old one leaves (make-before-break). */
    makeBeforeBreak: ({ context }) => context.config?.drbdVersion === '9',
    /** DRBD 9 with a tiebreaker the config names: a new secondary joins it too, the old one leaves it. */
    rewiresTiebreaker: ({ context }) =>
      context.config?.drbdVersion === '9' && (context.config.tiebreaker ?? null) !== null,
    /** A read-back of the config after a failed replace commit: the write took after all. */
    configNamesNewCopy: ({ context }, params: { config: InstanceConfig }) =>
      copyNode(params.config, context.request.replaceCopy) === context.target,
    /**
     * A replace: the instance keeps a further copy besides the primary's and the one that moves (its
     * third copy, or its secondary when the third copy moves), which the new node joins too.
     */
    hasOtherCopy: ({ context }) =>
      context.request.replaceCopy === 'thirdCopy' ||
      ((context.config?.thirdCopy ?? null) !== null && context.config?.thirdCopy !== context.target),
    /** The replace moves the third copy (DRBD 9), not the secondary. */
    replacesThirdCopy: ({ context }) => context.request.replaceCopy === 'thirdCopy',
    /** Forward (the instance runs on the target), once more; a revert is not retried. */
    mayRetrySingleMaster: ({ context }) =>
      (context.commit.done || context.commit.failed) && context.repair.attempts < 2,
  },
  actions: {
    feedback: emit((_, params: { message: string }) => ({
      type: 'feedback' as const,
      message: params.message,
      level: 'info' as const,
    })),
    /** The copy's prediction, for an ETA that counts the copy before it starts. */
    forecastSaid: emit((_, params: { copySeconds: number; downtimeMs: number; passes: number }) => ({
      type: 'forecast' as const,
      ...params,
    })),
    /** A failure: the run's error, or where the protocol tolerates it, a warning that is shown and kept. */
    fail: enqueueActions(
      ({ enqueue, context }, params: { message: string; tolerated?: boolean; verdict?: Verdict }) => {
        if (params.tolerated === true) warning(enqueue, context, params.message);
        else
          enqueue.assign(
            patch(context, 'result', { error: params.message, verdict: params.verdict ?? null }),
          );
      },
    ),
    /** A warning worth showing and keeping, when there is one. */
    warn: enqueueActions(({ enqueue, context }, params: { message: string | null }) => {
      if (params.message !== null) warning(enqueue, context, params.message);
    }),
    recordOutcome: assign(({ context }, params: { outcome: Outcome }) =>
      patch(context, 'result', { outcome: params.outcome }),
    ),
    startWatch: assign({ watch: null, sync: null }),
    recordSync: assign(({ context }, params: { nodes: Record<string, NodeSync>; at: number }) => {
      const sync = summarizeSync(params.nodes);
      return { sync, watch: observe(context.watch, params.at, sync.percent) };
    }),
    syncProgress: emit(({ context }) => ({
      type: 'progress' as const,
      kind: 'sync' as const,
      percent: context.sync?.percent ?? 0,
      at: context.watch?.lastAt ?? 0,
    })),
    /** The config read; a machine that copies memory also takes its mode from it (live or not). */
    recordConfig: assign(
      (
        { context },
        params: {
          config: InstanceConfig;
          copiesMemory: boolean;
          towardsPrimary: boolean;
          replacing: boolean;
        },
      ) => {
        const { config } = params;
        // A failover's repair works towards the node the config names: the other is the one to prove
        // stopped or down, as the source of any failover.
        const [source, target] = params.towardsPrimary
          ? [config.secondaryNode ?? '', config.primaryNode]
          : [config.primaryNode, config.secondaryNode ?? ''];
        // A migration asked to the third copy goes there; any other run keeps to the pair.
        const wanted = context.request.targetNode;
        const toThird = !params.towardsPrimary && wanted !== null && wanted === config.thirdCopy;
        return {
          config,
          source,
          target: params.replacing ? replaceTarget(context, config) : toThird ? wanted : target,
          ...(params.replacing ? { replace: replaceOf(context, config) } : {}),
          disks: config.disks,
          ...(params.copiesMemory
            ? patch(context, 'handover', { live: (context.request.mode ?? config.migrationMode) === 'live' })
            : {}),
        };
      },
    ),
    recordLocations: assign(({ context }, params: { lists: Record<string, RunningInstance[]> }) =>
      patch(context, 'found', { locations: params.lists }),
    ),
    /**
     * A cleanup works towards the third copy where a migration to it left a trace there: its disks
     * Primary or allowing two primaries, or the instance present.
     */
    targetThirdCopyIfTouched: assign(
      (
        { context },
        params: { status?: Record<string, DiskStatus[]>; lists?: Record<string, RunningInstance[]> },
      ) => {
        const third = context.config?.thirdCopy ?? null;
        if (third === null) return {};
        // The source's side counts too: a third copy that lost power forgets its own options, while
        // the source still allows two primaries towards it.
        const touched =
          (params.status?.[third] ?? []).some((d) => d.role === 'Primary' || d.allowTwoPrimaries) ||
          (params.status?.[context.source] ?? []).some((d) => d.allowTwoPrimaries) ||
          (params.lists !== undefined && locate(params.lists, context.instance, third) !== null);
        return touched ? { target: third } : {};
      },
    ),
    noteTargetWithoutSelfFence: assign(({ context }, params: { missing: boolean }) =>
      patch(context, 'found', { targetWithoutSelfFence: params.missing }),
    ),
    announceLocations: emit(({ context }) => ({
      type: 'feedback' as const,
      message: `* instance running on: ${where(context).join(', ') || 'no node'}`,
      level: 'info' as const,
    })),
    recordCurrentMemory: assign(({ context }, params: { memoryMiB: number | null }) =>
      patch(context, 'handover', { currentMemoryMiB: params.memoryMiB ?? context.config?.memoryMiB ?? null }),
    ),
    recordBalloon: assign(({ context }, params: { balloonToMiB: number | null }) =>
      patch(context, 'handover', { balloonToMiB: params.balloonToMiB }),
    ),
    recordMigrationInfo: assign(({ context }, info: Record<string, unknown>) =>
      patch(context, 'handover', { migrationInfo: info }),
    ),
    recordMemory: enqueueActions(({ enqueue, context }, status: MigrationStatus) => {
      const phase = classifyMigration(status.status);
      const transferred = status.transferredMiB ?? 0;
      const { handover } = context;
      enqueue.assign({
        handover: {
          ...handover,
          memory: status,
          converge: observePass(handover.converge, status),
          pastPointOfNoReturn:
            handover.pastPointOfNoReturn || phase === 'postcopy' || phase === 'brokenPostcopy',
        },
        watch: observe(context.watch, status.at, transferred),
      });
      if (phase === 'postcopy' && !handover.pastPointOfNoReturn) {
        enqueue.emit({
          type: 'feedback',
          message: '* memory transfer has switched to postcopy',
          level: 'info',
        });
      }
      if (status.totalMiB !== null && status.totalMiB > 0 && status.transferredMiB !== null) {
        enqueue.emit({
          type: 'progress',
          kind: 'memory',
          percent: Math.min(100, (100 * status.transferredMiB) / status.totalMiB),
          transferredMiB: status.transferredMiB,
          totalMiB: status.totalMiB,
          remainingMiB: status.remainingMiB,
          status: status.status,
          at: status.at,
        });
      }
    }),
    /** A convergence stage taken: said, kept for the output, and the stall count starts again. */
    recordStage: enqueueActions(
      (
        { enqueue, context },
        params: { said: string; downtimeMs?: number; throttled?: true; postcopyStarted?: true },
      ) => {
        const { converge } = context.handover;
        enqueue.assign(
          patch(context, 'handover', {
            converge: {
              ...converge,
              downtimeMs: params.downtimeMs ?? converge.downtimeMs,
              throttled: params.throttled ?? converge.throttled,
              postcopyStarted: params.postcopyStarted ?? converge.postcopyStarted,
              stalledPasses: 0,
              tried: [...converge.tried, params.said],
            },
          }),
        );
        enqueue.emit({
          type: 'feedback',
          message: `* the copy does not converge: ${params.said}`,
          level: 'info',
        });
      },
    ),
    /** Asking for postcopy is the point of no return, whether or not its answer arrives. */
    passPointOfNoReturn: assign(({ context }) => patch(context, 'handover', { pastPointOfNoReturn: true })),
    recordFinalizeError: assign(({ context }, params: { message: string }) =>
      patch(context, 'handover', { finalizeErrors: [...context.handover.finalizeErrors, params.message] }),
    ),
    commit: assign(({ context }) => ({
      ...patch(context, 'commit', { done: true, configUnknown: false, error: null }),
      ...patch(context, 'repair', { demote: context.source }),
    })),
    countCommitAttempt: assign(({ context }) =>
      patch(context, 'commit', { attempts: context.commit.attempts + 1 }),
    ),
    /** A commit write that failed, not yet known to have failed: it is read back before anything else. */
    recordCommitWriteError: assign(({ context }, params: { message: string }) =>
      patch(context, 'commit', { configUnknown: true, error: params.message }),
    ),
    recordConfigRead: assign(({ context }) => patch(context, 'commit', { configUnknown: false })),
    /**
     * The commit did not take: the instance runs on the target, so the disks go back to single-master
     * around it (the source is demoted) and the run ends asking for a cleanup of the config alone.
     */
    giveUpCommit: assign(({ context }, params: { readError: string | null; repair: string }) => ({
      ...patch(context, 'commit', {
        failed: true,
        configUnknown: params.readError !== null,
        error: `The config could not be updated to name ${context.target} (${context.commit.error}); ${
          params.readError === null
            ? `it still names ${context.source}`
            : `reading it back failed too (${params.readError}), so which node it names is unknown`
        }; ${params.repair}`,
      }),
      ...patch(context, 'repair', { demote: context.source }),
    })),
    recordReplaceCommit: assign(({ context }) => patch(context, 'replace', { committed: true })),
    recordFormerForgotten: assign(({ context }) => patch(context, 'replace', { forgotten: true })),
    /** What the new secondary must have free to run the instance (and its kin) if the primary fails. */
    recordMemoryNeed: assign(({ context }, params: { needMiB: number }) =>
      patch(context, 'replace', { needMiB: params.needMiB }),
    ),
    recordFallback: assign(({ context }) => patch(context, 'found', { fallback: true })),
    recordProbe: assign(({ context }, params: { probe: NodeProbe }) =>
      patch(context, 'found', { probe: params.probe }),
    ),
    demoteTarget: assign(({ context }) => patch(context, 'repair', { demote: context.target })),
    countSingleMasterAttempt: assign(({ context }) =>
      patch(context, 'repair', { attempts: context.repair.attempts + 1 }),
    ),
    /** Finishing forward after a failed first try: the failure becomes a warning unless the retry fails too. */
    retryForward: enqueueActions(({ enqueue, context }) => {
      warning(
        enqueue,
        context,
        `${context.result.error ?? 'the switch back to single-master failed'}; trying once more`,
      );
      // The warning's own assign ran first: patch the result as it is now, not as it was.
      enqueue.assign(({ context: now }) => patch(now, 'result', { error: null, verdict: null }));
    }),
    markAbortTried: assign(({ context }) => patch(context, 'repair', { abortTried: true })),
    recordSourceResumeFailed: assign(({ context }) =>
      patch(context, 'handover', { sourceResumeFailed: true }),
    ),
    /** An operator abort that cannot be honoured here: say what happens instead. */
    refuseAbort: emit(({ context }) => ({
      type: 'feedback' as const,
      level: 'warning' as const,
      message: context.commit.done
        ? 'Abort refused: the instance already runs on the target and the config says so; finishing the switch back to single-master'
        : context.handover.pastPointOfNoReturn || context.handover.memory?.status === 'completed'
          ? 'Abort refused: the memory copy has passed the point of no return; finishing the migration forward'
          : context.result.error !== null
            ? 'Abort noted: the run is already undoing its work'
            : 'Abort refused: this step cannot be interrupted; it finishes first',
    })),
    recordDisksBefore: assign(({ context }, params: { disks: Record<string, DiskStatus[]> }) =>
      patch(context, 'found', { disksBefore: params.disks }),
    ),
    startSurvey: assign(({ context }) => patch(context, 'found', { surveyDisks: {}, surveyLists: {} })),
    /** One node's disks as the survey read them. */
    recordSurveyDisks: assign(({ context }, params: { node: string; disks: DiskStatus[] }) =>
      patch(context, 'found', { surveyDisks: { ...context.found.surveyDisks, [params.node]: params.disks } }),
    ),
    /** One node's look: the instance there or not; a node that does not answer stays unknown. */
    recordSurveyLook: assign(({ context }, params: { node: string; probe: NodeProbe }) =>
      params.probe.reachable
        ? patch(context, 'found', {
            surveyLists: {
              ...context.found.surveyLists,
              [params.node]:
                params.probe.state === null ? [] : [{ name: context.instance, state: params.probe.state }],
            },
          })
        : {},
    ),
  },
});

export type Protocol = typeof protocol;

/**
 * A replace's repair of one that passed its commit finds both nodes in the config: the copy it names
 * (secondary, or third) is the new one, its former one the one to remove. Otherwise the new node is
 * the request's, and the config's is the one replaced.
 */
const formerOf = (c: ProtocolContext, config: InstanceConfig) =>
  (c.request.replaceCopy === 'thirdCopy' ? config.formerThirdCopy : config.formerSecondary) ?? null;
const repairsCommitted = (c: ProtocolContext, config: InstanceConfig) =>
  c.request.cleanup && formerOf(c, config) !== null;
function replaceTarget(c: ProtocolContext, config: InstanceConfig): string {
  return repairsCommitted(c, config)
    ? (copyNode(config, c.request.replaceCopy) ?? '')
    : (c.request.newSecondary ?? '');
}
function replaceOf(c: ProtocolContext, config: InstanceConfig): Replace {
  const committed = repairsCommitted(c, config);
  return {
    former: (committed ? formerOf(c, config) : copyNode(config, c.request.replaceCopy)) ?? '',
    needMiB: null,
    committed,
    forgotten: false,
  };
}

/**
 * What every run machine's definition shares: its context made from its input, its output from its
 * context, and an operator abort refused (with a word on why) wherever a state does not take it.
 */
export const runMachineBase = {
  context: ({ input }: { input: ProtocolInput }) => initialContext(input),
  output: ({ context }: { context: ProtocolContext }) => outputOf(context),
  on: { ABORT: { actions: 'refuseAbort' as const } },
};
