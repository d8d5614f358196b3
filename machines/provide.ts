import type { AnyStateMachine } from 'xstate';
import type { cleanupMachine } from './cleanup.js';
import type { Effects } from './contract.js';
import { type BindOptions, effectActors } from './effects.js';
import type { failoverMachine } from './failover.js';
import type { migrationMachine } from './migration.js';
import type { rejoinMachine } from './rejoin.js';

/** The run machines this package ships, all built on the one shared setup (`protocol`). */
export type ProtocolMachine =
  | typeof migrationMachine
  | typeof cleanupMachine
  | typeof failoverMachine
  | typeof rejoinMachine;

/**
 * The typed way to give a machine its effects: plain async functions in, a machine whose every step
 * parses its answers and is cut off at its deadline out. Works for any machine built on `protocol`,
 * including users' own extensions.
 */
export function provideEffects<M extends AnyStateMachine>(
  machine: M,
  effects: Effects,
  options: BindOptions = {},
): M {
  return machine.provide({ actors: effectActors(effects, options) }) as M;
}
