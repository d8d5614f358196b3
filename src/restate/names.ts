import type { MachineName } from '../../machines/index.js';

/** The virtual object every run of an instance goes through; its key is "CLUSTER/INSTANCE". */
export const INSTANCE_OBJECT = 'instance';

/** The handlers that run a machine, by the machine they run. */
export const RUN_HANDLERS = {
  migrate: 'migration',
  cleanup: 'cleanup',
  failover: 'failover',
  rejoin: 'rejoin',
} as const satisfies Record<string, MachineName>;
export type RunHandler = keyof typeof RUN_HANDLERS;
