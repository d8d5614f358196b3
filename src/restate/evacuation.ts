import type { ObjectContext } from '@restatedev/restate-sdk';
import {
  type Effects,
  type EvacuationInput,
  type EvacuationOutput,
  type InstanceRunner,
  NodeName,
  type ProtocolOutput,
} from '../../machines/index.js';
import { type RunNotice, runEvacuation } from '../runner/index.js';
import { EVACUATION_OBJECT, HANDLER_OF, INSTANCE_OBJECT, RUN_LOG_OBJECT } from './names.js';
import {
  type Ended,
  type EvacuationStatus,
  exclusive,
  OBJECT_OPTIONS,
  type ReportTo,
  splitKey,
} from './protocol.js';
import { restate } from './sdk.js';
import { durableEffects } from './steps.js';
import { recordTold, toldStatusHandler } from './told.js';

const NOTICES = 'notice';

export interface EvacuationObjectOptions {
  cluster: string;
  effects: Effects;
  graceMs?: number;
  /** The evacuation's input as this cluster runs it (a cluster file's deadlines added). */
  prepare?: (input: EvacuationInput) => EvacuationInput;
}

/**
 * A node's evacuation as one durable invocation (key CLUSTER/NODE): the evacuation machine plans
 * and schedules as it does locally, and each instance's run is a durable call to that instance's
 * object, which Restate hands to any worker. The machine's limits hold as ever; the node slots
 * (nodes.ts) hold across evacuations and single runs.
 */
export function evacuationObject(options: EvacuationObjectOptions) {
  return restate.object({
    name: EVACUATION_OBJECT,
    handlers: {
      evacuate: exclusive(async (ctx: ObjectContext, body: unknown): Promise<EvacuationOutput> => {
        const { cluster, instance: node } = splitKey(ctx.key, NodeName, 'NODE');
        if (cluster !== options.cluster) {
          throw new restate.TerminalError(`this worker acts on cluster ${options.cluster}, not ${cluster}`, {
            errorCode: 400,
          });
        }
        const given = { ...((body ?? {}) as object), node } as EvacuationInput;
        const prepare = options.prepare;
        const input = prepare === undefined ? given : await ctx.run('input', () => prepare(given));
        let status: EvacuationStatus = {
          run: ctx.request().id,
          node,
          started: 0,
          ended: 0,
          told: 0,
          notices: [],
          output: null,
        };
        const tell = (notice: RunNotice) => {
          status = {
            ...status,
            started: status.started + (notice.phase === 'start' ? 1 : 0),
            ended: status.ended + (notice.phase === 'end' ? 1 : 0),
            told: status.told + 1,
          };
          recordTold(ctx, NOTICES, status.told, notice);
          ctx.set('status', status);
        };
        ctx.set('status', status);
        const abort = new AbortController();
        const durable = await durableEffects(ctx, options.effects, {
          ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
          onCancel: () => abort.abort(),
        });
        const output = await withRunLog(ctx, cluster, (runner) =>
          runEvacuation(input, durable.effects, {
            clock: durable.clock,
            runner,
            abort: abort.signal,
            signal: ctx.request().attemptCompletedSignal,
            onRun: (notice) => tell(notice),
          }),
        );
        ctx.set('status', { ...status, output });
        return output;
      }),
      status: toldStatusHandler<EvacuationStatus, 'notices'>(NOTICES, 'notices'),
    },
    options: OBJECT_OPTIONS,
  });
}

/**
 * An evacuation's run log. The evacuation must see its runs end in an order that a replay of its
 * journal sees again; awaiting several calls at once does not give that (a replay resolves them in
 * another order). So each run reports its end here, one at a time, and the evacuation takes the
 * ends in batches through one awakeable at a time, whose payload (the batch, in order) is journaled.
 */
export function runLogObject() {
  return restate.object({
    name: RUN_LOG_OBJECT,
    handlers: {
      record: async (ctx: ObjectContext, ended: Ended) => {
        const log = (await ctx.get<{ ended: Ended[]; waiter: string | null }>('log')) ?? {
          ended: [],
          waiter: null,
        };
        const all = [...log.ended, ended];
        if (log.waiter !== null) {
          ctx.resolveAwakeable(log.waiter, all);
          ctx.set('log', { ended: [], waiter: null });
        } else ctx.set('log', { ended: all, waiter: null });
      },
      wake: async (ctx: ObjectContext, waiter: string) => {
        const log = (await ctx.get<{ ended: Ended[]; waiter: string | null }>('log')) ?? {
          ended: [],
          waiter: null,
        };
        if (log.ended.length > 0) {
          ctx.resolveAwakeable(waiter, log.ended);
          ctx.set('log', { ended: [], waiter: null });
        } else ctx.set('log', { ended: [], waiter });
      },
    },
  });
}

/** Lets every promise continuation run (the machine starts what it starts after an end). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs `work` with an InstanceRunner whose runs are one-way calls to the instances' objects, their
 * ends taken from the run log in journaled batches (see runLogObject).
 */
async function withRunLog<T>(
  ctx: ObjectContext,
  cluster: string,
  work: (runner: InstanceRunner) => Promise<T>,
): Promise<T> {
  const log = `${ctx.key}/${ctx.request().id}`;
  const waiting = new Map<number, { resolve: (o: ProtocolOutput) => void; reject: (e: Error) => void }>();
  let started = 0;
  let nudge: () => void = () => {};
  const runner: InstanceRunner = (request, control) => {
    const run = ++started;
    const { instance, ...input } = request.input;
    const handle = ctx.genericSend({
      service: INSTANCE_OBJECT,
      method: HANDLER_OF[request.operation],
      key: `${cluster}/${instance}`,
      parameter: { ...input, report: { log, run } satisfies ReportTo },
      inputSerde: restate.serde.json,
    });
    // The operator's abort reaches each run under way as Restate's cancel of its invocation.
    control.abort.addEventListener(
      'abort',
      () => void handle.invocationId.then((id) => ctx.invocation(id).cancel()),
      {
        once: true,
      },
    );
    nudge();
    return new Promise<ProtocolOutput>((resolve, reject) => waiting.set(run, { resolve, reject }));
  };
  let finished = false;
  const done = work(runner).finally(() => {
    finished = true;
    nudge();
  });
  while (!finished) {
    await settle();
    if (finished) break;
    if (waiting.size === 0) {
      // Nothing under way (the plan is being read): wait for a run to start, or for the end.
      await new Promise<void>((resolve) => {
        nudge = resolve;
      });
      nudge = () => {};
      continue;
    }
    const { id, promise } = ctx.awakeable<Ended[]>();
    ctx.genericSend({
      service: RUN_LOG_OBJECT,
      method: 'wake',
      key: log,
      parameter: id,
      inputSerde: restate.serde.json,
    });
    for (const ended of await promise) {
      const w = waiting.get(ended.run);
      waiting.delete(ended.run);
      if (ended.output !== null) w?.resolve(ended.output);
      else w?.reject(new Error(ended.error ?? 'the run ended without an output'));
    }
  }
  return done;
}
