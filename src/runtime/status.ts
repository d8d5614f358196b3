import type { MachineName, ProtocolInput, ProtocolOutput } from '../../machines/index.js';
import type { RunEvent } from '../runner/index.js';

/** How many of a run's latest events its status keeps (a follower that falls further behind skips). */
export const STATUS_EVENTS = 200;

/**
 * Where one instance's run stands, as a runtime reports it while it goes and after it ends: its
 * machine, its current state, its latest events (numbered from 1, so a follower asks for what is
 * new), and its output once it ended.
 */
export interface RunStatus {
  kind: MachineName;
  input: ProtocolInput;
  state: string;
  /** How many events the run has told in all; `events` holds the latest of them. */
  told: number;
  events: RunEvent[];
  output: ProtocolOutput | null;
}

export function startStatus(kind: MachineName, input: ProtocolInput): RunStatus {
  return { kind, input, state: '', told: 0, events: [], output: null };
}

export function withEvent(status: RunStatus, event: RunEvent): RunStatus {
  return {
    ...status,
    state: event.type === 'state' ? event.value : status.state,
    told: status.told + 1,
    events: keepLatest(status.events, event),
  };
}

/** The events of `status` a follower that has seen `seen` of them has not seen yet. */
export const newEvents = (status: RunStatus, seen: number): RunEvent[] =>
  unseen(status.events, status.told, seen);

/**
 * A status keeps only the latest STATUS_EVENTS of what it told (a record rewritten whole at each
 * keeps it bounded; Restate's keep theirs apart, in restate/told.ts).
 */
export function keepLatest<T>(latest: readonly T[], item: T): T[] {
  const kept = latest.length >= STATUS_EVENTS ? latest.slice(1) : latest.slice();
  kept.push(item);
  return kept;
}

/** Of the `latest` of `told` items, those a follower that has seen `seen` of them has not. */
export function unseen<T>(latest: readonly T[], told: number, seen: number): T[] {
  return latest.slice(Math.max(0, seen - (told - latest.length)));
}
