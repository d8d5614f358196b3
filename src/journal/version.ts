import { createHash } from 'node:crypto';
import type { AnyStateMachine } from 'xstate';
import { initialContext, transitionsOf } from '../../machines/index.js';

/** The context's key paths ("handover.converge.pass"): a snapshot of another layout cannot be restored. */
function shapeOf(value: unknown, at = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [at];
  return Object.entries(value).flatMap(([k, v]) => shapeOf(v, at === '' ? k : `${at}.${k}`));
}

/**
 * A short hash of a protocol machine's shape (its states and transitions, and its context's layout).
 * A journal written by a machine of another shape cannot be resumed safely: its snapshot may name
 * states or steps this one lacks, or keep its facts where this one does not look.
 */
export function machineVersion(machine: AnyStateMachine): string {
  const shape = transitionsOf(machine)
    .map((t) => `${t.key} -> ${t.targets.join(',')}`)
    .sort()
    .concat(shapeOf(initialContext({ instance: 'shape' })))
    .join('\n');
  return createHash('sha256').update(shape).digest('hex').slice(0, 12);
}
