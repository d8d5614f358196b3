import type { EvacuationOutput, MachineName, ProtocolInput } from '../../machines/index.js';
import {
  evacuationStatus,
  followRun,
  type RestateEndpoints,
  RestateError,
  runStatus,
  submitRun,
} from '../restate/client.js';
import type { Invocation } from './command.js';
import { clusterName } from './distributed.js';
import { UsageError } from './errors.js';
import { withInterrupt } from './interrupt.js';
import type { Values } from './options.js';
import { finish, viewFor } from './output.js';
import { type Target, targetOf } from './target.js';

/**
 * `--restate URL`: the run is submitted to a Restate cluster and followed there; workers
 * (`drbd-migrate worker`) run it. The live view, the output and the exit codes are a local run's.
 * Needs no SDK: a client speaks HTTP to the ingress and the admin API.
 */

/** The ingress from --restate, the admin API from --restate-admin or the ingress's host on 9070. */
export function restateEndpoints(values: Values): RestateEndpoints {
  const url = (text: string, option: string) => {
    try {
      const u = new URL(text);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
      return u;
    } catch {
      throw new UsageError(`--${option} ${text}: must be an http:// or https:// URL`);
    }
  };
  const ingress = url(values.restate!, 'restate');
  const admin =
    values['restate-admin'] === undefined
      ? new URL(`${ingress.protocol}//${ingress.hostname}:9070`)
      : url(values['restate-admin'], 'restate-admin');
  return { ingress: ingress.origin, admin: admin.origin };
}

/** Submits the run and follows it to its end; Ctrl-C cancels it in Restate (an operator abort). */
export async function onRestate(call: Invocation, kind: MachineName, input: ProtocolInput): Promise<number> {
  const { values } = call;
  const endpoints = restateEndpoints(values);
  const cluster = await clusterName(values);
  const target = targetOf(values);
  let id: string;
  try {
    id = await submitRun(endpoints, cluster, kind, input);
  } catch (error) {
    // Not submitted: nothing was started, nothing touched.
    if (error instanceof RestateError) throw new UsageError(error.message);
    throw error;
  }
  return follow(call, cluster, kind, input.instance, id, target);
}

/** Follows run `id` to its end with the live view; its exit code is the run's. */
export async function follow(
  call: Invocation,
  cluster: string,
  kind: MachineName,
  instance: string,
  id: string,
  target: Target,
): Promise<number> {
  const { values, io } = call;
  const endpoints = restateEndpoints(values);
  const { view, onEvent } = viewFor(io, values);
  try {
    const about = { machine: kind, instance, target, journaled: true };
    const result = await withInterrupt(io, view, about, ({ abort }) =>
      followRun(endpoints, cluster, instance, id, { onEvent, abort }),
    );
    return finish(io, values, view, result, { at: Date.now(), runsOn: result.primaryNode, target });
  } catch (error) {
    if (!(error instanceof RestateError)) throw error;
    throw new Error(
      `${error.message}; the run ${id} goes on in Restate: follow it with 'drbd-migrate resume ${instance} --${target.kind} ${target.file} --restate ${values.restate}'`,
    );
  }
}

/**
 * `resume NAME --restate URL`: follows the run under way on instance NAME, or the evacuation under
 * way of node NAME (the client that submitted it died; the run did not). One that ended meanwhile
 * is reported as it ended, with its exit code.
 */
export async function resumeOnRestate(
  call: Invocation,
  name: string,
  followDrain: (id: string, ended: EvacuationOutput | null) => Promise<number>,
): Promise<number> {
  const { values, io } = call;
  const cluster = await clusterName(values);
  const endpoints = restateEndpoints(values);
  const [run, drain] = await restateStatuses(endpoints, cluster, name);
  const target = targetOf(values);
  if (run?.run !== undefined && run.output === null)
    return follow(call, cluster, run.kind, name, run.run, target);
  if (drain !== null && drain.output === null) return followDrain(drain.run, null);
  if (run?.output != null) {
    const { view } = viewFor(io, values);
    view.line(`The ${run.kind} of ${name} had already ended (run ${run.run ?? '?'}).`);
    return finish(io, values, view, run.output, { at: Date.now(), runsOn: run.output.primaryNode, target });
  }
  if (drain?.output != null) return followDrain(drain.run, drain.output);
  throw new UsageError(`Restate knows no run of ${name} in cluster ${cluster}`);
}

/**
 * What Restate knows of NAME: the run on instance NAME and the evacuation of node NAME (either may
 * be null). Restate not answering is a refusal: nothing was asked of it.
 */
export function restateStatuses(endpoints: RestateEndpoints, cluster: string, name: string) {
  const refused = (error: unknown): never => {
    throw new UsageError((error as Error).message);
  };
  return Promise.all([
    runStatus(endpoints, cluster, name).catch(refused),
    evacuationStatus(endpoints, cluster, name).catch(refused),
  ]);
}
