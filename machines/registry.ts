import type { AnyStateMachine } from 'xstate';
import { changeSecondaryMachine } from './changeSecondary.js';
import { cleanupMachine } from './cleanup.js';
import { evacuationMachine } from './evacuation.js';
import { failoverMachine } from './failover.js';
import { migrationMachine } from './migration.js';
import { rejoinMachine } from './rejoin.js';

/** Every machine this package ships, by the name journals, tests, diagrams and the CLI use. */
export const MACHINES = {
  migration: migrationMachine,
  cleanup: cleanupMachine,
  failover: failoverMachine,
  rejoin: rejoinMachine,
  changeSecondary: changeSecondaryMachine,
} as const;

export type MachineName = keyof typeof MACHINES;
export const MACHINE_NAMES = Object.keys(MACHINES) as MachineName[];

/**
 * Every machine the package draws, explains and documents: the run machines and the evacuation
 * (which schedules runs of them).
 */
export const MACHINES_TO_DRAW: Record<string, AnyStateMachine> = {
  ...MACHINES,
  evacuation: evacuationMachine,
};
