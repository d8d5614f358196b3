import type { MachineName } from '../../machines/index.js';

/** The virtual object every run of an instance goes through; its key is "CLUSTER/INSTANCE". */
export const INSTANCE_OBJECT = 'instance';

/** The handlers that run a machine, by the machine they run. */
export const RUN_HANDLERS = {
  migrate: 'migration',
  cleanup: 'cleanup',
  failover: 'failover',
  rejoin: 'rejoin',
  replaceSecondary: 'changeSecondary',
} as const satisfies Record<string, MachineName>;
export type RunHandler = keyof typeof RUN_HANDLERS;

/** The virtual object that holds a node's slots across workers; its key is "CLUSTER/NODE". */
export const NODE_OBJECT = 'node';

/** The virtual object an evacuation runs in; its key is "CLUSTER/NODE". */
export const EVACUATION_OBJECT = 'evacuation';

/** Where an evacuation's runs report their ends; its key is "CLUSTER/NODE/EVACUATION-INVOCATION". */
export const RUN_LOG_OBJECT = 'evacuationRuns';

/** The handler that runs each machine (the inverse of RUN_HANDLERS). */
export const HANDLER_OF = Object.fromEntries(Object.entries(RUN_HANDLERS).map(([h, k]) => [k, h])) as Record<
  MachineName,
  RunHandler
>;
