import { setTimeout as sleep } from 'node:timers/promises';
import type { RunEvent, RunNotice } from '../runner/index.js';
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
      return following(id, drainFollowed(input.node, id, follow));
    },
    evacuationStatus: (node) => evacuationStatus(endpoints, cluster, node),
    resumeEvacuation: async (node, follow = {}) => {
      const status = await evacuationStatus(endpoints, cluster, node);
      if (status === null || status.output !== null) return null;
      return following(status.run, drainFollowed(node, status.run, follow));
    },
  };

  /** Follows a drain to its end, and its runs' steps too: all told before its outcome. */
  async function drainFollowed(node: string, id: string, follow: EvacuationFollow) {
    const runs: Promise<void>[] = [];
    const drain = { ended: false };
    const output = await followEvacuation(endpoints, cluster, node, id, noticesOf(follow, runs, drain));
    // A run whose end notice this client missed (a status read that failed) must not be waited for
    // once the drain has ended: its wait would poll on, unreferenced, until the process ran dry.
    drain.ended = true;
    await Promise.all(runs);
    return output;
  }

  /**
   * A drain's runs as Restate tells them: each start and end, and, for a follower of its instances'
   * events, each run's own steps, read from its instance's status while it goes (as a local drain
   * shows them).
   */
  function noticesOf(follow: EvacuationFollow, runs: Promise<void>[], drain: { ended: boolean }) {
    const tell = follow.onInstanceEvent;
    const ended = new Set<string>();
    const onNotice = (notice: RunNotice) => {
      const instance = notice.request.instance;
      if (notice.phase === 'end') ended.add(instance);
      else if (tell !== undefined) {
        ended.delete(instance);
        runs.push(
          stepsOf(
            instance,
            () => drain.ended || ended.has(instance),
            (event) => tell(instance, event),
          ),
        );
      }
      follow.onRun?.(notice);
    };
    return { onNotice, ...(follow.abort === undefined ? {} : { abort: follow.abort }) };
  }

  /** Follows the run of `instance` that is starting, once its status shows it under way, to its end. */
  async function stepsOf(instance: string, over: () => boolean, onEvent: (event: RunEvent) => void) {
    try {
      for (;;) {
        const status = await runStatus(endpoints, cluster, instance);
        if (status?.run !== undefined && status.output === null) {
          await followRun(endpoints, cluster, instance, status.run, { onEvent });
          return;
        }
        // Not yet under way (queued behind its slots), or ended before it could be seen.
        if (over()) return;
        // Referenced: once the drain has ended this wait may be all that keeps the process alive
        // until it returns (an unreferenced one let it run dry: exit 70 in CI).
        await sleep(STATUS_POLL_MS);
      }
    } catch {
      // The steps are for the view: the drain's own notices and outcome still tell how it went.
    }
  }
}

const STATUS_POLL_MS = 250;
