import type { Runtime } from '../runtime/index.js';
import { followRun, type RestateEndpoints, runOnRestate, runStatus } from './client.js';

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
      return followRun(endpoints, cluster, instance, status.run, follow);
    },
    status: (instance) => runStatus(endpoints, cluster, instance),
  };
}
