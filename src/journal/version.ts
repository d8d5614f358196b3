import { createHash } from 'node:crypto';
import type { AnyStateMachine } from 'xstate';
import { transitionsOf } from '../testing/transitions.js';

/**
 * A short hash of a machine's shape (its states and transitions). A journal written by a machine of
 * another shape cannot be resumed safely: its snapshot may name states or steps this one lacks.
 */
export function machineVersion(machine: AnyStateMachine): string {
  const shape = transitionsOf(machine)
    .map((t) => `${t.key} -> ${t.targets.join(',')}`)
    .sort()
    .join('\n');
  return createHash('sha256').update(shape).digest('hex').slice(0, 12);
}
