import type { Effects } from './contract.js';
import { type BindOptions, effectActors } from './effects.js';
import type { migrationMachine } from './migration.js';

/** Both machines share one setup, so one type describes either. */
export type ProtocolMachine = typeof migrationMachine;

/**
 * The typed way to give a machine its effects: plain async functions in, a machine whose every step
 * parses its answers and is cut off at its deadline out.
 */
export function provideEffects<M extends ProtocolMachine>(
  machine: M,
  effects: Effects,
  options: BindOptions = {},
): M {
  return machine.provide({ actors: effectActors(effects, options) }) as M;
}
