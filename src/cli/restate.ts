import { evacuationStatus, type RestateEndpoints, runStatus } from '../restate/client.js';
import { UsageError } from './errors.js';
import type { Values } from './options.js';

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
