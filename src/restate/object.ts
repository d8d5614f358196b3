import type { ObjectContext, ObjectSharedContext } from '@restatedev/restate-sdk';
import {
  type Effects,
  InstanceName,
  type MachineName,
  type ProtocolInput,
  type ProtocolOutput,
} from '../../machines/index.js';
import { type RunEvent, runCleanup, runFailover, runMigration, runRejoin } from '../runner/index.js';
import { type RunStatus, startStatus, withEvent } from '../runtime/status.js';
import { withStep } from '../runtime/step.js';
import { INSTANCE_OBJECT } from './names.js';
import { restate } from './sdk.js';
import { durableEffects } from './steps.js';

const RUNS = { migration: runMigration, cleanup: runCleanup, failover: runFailover, rejoin: runRejoin };

/** "prod/web1" → the cluster and the instance; a key of another shape is refused, never guessed. */
export function splitKey(key: string): { cluster: string; instance: string } {
  const at = key.lastIndexOf('/');
  const cluster = key.slice(0, at);
  const instance = key.slice(at + 1);
  if (at <= 0 || !InstanceName.safeParse(instance).success) {
    throw new restate.TerminalError(
      `the key ${JSON.stringify(key)} is not CLUSTER/INSTANCE (an instance name after the last slash)`,
      { errorCode: 400 },
    );
  }
  return { cluster, instance };
}

export interface InstanceObjectOptions {
  /** The cluster this worker acts on: keys of another cluster are refused. */
  cluster: string;
  effects: Effects;
  /** The input as this cluster runs it (e.g. a cluster file's deadlines added); default as given. */
  prepare?: (kind: MachineName, input: ProtocolInput) => ProtocolInput;
  /** Added to each effect's timeoutMs before its step is recorded as failed. */
  graceMs?: number;
  /** Each step that ran on this worker (not replayed), for logs and tests. */
  onStep?: (key: string, step: string, ok: boolean) => void;
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
    const given = { ...(body ?? {}), instance } as ProtocolInput;
    const input = options.prepare === undefined ? given : options.prepare(kind, given);
    if (typeof body === 'object' && body !== null && 'instance' in body && body.instance !== instance) {
      throw new restate.TerminalError(
        `the body names instance ${String(body.instance)}, the key ${instance}`,
        {
          errorCode: 400,
        },
      );
    }
    let status: RunStatus & { run: string } = { ...startStatus(kind, input), run: ctx.request().id };
    const tell = (event: RunEvent) => {
      status = { ...withEvent(status, event), run: status.run };
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
      ...(options.onStep === undefined ? {} : { onStep: (step, ok) => options.onStep?.(ctx.key, step, ok) }),
      withStep: (step, work) => withStep({ run: ctx.request().id, step }, work),
    });
    const output: ProtocolOutput = await RUNS[kind](input, durable.effects, {
      clock: durable.clock,
      abort: abort.signal,
      // A stale attempt (its worker lost the server, or suspended) stops where it is.
      signal: ctx.request().attemptCompletedSignal,
      onEvent: tell,
    });
    ctx.set('status', { ...status, output });
    return output;
  };
  const exclusive = (kind: MachineName) =>
    restate.handlers.object.exclusive({}, run(kind)) as (
      ctx: ObjectContext,
      body: unknown,
    ) => Promise<ProtocolOutput>;
  return restate.object({
    name: INSTANCE_OBJECT,
    handlers: {
      migrate: exclusive('migration'),
      cleanup: exclusive('cleanup'),
      failover: exclusive('failover'),
      rejoin: exclusive('rejoin'),
      status: restate.handlers.object.shared(
        async (ctx: ObjectSharedContext): Promise<RunStatus | null> =>
          (await ctx.get<RunStatus>('status')) ?? null,
      ),
    },
    options: {
      // Cancellation is an operator abort, delivered to the machine at its next safe point.
      explicitCancellation: true,
      // A replay that does not match its journal is a bug or a changed machine: stop, do not loop.
      onJournalMismatchErrors: 'pause',
    },
  });
}
