import type { Snapshot } from 'xstate';
import {
  type Effects,
  type InstanceConfig,
  InstanceConfig as InstanceConfigSchema,
  inputProblem,
  MACHINES,
  type MachineName,
  type ProtocolContext,
  type ProtocolInput,
  type ProtocolOutput,
  pathHasTag,
} from '../../machines/index.js';
import { type RunOptions, rejectedInput, runKind, runMachine, stateKey } from '../runner/index.js';
import type { LockStore } from './lock.js';
import { type JournalEntry, type JournalStore, owner } from './store.js';
import { machineVersion } from './version.js';

export type MachineKind = MachineName;

export interface JournalOptions extends Omit<RunOptions, 'onSnapshot' | 'snapshot' | 'beforeCall'> {
  store: JournalStore;
  locks: LockStore;
  /** The instance's nodes, locked for the run (Ganeti's node locks). */
  nodes: string[];
  /** Called once each journal entry is on disk, with its number and state (crash tests kill here). */
  afterWrite?: (n: number, state: string) => void;
  /** What the run acts on, recorded in the journal; a resume must act on the same (see JournalEntry). */
  where?: string;
}

export class ResumeError extends Error {
  override name = 'ResumeError';
}

async function journaled(
  kind: MachineKind,
  input: ProtocolInput,
  effects: Effects,
  options: JournalOptions,
  snapshot?: Snapshot<unknown>,
): Promise<ProtocolOutput> {
  // Bad input is refused before the locks are taken and before a journal exists for it.
  const bad = inputProblem(input);
  if (bad !== null) return rejectedInput(input, bad);
  const machine = MACHINES[kind];
  const version = machineVersion(machine);
  // A simulated clock stands still while the journal's own I/O runs (it would jump to a pending
  // deadline, such as a drain's, as if that time had passed).
  const held = <T>(work: Promise<T>) => options.clock?.hold?.(work) ?? work;
  const lease = await held(
    options.locks.acquire([`instance-${input.instance}`, ...options.nodes.map((n) => `node-${n}`)], {
      ...owner(),
      since: new Date().toISOString(),
      operation: `${kind} of ${input.instance}`,
    }),
  );
  // Writes are chained in order; every effect waits for them, so nothing acts ahead of the record.
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (work: () => Promise<void>) => {
    queue = queue.then(() => held(work()));
  };
  let written = 0;
  enqueue(() =>
    options.store.log(input.instance, {
      type: 'start',
      machine: kind,
      machineVersion: version,
      resumed: snapshot !== undefined,
      tookOver: lease.tookOver,
    }),
  );
  try {
    const output = await runMachine(machine, input, effects, {
      ...options,
      ...(snapshot === undefined ? {} : { snapshot }),
      beforeCall: () => queue,
      onEvent: (event) => {
        options.onEvent?.(event);
        enqueue(() => options.store.log(input.instance, { ...event }));
      },
      onSnapshot: (persisted) => {
        const p = persisted as unknown as { value: Parameters<typeof stateKey>[0] };
        const state = stateKey(p.value);
        const entry: JournalEntry = {
          schema: 1,
          machine: kind,
          machineVersion: version,
          instance: input.instance,
          input: input as unknown as Record<string, unknown>,
          state,
          snapshot: persisted as unknown as Record<string, unknown>,
          writtenAt: new Date().toISOString(),
          owner: owner(),
          ...(options.where === undefined ? {} : { where: options.where }),
        };
        enqueue(async () => {
          await options.store.write(entry);
          options.afterWrite?.(++written, state);
        });
      },
    });
    await queue;
    await held(options.store.log(input.instance, { type: 'end', outcome: output.outcome }));
    await held(options.store.close(input.instance));
    return output;
  } finally {
    await queue.catch(() => {});
    await held(lease.release());
  }
}

/** A run (of any machine, with the migration's fallback) that journals every transition and holds its locks. */
export async function runJournaled(
  kind: MachineKind,
  input: ProtocolInput,
  effects: Effects,
  options: JournalOptions,
) {
  return runKind(kind, input, (k, i) => journaled(k, i, effects, options));
}

export interface Resumed {
  output: ProtocolOutput;
  /** 'continued' from the journal, or handed to a fresh 'cleanup' (with the reason). */
  how: 'continued' | 'cleanup';
  reason: string | null;
  from: JournalEntry;
}

/**
 * Continues an interrupted run from its journal. Where continuing blind is unsafe (the crash hit the
 * hypervisor's handover, or the config no longer says what the journal believed), it runs the
 * cleanup instead, which first looks where the instance really runs.
 */
export async function resumeRun(
  instance: string,
  effects: Effects,
  options: JournalOptions,
): Promise<Resumed> {
  const entry = await options.store.read(instance);
  if (entry === null) {
    throw new ResumeError(
      `there is no unfinished migration or cleanup of ${instance} to resume (no journal); run migrate, or migrate --cleanup`,
    );
  }
  if (entry.where !== undefined && options.where !== undefined && entry.where !== options.where) {
    throw new ResumeError(
      `the journal of ${instance} is of a run on ${entry.where}, not on ${options.where}: resume it there`,
    );
  }
  const kind = entry.machine;
  const version = machineVersion(MACHINES[kind]);
  if (entry.machineVersion !== version) {
    throw new ResumeError(
      `the journal of ${instance} was written by ${kind} machine version ${entry.machineVersion}, this is ${version}: its steps may not exist here; run migrate --cleanup instead`,
    );
  }
  const context = (entry.snapshot as { context?: ProtocolContext }).context;
  let reason: string | null = null;
  let config: InstanceConfig | null = null;
  // The machine says which of its states are the hypervisor's handover (tag 'handover').
  if (pathHasTag(MACHINES[kind], entry.state, 'handover')) {
    reason = `the run stopped in ${entry.state}, inside the hypervisor's handover`;
  } else if (context?.config && !pathHasTag(MACHINES[kind], entry.state, 'commit')) {
    // Inside the commit the write may have landed before the journal heard of it: the config naming
    // either node is what the run expects there, and the commit step (idempotent) is done again.
    config = InstanceConfigSchema.parse(
      await effects.getInstance(
        { instance, timeoutMs: context.limits.stepTimeoutMs },
        new AbortController().signal,
      ),
    );
    const believed = context.commit.done ? context.target : context.source;
    if (config.primaryNode !== believed) {
      reason = `the config names ${config.primaryNode} but the journal expected ${believed}: the world changed since`;
    }
    // A replace's own commit names the secondary.
    const secondary = context.replace.committed ? context.target : context.replace.former;
    if (reason === null && context.replace.former !== '' && config.secondaryNode !== secondary) {
      reason = `the config names ${config.secondaryNode} as the secondary but the journal expected ${secondary}: the world changed since`;
    }
  }
  if (reason !== null) {
    options.onEvent?.({
      type: 'feedback',
      level: 'warning',
      message: `Not resuming blind: ${reason}; looking where ${instance} runs and ${kind === 'failover' ? 'repairing the failover' : 'cleaning up'} instead`,
    });
    const repair = repairOf(kind, entry.input as unknown as ProtocolInput, context, config);
    const output = await journaled(repair.kind, repair.input, effects, options);
    return { output, how: 'cleanup', reason, from: entry };
  }
  options.onEvent?.({
    type: 'feedback',
    level: 'info',
    message: `Resuming the ${kind} of ${instance} from ${entry.state}`,
  });
  const output = await journaled(
    kind,
    entry.input as unknown as ProtocolInput,
    effects,
    options,
    entry.snapshot as Snapshot<unknown>,
  );
  return { output, how: 'continued', reason: null, from: entry };
}

/**
 * What repairs an interrupted run that cannot be continued: a failover's own repair (it brings the
 * instance up where the config names, never reconnecting a node that may have written alone), the
 * migration's cleanup for every other run.
 */
function repairOf(
  kind: MachineKind,
  input: ProtocolInput,
  context: ProtocolContext | undefined,
  config: InstanceConfig | null,
): { kind: MachineKind; input: ProtocolInput } {
  const limits = input.limits === undefined ? {} : { limits: input.limits };
  // A replace has its own repair: it finishes one past its commit, and undoes one before it.
  if (kind === 'changeSecondary')
    return {
      kind,
      input: {
        instance: input.instance,
        cleanup: true,
        ...(input.newSecondary === undefined ? {} : { newSecondary: input.newSecondary }),
        ...(input.replaceCopy === undefined ? {} : { replaceCopy: input.replaceCopy }),
        ...limits,
      },
    };
  if (kind !== 'failover') return { kind: 'cleanup', input: { instance: input.instance, ...limits } };
  // The operator's word that a node is down speaks of the failover's source: it carries over only to
  // a repair whose node to prove down is that same one (the config names the failover's target).
  const sameWord =
    input.sourceIsDown === true &&
    context !== undefined &&
    config !== null &&
    config.primaryNode === context.target &&
    config.secondaryNode === context.source;
  return {
    kind: 'failover',
    input: {
      instance: input.instance,
      cleanup: true,
      ...(sameWord ? { sourceIsDown: true } : {}),
      ...limits,
    },
  };
}
