import type { ObjectContext } from '@restatedev/restate-sdk';
import {
  DEFAULT_LIMITS,
  type Effects,
  inputProblem,
  type MachineName,
  type ProtocolInput,
  type ProtocolOutput,
} from '../../machines/index.js';
import { type LeaseStore, type RunEvent, runRequest } from '../runner/index.js';
import { type RunStatus, startStatus, withEvent } from '../runtime/status.js';
import { withStep } from '../runtime/step.js';
import { INSTANCE_OBJECT, RUN_LOG_OBJECT } from './names.js';
import { withNodeSlots } from './nodes.js';
import { exclusive, OBJECT_OPTIONS, type ReportTo, splitKey } from './protocol.js';
import { restate } from './sdk.js';
import { durableEffects } from './steps.js';
import { recordTold, toldStatusHandler } from './told.js';

const EVENTS = 'event';

export interface InstanceObjectOptions {
  /** The cluster this worker acts on: keys of another cluster are refused. */
  cluster: string;
  effects: Effects;
  /** The input as this cluster runs it (e.g. a cluster file's deadlines added); default as given. */
  prepare?: (kind: MachineName, input: ProtocolInput) => ProtocolInput;
  /** Added to each effect's timeoutMs before its step is recorded as failed. */
  graceMs?: number;
  /**
   * At most this many runs touch any one node at once, across every worker (Restate-held slots on
   * the instance's primary and secondary, and a replace's new node); absent: no limit beyond one run
   * per instance.
   */
  perNode?: number;
  /**
   * Where the instance leases of this cluster's config store are kept (see LeaseStore): a run holds
   * its instance's, so that a run started outside Restate on the same instance is refused meanwhile.
   * Its holder is the invocation, the same on whichever worker and attempt.
   */
  leases?: LeaseStore;
}

/**
 * One exclusive handler per machine: Restate runs one at a time per key, so two runs on one
 * instance queue one behind the other whichever workers and hosts they come from. A whole run is
 * one invocation; each effect call a journaled step, so a run whose worker dies goes on on another
 * from its last recorded step. `status` is shared: it answers while a run holds the key.
 */
export function instanceObject(options: InstanceObjectOptions) {
  const run = (kind: MachineName) => async (ctx: ObjectContext, body: unknown) => {
    const { cluster, instance } = splitKey(ctx.key);
    if (cluster !== options.cluster) {
      throw new restate.TerminalError(
        `this worker acts on cluster ${options.cluster}, not ${cluster}: register the workers of ${cluster} under their own Restate services, or send the run to ${options.cluster}/${instance}`,
        { errorCode: 400 },
      );
    }
    // An evacuation's run says where to report its end (not part of the machine's input).
    const { report, ...rest } = (body ?? {}) as { report?: ReportTo };
    const given = { ...rest, instance } as ProtocolInput;
    // What the worker adds (a cluster file's deadlines) is journaled: a replay on a worker that read
    // a changed file must run the same input.
    const prepare = options.prepare;
    const input = prepare === undefined ? given : await ctx.run('input', () => prepare(kind, given));
    if (typeof body === 'object' && body !== null && 'instance' in body && body.instance !== instance) {
      throw new restate.TerminalError(
        `the body names instance ${String(body.instance)}, the key ${instance}`,
        {
          errorCode: 400,
        },
      );
    }
    // The record holds where the run stands; its events go to the ring (told.ts), each written once.
    let status: RunStatus & { run: string } = { ...startStatus(kind, input), run: ctx.request().id };
    const tell = (event: RunEvent) => {
      status = { ...withEvent(status, event), events: [], run: status.run };
      recordTold(ctx, EVENTS, status.told, event);
      ctx.set('status', status);
    };
    ctx.set('status', status);
    const abort = new AbortController();
    const durable = await durableEffects(ctx, options.effects, {
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      onCancel: () => {
        tell({
          type: 'feedback',
          level: 'warning',
          message: 'Cancelled in Restate: aborting at the next safe point',
        });
        abort.abort();
      },
      withStep: (step, work) => withStep({ run: ctx.request().id, step }, work),
    });
    const runIt = () =>
      runRequest(kind, input, durable.effects, {
        clock: durable.clock,
        abort: abort.signal,
        // A stale attempt (its worker lost the server, or suspended) stops where it is.
        signal: ctx.request().attemptCompletedSignal,
        onEvent: tell,
        ...(options.leases === undefined
          ? {}
          : { lease: { store: options.leases, holder: `restate invocation ${ctx.request().id}` } }),
      });
    const nodes = options.perNode === undefined ? [] : await nodesOf(durable.effects, input);
    const output: ProtocolOutput = await reported(ctx, report, async () =>
      nodes.length === 0
        ? await runIt()
        : await withNodeSlots(
            ctx,
            cluster,
            nodes,
            options.perNode!,
            (node) =>
              tell({
                type: 'feedback',
                level: 'info',
                message: `Taking a slot on ${node} (at most ${options.perNode} runs at once there)`,
              }),
            runIt,
          ),
    );
    ctx.set('status', { ...status, output });
    return output;
  };
  return restate.object({
    name: INSTANCE_OBJECT,
    handlers: {
      migrate: exclusive(run('migration')),
      cleanup: exclusive(run('cleanup')),
      failover: exclusive(run('failover')),
      rejoin: exclusive(run('rejoin')),
      replaceSecondary: exclusive(run('changeSecondary')),
      status: toldStatusHandler<RunStatus, 'events'>(EVENTS, 'events'),
    },
    options: OBJECT_OPTIONS,
  });
}

/** Runs `work`; an evacuation's run then tells the evacuation's run log how it ended. */
async function reported(
  ctx: ObjectContext,
  report: ReportTo | undefined,
  work: () => Promise<ProtocolOutput>,
): Promise<ProtocolOutput> {
  if (report === undefined) return work();
  const record = (parameter: unknown) =>
    ctx.genericSend({
      service: RUN_LOG_OBJECT,
      method: 'record',
      key: report.log,
      parameter,
      inputSerde: restate.serde.json,
    });
  try {
    const output = await work();
    record({ run: report.run, output, error: null });
    return output;
  } catch (error) {
    // Only a terminal failure ends the run; any other is retried by Restate, and reports later.
    if (error instanceof restate.TerminalError)
      record({ run: report.run, output: null, error: error.message });
    throw error;
  }
}

/**
 * The nodes a run touches, from the config (a journaled step): none for input the machine will
 * refuse, or an instance the config does not know (the machine says why, touching nothing).
 */
async function nodesOf(effects: Effects, input: ProtocolInput): Promise<string[]> {
  if (inputProblem(input) !== null) return [];
  try {
    const config = await effects.getInstance(
      { instance: input.instance, timeoutMs: input.limits?.stepTimeoutMs ?? DEFAULT_LIMITS.stepTimeoutMs },
      new AbortController().signal,
    );
    return nodesTouched(config, input);
  } catch {
    return [];
  }
}

/**
 * The instance's nodes (primary, secondary, a third copy), and a replace's new node: it receives a full copy over its
 * link, and two replaces placing copies on one node at once would share its link and its volume
 * group as two drains' plans did not foresee (the local journal locks it; here its slot holds it).
 */
export function nodesTouched(
  config: { primaryNode: string; secondaryNode: string | null; thirdCopy?: string | null },
  input: Pick<ProtocolInput, 'newSecondary'>,
): string[] {
  return [
    ...new Set([
      config.primaryNode,
      ...(config.secondaryNode === null ? [] : [config.secondaryNode]),
      ...(config.thirdCopy == null ? [] : [config.thirdCopy]),
      ...(input.newSecondary === undefined ? [] : [input.newSecondary]),
    ]),
  ];
}
