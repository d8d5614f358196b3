import type { EffectInput, EffectName, EffectOutput, InstanceConfig, RunningInstance } from './contract.js';
import { meta } from './describe.js';
import { errorText } from './effects.js';
import {
  bothNodes,
  type Outcome,
  type ProtocolContext,
  protocol,
  stepTimeout,
  type Verdict,
} from './protocol.js';

/**
 * The building blocks the machines are written in. A step is one effect call: say what is done, call
 * the effect with the step's deadline, go on when it answers, and when it fails either fail the run
 * with a message (the effect's error already names the node) or go on with the failure noted. On top
 * of it, Ganeti's helper set (`_EnsureSecondary`, `_GoStandalone`, `_GoReconnect`,
 * `_OpenInstanceDisks`, the finalize RPCs) and `sequence` for straight runs of steps, so that a
 * machine reads as a table of the steps an operator can follow.
 */

export type StepArgs = { context: ProtocolContext };

/** Which node a step acts on, read from the context when the step runs. */
export type NodeRole = (c: ProtocolContext) => string;
export const sourceNode: NodeRole = (c) => c.source;
export const targetNode: NodeRole = (c) => c.target;
/** A replace's former secondary. */
export const formerNode: NodeRole = (c) => c.replace.former;
/** The config's third copy (DRBD 9); '' where it names none (steps that use it run only with one). */
export const thirdCopyNode: NodeRole = (c) => c.config?.thirdCopy ?? '';

/** A transition candidate: where to go, when its guard holds, and what to do on the way. */
export interface Candidate {
  guard?: unknown;
  target: string;
  actions?: unknown;
}

/** Where a step goes: a state, or candidates tried in order (the first whose guard holds). */
export type Next = string | readonly Candidate[];

const listOf = (actions: unknown): unknown[] =>
  actions === undefined ? [] : Array.isArray(actions) ? actions : [actions];

/** `next` with actions to run on the way (after each candidate's own). */
function toward(next: Next, actions: unknown[]): unknown {
  if (typeof next === 'string') return actions.length === 0 ? next : { target: next, actions };
  if (actions.length === 0) return next;
  return next.map((c) => ({ ...c, actions: [...listOf(c.actions), ...actions] }));
}

/**
 * What the blocks below build (actions, guards): plain objects that xstate checks against the shared
 * setup when a machine is created. A generic helper cannot name the setup's action types, so the
 * type system is told to let them through (as `never` fits any slot of a config).
 */
export type Built = never;

/** The error an effect failed with, or '' where the transition was not an effect's failure. */
const errorOf = (event: { error?: unknown }) => ('error' in event ? errorText(event.error) : '');

type Message = (c: ProtocolContext, error: string) => string;
type Said = { context: ProtocolContext; event: { error?: unknown } };

/**
 * The run fails with `message` (its error; or, where the protocol tolerates the failure, a warning
 * that is shown and kept), after Ganeti's line for the moment when it has one ("Migration failed,
 * aborting").
 */
export function failing(
  message: Message,
  o: { says?: string; tolerated?: boolean; verdict?: Verdict } = {},
): Built[] {
  return [
    ...(o.says === undefined ? [] : [{ type: 'feedback', params: { message: o.says } }]),
    {
      type: 'fail',
      params: ({ context, event }: Said) => ({
        message: message(context, errorOf(event)),
        ...(o.tolerated === undefined ? {} : { tolerated: o.tolerated }),
        ...(o.verdict === undefined ? {} : { verdict: o.verdict }),
      }),
    },
  ] as Built[];
}

/**
 * An operator abort honoured where it arrives: the run fails with `message` on its way to `target`
 * (a revert, or the refusal of a run that touched nothing).
 */
export const abortTo = (target: string, message: string, says?: string) =>
  ({
    target,
    actions: failing(() => message, { verdict: 'aborted', ...(says === undefined ? {} : { says }) }),
  }) as Built;

/** A warning shown and kept; the run goes on. A message of null says there is nothing to warn of. */
export const warning = (message: (c: ProtocolContext, error: string) => string | null): Built =>
  ({
    type: 'warn',
    params: ({ context, event }: Said) => ({ message: message(context, errorOf(event)) }),
  }) as Built;

/** A Ganeti-style feedback line. */
export const saying = (message: string | ((c: ProtocolContext) => string)): Built =>
  ({
    type: 'feedback',
    params:
      typeof message === 'string' ? { message } : ({ context }: StepArgs) => ({ message: message(context) }),
  }) as Built;

/**
 * An action or guard whose params are made from the effect's answer: `fromAnswer('recordLocations',
 * (lists) => ({ lists }))`.
 */
export const fromAnswer = <T>(type: string, params: (answer: T, c: ProtocolContext) => unknown): Built =>
  ({
    type,
    params: ({ context, event }: StepArgs & { event: { output: T } }) => params(event.output, context),
  }) as Built;

/** When the effect fails, the run fails (`failTo` with the message), or the flow goes on (`goOnTo`). */
type OnFailure =
  | { failTo: Next; failure: Message; failSays?: string; tolerated?: boolean }
  | { goOnTo: Next; noting?: unknown[] };

/** On to `next` whether the effect answered or failed; a failure is noted with `noting`. */
export const evenIfFailed = (next: Next, ...noting: Built[]) => ({ next, goOnTo: next, noting });

export type StepOptions<K extends EffectName> = {
  src: K;
  description?: string;
  input: (c: ProtocolContext) => Omit<EffectInput<K>, 'timeoutMs'>;
  /** The call's deadline; a step's unless given (long polls and probes have their own). */
  timeoutMs?: (c: ProtocolContext) => number;
  /** A Ganeti-style feedback line when the step starts. */
  says?: (c: ProtocolContext) => string;
  rules?: number[];
  next: Next;
  /** Actions on the way to `next` when the effect answered (what the step achieved). */
  done?: unknown[];
} & OnFailure;

/** Omit, kept apart over each member of a union. */
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function onFailure(o: OnFailure): unknown {
  if ('goOnTo' in o) return toward(o.goOnTo, o.noting ?? []);
  return toward(
    o.failTo,
    failing(o.failure, {
      ...(o.failSays === undefined ? {} : { says: o.failSays }),
      ...(o.tolerated === undefined ? {} : { tolerated: o.tolerated }),
    }),
  );
}

/** One effect call as a step: description, feedback, deadline, where it goes, and its failure path. */
export function effectStep<K extends EffectName>(o: StepOptions<K>) {
  const timeoutMs = o.timeoutMs ?? stepTimeout;
  return protocol.createStateConfig({
    ...(o.description === undefined ? {} : { description: o.description }),
    ...(o.rules === undefined ? {} : { meta: meta({ rules: o.rules }) }),
    ...(o.says === undefined ? {} : { entry: saying(o.says) }),
    invoke: {
      id: o.src,
      src: o.src,
      input: ({ context }: StepArgs) => ({ ...o.input(context), timeoutMs: timeoutMs(context) }),
      onDone: toward(o.next, o.done ?? []),
      onError: onFailure(o),
    } as never,
  });
}

/**
 * A read whose answer is judged: `problem` says what is wrong with it (the run goes to `rejectTo`
 * with that message; by default where a failed read goes) or null (on to `next`). `first` are
 * candidates tried before the judgement.
 */
export function judgedRead<K extends EffectName>(
  o: Without<StepOptions<K>, 'next'> & {
    problem: (c: ProtocolContext, answer: EffectOutput<K>) => string | null;
    rejectTo?: string;
    next: string;
    first?: Candidate[];
  },
) {
  type Done = StepArgs & { event: { output: EffectOutput<K> } };
  const problem = ({ context, event }: Done) => o.problem(context, event.output);
  const rejectTo = o.rejectTo ?? ('failTo' in o && typeof o.failTo === 'string' ? o.failTo : undefined);
  if (rejectTo === undefined)
    throw new Error(`judgedRead ${o.src}: say where a refused answer goes (rejectTo)`);
  return effectStep({
    ...o,
    done: [],
    next: [
      ...(o.first ?? []),
      {
        guard: { type: 'rejects', params: (args: Done) => ({ problem: problem(args) }) },
        target: rejectTo,
        actions: { type: 'fail', params: (args: Done) => ({ message: problem(args)! }) },
      },
      { target: o.next, ...(o.done === undefined ? {} : { actions: o.done }) },
    ],
  } as StepOptions<K>);
}

/** An action whose params are made from the effect's error text (which already names the node). */
export const fromError = (type: string, params: (error: string) => unknown): Built =>
  ({ type, params: ({ event }: { event: { error?: unknown } }) => params(errorOf(event)) }) as Built;

/** A guard on where an instanceList answer found the instance (`handoverCompletedIn`, …). */
export const inLists = (type: string) =>
  fromAnswer(type, (lists: Record<string, RunningInstance[]>) => ({ lists }));

/** Where an instanceList found the instance, kept for the judgements that follow. */
export const recordLocations = fromAnswer('recordLocations', (lists: Record<string, RunningInstance[]>) => ({
  lists,
}));

/** The instance and its two nodes: what a one-shot call to both asks about. */
export const aboutBoth = (c: ProtocolContext) => ({ instance: c.instance, nodes: bothNodes(c) });
/** The same, about the instance's disks. */
export const aboutDisksOnBoth = (c: ProtocolContext) => ({ ...aboutBoth(c), disks: c.disks });

/** A link in a sequence: the step after this one, and where a failure goes. */
export interface Link {
  next: string;
  failTo: string;
}

/**
 * A straight run of steps: each goes on to the one after it, the last to `onDone`, and every failure
 * to `failTo`. Steps that branch still name their own targets; the order of the table is the order
 * of the protocol.
 */
export function sequence(
  o: { failTo: string; onDone: string },
  steps: Record<string, (link: Link) => object>,
) {
  const names = Object.keys(steps);
  return {
    initial: names[0]!,
    states: Object.fromEntries(
      names.map((name, i) => [name, steps[name]!({ next: names[i + 1] ?? o.onDone, failTo: o.failTo })]),
    ),
  };
}

// Ganeti's helper set: one step per RPC it wraps, with its feedback lines.

/** Ganeti's _EnsureSecondary: demote a node's disks (drbdsetup secondary). */
export function ensureSecondary(o: { node: NodeRole; description: string; next: Next; failTo: Next }) {
  return effectStep({
    src: 'closeDisks',
    description: o.description,
    says: (c) => `* closing instance disks on node ${o.node(c)}`,
    input: (c) => ({ instance: c.instance, node: o.node(c), disks: c.disks }),
    next: o.next,
    failTo: o.failTo,
    failure: (c, e) => `Cannot close instance disks on node ${o.node(c)}: ${e}`,
  });
}

/** Ganeti's _GoStandalone: both nodes disconnected until StandAlone. */
export function goStandalone(o: { next: Next; failTo: Next; description?: string }) {
  return effectStep({
    src: 'disconnectNet',
    description: o.description ?? 'Disconnecting both nodes until StandAlone.',
    says: () => '* changing into standalone mode',
    input: aboutDisksOnBoth,
    next: o.next,
    failTo: o.failTo,
    failure: (_, e) => `Cannot disconnect disks: ${e}`,
  });
}

/**
 * Ganeti's _GoReconnect: both nodes reconnected, with two primaries allowed (multimaster) or not;
 * `discardOn` names the node whose writes of its own give way to its peer's (--discard-my-data).
 */
export function goReconnect(
  o: Link & {
    multimaster: boolean;
    description: string;
    rules: number[];
    discardOn?: NodeRole;
    says?: (c: ProtocolContext) => string;
    failure?: Message;
    /** The two ends of the link; the run's two nodes unless given (a replace's primary and old secondary). */
    between?: (c: ProtocolContext) => [string, string];
  },
) {
  const discardOn = o.discardOn;
  const between = o.between;
  return effectStep({
    src: 'attachNet',
    description: o.description,
    rules: o.rules,
    says: o.says ?? (() => `* changing disks into ${o.multimaster ? 'dual' : 'single'}-master mode`),
    input: (c) => ({
      ...aboutDisksOnBoth(c),
      ...(between === undefined ? {} : { nodes: between(c) }),
      multimaster: o.multimaster,
      ...(discardOn === undefined ? {} : { discardOn: discardOn(c) }),
    }),
    next: o.next,
    failTo: o.failTo,
    failure: o.failure ?? ((_, e) => `Cannot change disks config: ${e}`),
  });
}

/**
 * Ganeti's _OpenInstanceDisks: the disks opened (promoted) on one node, beside its peer (shared, the
 * migration's window) or alone (exclusive). `quiet`: no feedback line (a repair's last step).
 */
export function openInstanceDisks(
  o: Link & { node: NodeRole; exclusive: boolean; description: string; rules?: number[]; quiet?: true },
) {
  const mode = o.exclusive ? 'exclusive' : 'shared';
  return effectStep({
    src: 'openDisks',
    description: o.description,
    ...(o.rules === undefined ? {} : { rules: o.rules }),
    ...(o.quiet
      ? {}
      : { says: (c: ProtocolContext) => `* opening instance disks on node ${o.node(c)} in ${mode} mode` }),
    input: (c) => ({ instance: c.instance, node: o.node(c), disks: c.disks, exclusive: o.exclusive }),
    next: o.next,
    failTo: o.failTo,
    failure: (c, e) =>
      `Cannot open instance disks ${o.exclusive ? 'exclusively ' : ''}on node ${o.node(c)}: ${e}`,
  });
}

type Finalize = {
  success: boolean;
  description?: string;
  says?: (c: ProtocolContext) => string;
  next: Next;
} & OnFailure;

/** The hypervisor's finalize on the target: keep the incoming instance (success) or kill it. */
export function finalizeMigrationTarget(o: Finalize) {
  return effectStep({
    ...o,
    src: 'finalizeMigrationTarget',
    input: (c) => ({
      instance: c.instance,
      node: c.target,
      info: c.handover.migrationInfo ?? {},
      success: o.success,
    }),
  });
}

/** The hypervisor's finalize on the source: quit the migrated instance (success), or resume it. */
export function finalizeMigrationSource(o: Finalize) {
  return effectStep({
    ...o,
    src: 'finalizeMigrationSource',
    input: (c) => ({
      instance: c.instance,
      node: c.source,
      success: o.success,
      live: c.handover.live ?? true,
    }),
  });
}

/**
 * The first step of every machine: read the instance's config; a config the machine cannot act on
 * (`check` says why) is a refusal before anything is touched.
 */
export function loadingConfig(o: {
  check: (config: InstanceConfig, context: ProtocolContext) => string | null;
  next: string;
  rejected: string;
  /** A Ganeti-style line once the config is read ("Migrating instance web1"). */
  says?: (context: ProtocolContext) => string;
  /** The machine copies the guest's memory (or finishes a copy): live or not is decided here. */
  copiesMemory?: true;
  /**
   * The run works towards the config's primary when this says so (a failover's repair): the source
   * is then the config's secondary, the node to prove stopped or down.
   */
  towardsPrimary?: (context: ProtocolContext) => boolean;
  /** A replace: the new secondary (`target`) comes from the request, the config's is the former one. */
  replacing?: true;
}) {
  type Read = StepArgs & { event: { output: InstanceConfig } };
  const record = {
    type: 'recordConfig',
    params: ({ context, event }: Read) => ({
      config: event.output,
      copiesMemory: o.copiesMemory === true,
      towardsPrimary: o.towardsPrimary?.(context) ?? false,
      replacing: o.replacing === true,
    }),
  };
  return effectStep({
    src: 'getInstance',
    description: 'Reading the instance’s config (getInstance).',
    input: (c) => ({ instance: c.instance }),
    next: [
      {
        guard: {
          type: 'rejects',
          params: ({ context, event }: Read) => ({ problem: o.check(event.output, context) }),
        },
        target: o.rejected,
        actions: [
          record,
          {
            type: 'fail',
            params: ({ context, event }: Read) => ({ message: o.check(event.output, context)! }),
          },
        ],
      },
      { target: o.next, actions: [record, ...(o.says === undefined ? [] : [saying(o.says)])] },
    ],
    failTo: o.rejected,
    failure: (c, e) => `Cannot read the config of instance ${c.instance}: ${e}`,
  });
}

/** A final state: the outcome recorded, described for diagrams and `explain`. */
export function outcomeState(
  outcome: Outcome,
  description: string,
  options: { check?: string; rules?: number[]; done?: boolean } = {},
) {
  return protocol.createStateConfig({
    description,
    ...(options.done ? {} : { tags: ['failure'] }),
    ...(options.check === undefined && options.rules === undefined
      ? {}
      : {
          meta: meta({
            ...(options.check === undefined ? {} : { check: options.check }),
            ...(options.rules === undefined ? {} : { rules: options.rules }),
          }),
        }),
    type: 'final',
    entry: [
      ...(options.done ? [{ type: 'feedback' as const, params: { message: '* done' } }] : []),
      { type: 'recordOutcome', params: { outcome } },
    ],
  });
}
