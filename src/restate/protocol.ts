import type { ObjectContext } from '@restatedev/restate-sdk';
import { type EvacuationOutput, InstanceName, type ProtocolOutput } from '../../machines/index.js';
import type { RunNotice } from '../runner/index.js';
import { restate } from './sdk.js';

/**
 * What the objects say to each other and to their clients: the keys, the statuses they tell, and
 * the options every object shares. Kept apart so that the objects depend on it, not on each other
 * (as src/remote/protocol.ts is for effects over HTTP).
 */

/** "prod/web1" → the cluster and the instance; a key of another shape is refused, never guessed. */
export function splitKey(
  key: string,
  name: { safeParse(v: string): { success: boolean } } = InstanceName,
  what = 'INSTANCE',
): { cluster: string; instance: string } {
  const at = key.lastIndexOf('/');
  const cluster = key.slice(0, at);
  const instance = key.slice(at + 1);
  if (at <= 0 || !name.safeParse(instance).success) {
    throw new restate.TerminalError(
      `the key ${JSON.stringify(key)} is not CLUSTER/${what} (a plain name after the last slash)`,
      { errorCode: 400 },
    );
  }
  return { cluster, instance };
}

export interface EvacuationStatus {
  run: string;
  node: string;
  /** Runs started and ended so far. */
  started: number;
  ended: number;
  /** How many notices it has told in all; `notices` holds the latest of them. */
  told: number;
  notices: RunNotice[];
  output: EvacuationOutput | null;
}

/** Where an instance's run reports its end: the run log of the evacuation that started it. */
export interface ReportTo {
  /** The run log's key: CLUSTER/NODE/EVACUATION-INVOCATION (fresh for each evacuation). */
  log: string;
  /** The run's number within the evacuation. */
  run: number;
}

/** A run's end as it reports it to its evacuation's run log. */
export interface Ended {
  run: number;
  output: ProtocolOutput | null;
  error: string | null;
}

export const OBJECT_OPTIONS = {
  // Cancellation is an operator abort, delivered to the machine at its next safe point.
  explicitCancellation: true,
  // A replay that does not match its journal is a bug or a changed machine: stop, do not loop.
  onJournalMismatchErrors: 'pause',
} as const;

export const exclusive = <I, O>(handler: (ctx: ObjectContext, input: I) => Promise<O>) =>
  restate.handlers.object.exclusive({}, handler) as (ctx: ObjectContext, input: I) => Promise<O>;
