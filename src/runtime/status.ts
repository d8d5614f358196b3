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
  const events = status.events.length >= STATUS_EVENTS ? status.events.slice(1) : status.events.slice();
  events.push(event);
  return {
    ...status,
    state: event.type === 'state' ? event.value : status.state,
    told: status.told + 1,
    events,
  };
}

/** The events of `status` a follower that has seen `seen` of them has not seen yet. */
export function newEvents(status: RunStatus, seen: number): RunEvent[] {
  const first = status.told - status.events.length;
  return status.events.slice(Math.max(0, seen - first));
}
