/**
 * drbd-migrate: the machines (re-exported from drbd-migrate/machines), the runner that drives them,
 * and the simulated cluster, the embedded default backend.
 */
export * from '../machines/index.js';
export * from './cluster/index.js';
export * from './journal/index.js';
export * from './runner/index.js';
export * from './sim/index.js';
