import { appendFile, mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import {
  type Clock,
  DEFAULT_LIMITS,
  type Effects,
  type EvacuationInput,
  EvacuationInputSchema,
  type EvacuationOutput,
  InstanceConfig,
  type InstanceResult,
  InstanceResultSchema,
  type InstanceRunner,
  instanceResult,
  leftForCleanup,
  NodeName,
  type Operation,
  type ProtocolInput,
  type ProtocolOutput,
} from '../../machines/index.js';
import { type EvacuationOptions, runEvacuation } from '../runner/index.js';
import type { Lease, LockStore } from './lock.js';
import { type JournalOptions, ResumeError, resumeRun, runJournaled } from './run.js';
import { type JournalStore, owner } from './store.js';

/**
 * An evacuation's own record, beside the journals of the instances it moves: what it was asked,
 * which runs it started, and how each ended, as JSON lines appended and synced one by one (a record
 * rewritten whole at each end would cost the square of the node's instances). Each instance's run
 * keeps its own journal, so a resumed evacuation takes each half-done run up where it stopped.
 */
const Line = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    input: z.record(z.string(), z.unknown()),
    where: z.string().optional(),
    owner: z.object({ host: z.string(), pid: z.number() }),
  }),
  z.object({ type: z.literal('run'), instance: z.string() }),
  z.object({ type: z.literal('end'), result: InstanceResultSchema }),
]);
type Line = z.infer<typeof Line>;

export interface EvacuationRecord {
  input: EvacuationInput;
  where?: string;
  results: InstanceResult[];
  /** Started and not ended: under way when the orchestrator stopped. */
  inFlight: string[];
  /** Migrations whose last run ended half-done: the cleanup comes next. */
  needCleanup: string[];
}

export class EvacuationJournal {
  private readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'evacuations');
  }

  private path(node: string) {
    return join(this.dir, `${NodeName.parse(node)}.jsonl`);
  }

  private async append(node: string, line: Line) {
    const file = await open(this.path(node), 'a', 0o600);
    try {
      await file.appendFile(`${JSON.stringify(line)}\n`);
      await file.datasync();
    } finally {
      await file.close();
    }
  }

  /** The unfinished evacuation of NODE, or null. */
  async read(node: string): Promise<EvacuationRecord | null> {
    let text: string;
    try {
      text = await readFile(this.path(node), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    let record: EvacuationRecord | null = null;
    const started = new Set<string>();
    const ends = new Map<string, InstanceResult>();
    // A line cut by a crash while being written is the last one: it is not counted.
    for (const raw of text.split('\n').filter((l) => l.trim() !== '')) {
      let line: Line;
      try {
        line = Line.parse(JSON.parse(raw));
      } catch {
        break;
      }
      if (line.type === 'start') {
        record = {
          input: EvacuationInputSchema.parse(line.input),
          ...(line.where === undefined ? {} : { where: line.where }),
          results: [],
          inFlight: [],
          needCleanup: [],
        };
      } else if (line.type === 'run') started.add(line.instance);
      else {
        started.delete(line.result.instance);
        ends.set(line.result.instance, line.result as InstanceResult);
      }
    }
    if (record === null) return null;
    // The last end of each instance counts; one left for the cleanup is not an end yet, nor, in a
    // drain of the secondaries, a move whose replace had not begun (it is planned again).
    const replacing = record.input.secondaries === true;
    const last = [...ends.values()].filter(
      (r) => !(replacing && (r.outcome === 'migrated' || r.outcome === 'failedOver')),
    );
    record.results = last.filter((r) => !leftForCleanup(r));
    record.needCleanup = last.filter(leftForCleanup).map((r) => r.instance);
    record.inFlight = [...started];
    return record;
  }

  async start(input: EvacuationInput, where: string | undefined): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.append(input.node, {
      type: 'start',
      input: input as Record<string, unknown>,
      ...(where === undefined ? {} : { where }),
      owner: owner(),
    });
  }

  run(node: string, instance: string) {
    return this.append(node, { type: 'run', instance });
  }

  end(node: string, result: InstanceResult) {
    return this.append(node, { type: 'end', result });
  }

  /** The evacuation ended: its record is kept beside, under a name no resume reads. */
  async close(node: string): Promise<void> {
    const path = this.path(node);
    await appendFile(path, '');
    await rename(path, `${path.replace(/\.jsonl$/, '')}.${Date.now()}.done.jsonl`);
  }
}

/** The journal's own I/O, with a simulated clock held still meanwhile (see Clock.hold). */
const held = <T>(clock: Clock | undefined, work: Promise<T>) => clock?.hold?.(work) ?? work;

/** The output of a run that ended before the crash (found moved, with no journal left). */
function endedBefore(instance: string, operation: Operation, config: InstanceConfig): ProtocolOutput {
  const replaced = operation === 'changeSecondary';
  return {
    outcome: replaced ? 'replaced' : operation === 'failover' ? 'failedOver' : 'migrated',
    verdict: 'done',
    instance,
    primaryNode: config.primaryNode,
    ...(replaced ? { secondaryNode: config.secondaryNode } : {}),
    live: null,
    warnings: [
      `its run had ended before the evacuation stopped; the config names ${replaced ? `${config.secondaryNode} as its secondary` : config.primaryNode}`,
    ],
  };
}

export interface JournaledEvacuationOptions extends Omit<EvacuationOptions, 'runner'> {
  store: JournalStore;
  locks: LockStore;
  evacuations: EvacuationJournal;
  /** What it acts on ("cluster /path", "world /path"); a resume must act on the same. */
  where?: string;
  /** Passed to each instance's journaled run (crash tests). */
  afterWrite?: JournalOptions['afterWrite'];
  /** Each instance's run holds its lease (see JournalRuntimeOptions). */
  lease?: JournalOptions['lease'];
}

/**
 * The nodes a drain's replaces make new copies on, locked while any of its runs places one there (a
 * replace locks its new node: Ganeti's replace-disks does): the drain's own runs share the lock,
 * counted among themselves by its per-node limit; another run's placement there is refused.
 */
function placementLocks(node: string, locks: LockStore, clock: Clock | undefined) {
  const taken = new Map<string, { lease: Promise<Lease>; users: number }>();
  return async (target: string): Promise<() => Promise<void>> => {
    let entry = taken.get(target);
    if (entry === undefined) {
      const lease = held(
        clock,
        locks.acquire([`node-${target}`], {
          ...owner(),
          since: new Date().toISOString(),
          operation: `evacuation of ${node} (new copies on ${target})`,
        }),
      );
      entry = { lease, users: 0 };
      taken.set(target, entry);
      // A refusal is the run's error; the next run asks again.
      lease.catch(() => taken.delete(target));
    }
    entry.users++;
    const mine = entry;
    try {
      await mine.lease;
    } catch (error) {
      mine.users--;
      throw error;
    }
    return async () => {
      if (--mine.users > 0) return;
      taken.delete(target);
      await held(clock, (await mine.lease).release());
    };
  };
}

/** Each instance's run, journaled and locked as a single migration is; a half-done one is resumed. */
function journaledRunner(
  node: string,
  effects: Effects,
  options: JournaledEvacuationOptions,
): InstanceRunner {
  const place = placementLocks(node, options.locks, options.clock);
  return async (request, control) => {
    const target =
      request.operation === 'changeSecondary' ? (request.input as ProtocolInput).newSecondary : undefined;
    const release = target === undefined ? null : await place(target);
    try {
      return await journaledRun(request, control);
    } finally {
      await release?.();
    }
  };
  async function journaledRun(
    request: Parameters<InstanceRunner>[0],
    control: Parameters<InstanceRunner>[1],
  ): Promise<ProtocolOutput> {
    const runOptions: JournalOptions = {
      store: options.store,
      locks: options.locks,
      // The evacuation holds the node's lock; each run takes its instance's.
      nodes: [],
      abort: control.abort,
      signal: control.stop,
      onEvent: (event) => options.onInstanceEvent?.(request.instance, event),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      ...(options.where === undefined ? {} : { where: options.where }),
      ...(options.afterWrite === undefined ? {} : { afterWrite: options.afterWrite }),
      ...(options.lease === undefined ? {} : { lease: options.lease }),
    };
    if ((await held(options.clock, options.store.read(request.instance))) !== null) {
      return (await resumeRun(request.instance, effects, runOptions)).output;
    }
    if (request.resumed) {
      // Started before the crash, its journal closed: it ended, and only its end was not recorded.
      const limits = (request.input as ProtocolInput).limits;
      const config = await effects.getInstance(
        { instance: request.instance, timeoutMs: limits?.stepTimeoutMs ?? DEFAULT_LIMITS.stepTimeoutMs },
        control.stop,
      );
      // A replace ended when the node holds nothing of it; a move, when it is no longer the primary.
      const ended =
        request.operation === 'changeSecondary'
          ? ![
              config.secondaryNode,
              config.formerSecondary,
              config.thirdCopy,
              config.formerThirdCopy,
            ].includes(node)
          : config.primaryNode !== node;
      if (ended) return endedBefore(request.instance, request.operation, InstanceConfig.parse(config));
    }
    await held(options.clock, options.evacuations.run(node, request.instance));
    return runJournaled(request.operation, request.input as ProtocolInput, effects, runOptions);
  }
}

/**
 * An evacuation that survives its orchestrator: the node is locked for its whole length, every run
 * it starts and every end is on disk before it goes on, and each instance's run has its own journal.
 * With `resume`, it continues the evacuation recorded for the node instead of starting one.
 */
export async function runEvacuationJournaled(
  input: EvacuationInput,
  effects: Effects,
  options: JournaledEvacuationOptions,
  resume = false,
): Promise<EvacuationOutput> {
  const node = NodeName.parse(input.node);
  const recorded = await options.evacuations.read(node);
  if (resume && recorded === null) {
    throw new ResumeError(`there is no unfinished evacuation of ${node} to resume; run evacuate ${node}`);
  }
  if (!resume && recorded !== null) {
    throw new ResumeError(
      `an evacuation of ${node} is unfinished (its process died): resume it with drbd-migrate resume ${node}`,
    );
  }
  if (recorded?.where !== undefined && options.where !== undefined && recorded.where !== options.where) {
    throw new ResumeError(
      `the evacuation of ${node} ran on ${recorded.where}, not on ${options.where}: resume it there`,
    );
  }
  const lease = await options.locks.acquire([`node-${node}`], {
    ...owner(),
    since: new Date().toISOString(),
    operation: `evacuation of ${node}`,
  });
  try {
    const asked: EvacuationInput =
      recorded === null
        ? input
        : {
            ...recorded.input,
            resumed: {
              results: recorded.results,
              inFlight: recorded.inFlight,
              needCleanup: recorded.needCleanup,
            },
          };
    if (recorded === null) await held(options.clock, options.evacuations.start(input, options.where));
    // Record each end before the evacuation goes on: resume must not run an instance twice.
    const runner = journaledRunner(node, effects, options);
    const output = await runEvacuation(asked, effects, {
      ...options,
      runner: async (request, control) => {
        const out = await runner(request, control);
        await held(options.clock, options.evacuations.end(node, instanceResult(request, out)));
        return out;
      },
    });
    await held(options.clock, options.evacuations.close(node));
    return output;
  } finally {
    await lease.release();
  }
}
