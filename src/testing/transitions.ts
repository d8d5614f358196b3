import type { InspectionEvent } from 'xstate';
import { transitionKey } from '../../machines/describe.js';

/** An inspect callback that records the key of every transition the machine takes. */
export function recordTransitions(into: Set<string>) {
  return (event: InspectionEvent) => {
    if (event.type !== '@xstate.microstep') return;
    for (const t of event._transitions) into.add(transitionKey(t));
  };
}
