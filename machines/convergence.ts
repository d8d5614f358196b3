import { z } from 'zod';
import type { MigrationStatus } from './contract.js';

/**
 * The convergence policy of a live memory copy. A guest that dirties memory faster than the link
 * copies it never converges: each dirty pass is as big as the last, and QEMU never finds a pass small
 * enough to send within the downtime limit. Ganeti then polls forever, Proxmox doubles the downtime,
 * libvirt offers auto-converge and postcopy. Here the stages are explicit, in a fixed order, each one
 * optional but the first, and when none is left the copy is aborted and reverted, saying so.
 *
 * Progress is judged per dirty pass (QEMU's dirty-sync-count), not per poll: within one pass the
 * remaining memory always falls, and a converging and a hopeless copy look the same until a new pass
 * begins and shows how much was dirtied meanwhile.
 */

/** QEMU's max-bandwidth is bytes/s; 8 TiB/s keeps it an exact integer in JSON (below 2^53). */
export const MAX_BANDWIDTH_MIBPS = 8 * 1024 * 1024;
/** QEMU refuses a downtime-limit above 2000 s (MAX_MIGRATE_DOWNTIME_SECONDS). */
export const MAX_DOWNTIME_MS = 2_000_000;

const downtime = z
  .number()
  .int('must be a whole number of milliseconds')
  .min(1, 'must be at least 1 ms')
  .max(MAX_DOWNTIME_MS, `must be at most ${MAX_DOWNTIME_MS} ms (QEMU's limit, 2000 s)`);
const passes = z.number().int('must be a whole number of passes').min(1).max(1000);

export const Convergence = z
  .object({
    bandwidthMiBps: z
      .number()
      .min(1 / 1024, 'must be at least 1 KiB/s (0.0009765625 MiB/s)')
      .max(MAX_BANDWIDTH_MIBPS, `must be at most ${MAX_BANDWIDTH_MIBPS} MiB/s (8 TiB/s)`)
      .describe('The copy’s bandwidth limit (QEMU max-bandwidth), MiB/s, set before it starts; default 128.'),
    downtimeMs: downtime.describe(
      'The downtime limit the copy starts with (QEMU downtime-limit), ms; default 300 (QEMU’s own).',
    ),
    stallPasses: passes.describe(
      'Dirty passes in a row that are not smaller than the smallest so far before the next stage is tried; default 3.',
    ),
    downtimeCapMs: downtime.describe(
      'The downtime limit is doubled at each stall up to this; at or below downtimeMs it is never raised; default 2000.',
    ),
    autoConverge: z
      .boolean()
      .describe(
        'Then throttle the guest’s CPUs (QEMU auto-converge), when raising the downtime did not help; default false.',
      ),
    postcopy: z
      .boolean()
      .describe(
        'Then switch to postcopy (the target runs the guest and fetches what is left; the source can no longer be resumed); default false.',
      ),
    postcopyAfterPasses: passes.describe(
      'Postcopy only after this many dirty passes (Ganeti switches after 2); default 2.',
    ),
    predict: z
      .boolean()
      .describe(
        'Before a live copy, measure how fast the guest dirties memory (QEMU calc-dirty-rate) and refuse one predicted never to converge, touching nothing; default true.',
      ),
    measureSeconds: z
      .number()
      .int('must be a whole number of seconds')
      .min(1)
      .max(60)
      .describe('How long that measurement samples the guest, whole seconds; default 1.'),
  })
  .strict();
export type Convergence = z.infer<typeof Convergence>;

/** Postcopy is for live copies only: a non-live copy has no running guest to hand over early. */
export const mayPostcopy = (policy: Convergence, live: boolean | null) => policy.postcopy && (live ?? true);

export const DEFAULT_CONVERGENCE: Convergence = {
  bandwidthMiBps: 128,
  downtimeMs: 300,
  stallPasses: 3,
  downtimeCapMs: 2_000,
  autoConverge: false,
  postcopy: false,
  postcopyAfterPasses: 2,
  predict: true,
  measureSeconds: 1,
};

/** Where a copy stands against its policy: what is set now, how the passes went, what was tried. */
export interface ConvergenceState {
  downtimeMs: number;
  throttled: boolean;
  /** The throttle the hypervisor last reported, percent. */
  throttlePercent: number | null;
  postcopyStarted: boolean;
  /** The dirty pass of the last reading, and how big it was when first seen. */
  pass: number | null;
  /** The smallest pass seen so far (MiB left at its first reading). */
  smallestPassMiB: number | null;
  /** Passes in a row without headway since the last stage was taken. */
  stalledPasses: number;
  /** What the policy did, in words, in order. */
  tried: string[];
}

export function startConvergence(policy: Convergence): ConvergenceState {
  return {
    downtimeMs: policy.downtimeMs,
    throttled: false,
    throttlePercent: null,
    postcopyStarted: false,
    pass: null,
    smallestPassMiB: null,
    stalledPasses: 0,
    tried: [],
  };
}

/** A pass counts as headway when it is at least this much smaller than the smallest before it. */
const HEADWAY = 0.95;

/** Folds one reading in: a new pass is judged by its size against the smallest pass before it. */
export function observePass(state: ConvergenceState, status: MigrationStatus): ConvergenceState {
  const pass = status.passes ?? null;
  const remaining = status.remainingMiB;
  if (pass === null || remaining === null || status.status !== 'active') return state;
  const seen = { ...state, throttlePercent: status.throttlePercent ?? state.throttlePercent };
  if (state.pass !== null && pass <= state.pass) return seen;
  // The first pass copies all the memory: it says nothing about convergence.
  if (pass <= 1) return { ...seen, pass };
  const smallest = state.smallestPassMiB;
  const headway = smallest === null || remaining <= smallest * HEADWAY;
  return {
    ...seen,
    pass,
    smallestPassMiB: smallest === null ? remaining : Math.min(smallest, remaining),
    stalledPasses: headway ? 0 : state.stalledPasses + 1,
  };
}

export type Stage = 'raiseDowntime' | 'autoConverge' | 'postcopy' | 'wait' | 'giveUp';

/** Auto-converge's throttle grows pass by pass up to this (QEMU's max-cpu-throttle default). */
const FULL_THROTTLE = 99;

/**
 * What to do about a stalled copy: the next stage the policy allows, or give up. `wait` is a stage
 * still taking effect: a throttle that is still growing, or postcopy before its number of passes.
 */
export function nextStage(policy: Convergence, state: ConvergenceState): Stage {
  if (state.downtimeMs < policy.downtimeCapMs) return 'raiseDowntime';
  if (policy.autoConverge && !state.throttled) return 'autoConverge';
  // A hypervisor that does not report its throttle gets the stall count only.
  if (state.throttled && state.throttlePercent !== null && state.throttlePercent < FULL_THROTTLE)
    return 'wait';
  if (policy.postcopy && !state.postcopyStarted) {
    return (state.pass ?? 0) >= policy.postcopyAfterPasses ? 'postcopy' : 'wait';
  }
  return 'giveUp';
}

export const stalled = (policy: Convergence, state: ConvergenceState) =>
  state.stalledPasses >= policy.stallPasses;

export const raisedDowntime = (policy: Convergence, state: ConvergenceState) =>
  Math.min(policy.downtimeCapMs, state.downtimeMs * 2);

/** The outcome's words: what the policy did before it gave up. */
export function notConvergedMessage(instance: string, policy: Convergence, state: ConvergenceState): string {
  const tried =
    state.tried.length === 0 ? 'nothing (the policy allows no stage)' : state.tried.join(', then ');
  return `Could not migrate instance ${instance}: the memory copy did not converge (${policy.stallPasses} dirty passes in a row no smaller than ${Math.round(state.smallestPassMiB ?? 0)} MiB, at pass ${state.pass ?? '?'}); tried: ${tried}; nothing left to try. The guest dirties memory faster than the link copies it: allow a longer downtime (downtimeCapMs), autoConverge or postcopy, give the copy more bandwidth, or migrate it non-live`;
}
