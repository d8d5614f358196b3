import type { EvacuationFollow, Runtime } from '../runtime/index.js';
import {
  evacuationStatus,
  followEvacuation,
  following,
  followRun,
  type RestateEndpoints,
  runOnRestate,
  runStatus,
  submitEvacuation,
} from './client.js';

/**
 * Restate as a runtime, seen from a client (no SDK needed): runs are submitted to the cluster and
 * followed; workers run them. `resume` follows a run that a client which died had submitted.
 */
export function restateRuntime(endpoints: RestateEndpoints, cluster: string): Runtime {
  return {
    name: 'restate',
    run: (kind, input, follow = {}) => runOnRestate(endpoints, cluster, kind, input, follow),
    resume: async (instance, follow = {}) => {
      const status = await runStatus(endpoints, cluster, instance);
      if (status === null || status.output !== null || status.run === undefined) return null;
      return following(status.run, followRun(endpoints, cluster, instance, status.run, follow));
    },
    status: (instance) => runStatus(endpoints, cluster, instance),
    evacuate: async (input, follow = {}) => {
      const id = await submitEvacuation(endpoints, cluster, input);
      return following(id, followEvacuation(endpoints, cluster, input.node, id, noticesOf(follow)));
    },
    evacuationStatus: (node) => evacuationStatus(endpoints, cluster, node),
    resumeEvacuation: async (node, follow = {}) => {
      const status = await evacuationStatus(endpoints, cluster, node);
      if (status === null || status.output !== null) return null;
      return following(status.run, followEvacuation(endpoints, cluster, node, status.run, noticesOf(follow)));
    },
  };
}

/** A drain's runs as Restate tells them: starts and ends (their steps stay with the workers). */
const noticesOf = (follow: EvacuationFollow) => ({
  ...(follow.onRun === undefined ? {} : { onNotice: follow.onRun }),
  ...(follow.abort === undefined ? {} : { abort: follow.abort }),
});
