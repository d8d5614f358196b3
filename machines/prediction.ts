import { type Convergence, MAX_DOWNTIME_MS } from './convergence.js';

/**
 * What a live memory copy will take, known before it starts: from the guest's memory, the rate it
 * dirties memory at (QEMU's calc-dirty-rate, measured without migrating), and the copy's policy.
 * The model is QEMU's precopy: each pass sends what the last one left at the bandwidth limit, and
 * what the guest dirtied meanwhile is the next pass, never more than its memory; the copy ends once a
 * pass's remainder fits in the downtime limit. The policy's stages come in its order: a stalled copy
 * (passes no longer shrinking) gets its downtime raised to the cap, then its CPUs throttled
 * (auto-converge: 20 %, then 10 % more each pass, up to 99 %), then postcopy, which always finishes.
 */

/** QEMU's own default for calc-dirty-rate: pages sampled per GiB of guest memory. */
export const SAMPLE_PAGES = 512;

export type CopyStage = 'asIs' | 'raisedDowntime' | 'autoConverge' | 'postcopy';

export interface CopyPrediction {
  /** Whether the copy finishes with what the policy allows. */
  converges: boolean;
  /** The last stage the copy needs (null: none helps). */
  stage: CopyStage | null;
  /** Dirty passes, the first (full) one included. */
  passes: number;
  /** The copy's time, seconds, its final downtime included. */
  copySeconds: number;
  /** The guest's pause at the switch-over, ms (postcopy: the switch itself, counted as 0). */
  downtimeMs: number;
  /** One line for people: what is predicted, and why. */
  says: string;
}

export interface CopyFacts {
  memoryMiB: number;
  dirtyMiBps: number;
  policy: Convergence;
  /** A live copy (a non-live one pauses the guest: one pass, never dirtied). */
  live: boolean;
  /**
   * The measurement's window, seconds. Page sampling counts a page once per window, so the rate it
   * gives may be a working set rewritten within the window rather than a stream: given the window,
   * a pass is taken to dirty no more than one window's worth (the most hopeful reading; without it,
   * the dirty set grows with the pass, the most doubtful one).
   */
  windowSeconds?: number;
}

/** A pass that is not at least this much smaller than the last counts as stalled. */
const SHRINK = 0.95;
const MAX_PASSES = 1_000;
const THROTTLE_INITIAL = 20;
const THROTTLE_STEP = 10;
const THROTTLE_MAX = 99;

const round = (n: number, places = 1) => Math.round(n * 10 ** places) / 10 ** places;

export function predictCopy(facts: CopyFacts): CopyPrediction {
  const { memoryMiB: memory, policy } = facts;
  const bandwidth = policy.bandwidthMiBps;
  const rate = facts.live ? facts.dirtyMiBps : 0;
  let downtimeMs = policy.downtimeMs;
  let stage: CopyStage = 'asIs';
  let throttle = 0;
  let stalls = 0;
  let remainder = memory;
  let seconds = 0;
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    const sending = remainder / bandwidth;
    // The switch-over: what this pass would send fits in the downtime limit.
    if (pass > 1 && sending * 1000 <= downtimeMs) {
      return done(stage, pass - 1, seconds + sending, sending * 1000, facts);
    }
    if (!facts.live) return done('asIs', 1, sending, sending * 1000, facts);
    seconds += sending;
    const dirtying = facts.windowSeconds === undefined ? sending : Math.min(sending, facts.windowSeconds);
    const next = Math.min(memory, rate * (1 - throttle / 100) * dirtying);
    if (throttle > 0) throttle = Math.min(THROTTLE_MAX, throttle + THROTTLE_STEP);
    stalls = next >= remainder * SHRINK ? stalls + 1 : 0;
    remainder = next;
    if (stage === 'postcopy' && pass >= policy.postcopyAfterPasses) {
      // The target runs the guest from here on and fetches what is left: no more dirty passes.
      return done('postcopy', pass, seconds + remainder / bandwidth, 0, facts);
    }
    if (stalls < policy.stallPasses) continue;
    stalls = 0;
    if (downtimeMs < Math.min(policy.downtimeCapMs, MAX_DOWNTIME_MS)) {
      downtimeMs = Math.min(policy.downtimeCapMs, downtimeMs * 2);
      stage = 'raisedDowntime';
    } else if (policy.autoConverge && throttle === 0) {
      throttle = THROTTLE_INITIAL;
      stage = 'autoConverge';
    } else if (policy.autoConverge && throttle < THROTTLE_MAX) {
      // Still being throttled harder each pass.
    } else if (policy.postcopy) {
      stage = 'postcopy';
      if (pass >= policy.postcopyAfterPasses)
        return done('postcopy', pass, seconds + remainder / bandwidth, 0, facts);
    } else {
      return never(facts, remainder, downtimeMs, pass, seconds);
    }
  }
  return never(facts, remainder, downtimeMs, MAX_PASSES, seconds);
}

function done(stage: CopyStage, passes: number, seconds: number, downtimeMs: number, facts: CopyFacts) {
  return {
    converges: true,
    stage,
    passes,
    copySeconds: round(seconds, 2),
    downtimeMs: Math.round(downtimeMs),
    says: `predicted: converges ${STAGE_WORDS[stage]}, ${passes} ${passes === 1 ? 'pass' : 'passes'}, about ${round(seconds)} s, downtime about ${Math.round(downtimeMs)} ms (${
      facts.live
        ? `the guest dirties ${round(facts.dirtyMiBps)} MiB/s, the copy sends`
        : 'the guest is paused for the copy, which sends'
    } ${facts.policy.bandwidthMiBps} MiB/s)`,
  };
}

function never(facts: CopyFacts, remainder: number, downtimeMs: number, passes: number, seconds: number) {
  const p = facts.policy;
  const needs = [
    `a downtime cap of ${Math.ceil((remainder / p.bandwidthMiBps) * 1000)} ms or more`,
    ...(p.autoConverge ? [] : ['auto-converge']),
    ...(p.postcopy ? [] : ['postcopy allowed']),
    'a faster link',
    'a non-live migration',
  ];
  return {
    converges: false,
    stage: null,
    passes,
    copySeconds: round(seconds, 2),
    downtimeMs: Math.round(downtimeMs),
    says: `predicted: never converges: the guest dirties ${round(facts.dirtyMiBps)} MiB/s, the copy sends ${p.bandwidthMiBps} MiB/s, and ${round(remainder)} MiB stay dirty each pass, more than ${downtimeMs} ms of downtime can send; it would move with ${needs.join(', or ')}`,
  };
}

/**
 * The two readings of one measurement: a working set rewritten within the window (hopeful) and a
 * dirty set that grows with each pass (doubtful). A copy is refused only when even the hopeful one
 * never converges; the range is what the operator is told.
 */
export interface MigrationForecast {
  hopeful: CopyPrediction;
  doubtful: CopyPrediction;
  /** Even the hopeful reading never converges: refuse before anything is touched. */
  hopeless: boolean;
  says: string;
}

export function forecastCopy(facts: CopyFacts & { windowSeconds: number }): MigrationForecast {
  const hopeful = predictCopy(facts);
  const doubtful = predictCopy({ ...facts, windowSeconds: undefined });
  const span = (a: number, b: number, unit: string) =>
    Math.round(a) === Math.round(b)
      ? `about ${Math.round(a)}${unit}`
      : `${Math.round(a)}–${Math.round(b)}${unit}`;
  const says = !hopeful.converges
    ? hopeful.says
    : !doubtful.converges
      ? `${hopeful.says.replace('predicted: ', 'predicted: if the guest rewrites the same pages, ')}; if its dirty set keeps growing it never converges, which the copy will show pass by pass`
      : `predicted: converges ${hopeful.stage === doubtful.stage ? STAGE_WORDS[hopeful.stage!] : `${STAGE_WORDS[hopeful.stage!]} or ${STAGE_WORDS[doubtful.stage!]}`}, ${hopeful.passes === doubtful.passes ? `${hopeful.passes} ${hopeful.passes === 1 ? 'pass' : 'passes'}` : `${hopeful.passes}–${doubtful.passes} passes`}, ${span(hopeful.copySeconds, doubtful.copySeconds, ' s')}, downtime ${span(hopeful.downtimeMs, doubtful.downtimeMs, ' ms')} (the guest dirties ${Math.round(facts.dirtyMiBps * 10) / 10} MiB/s, the copy sends ${facts.policy.bandwidthMiBps} MiB/s)`;
  return { hopeful, doubtful, hopeless: !hopeful.converges, says };
}

const STAGE_WORDS: Record<CopyStage, string> = {
  asIs: 'as it starts',
  raisedDowntime: 'once its downtime limit is raised',
  autoConverge: 'once the guest is throttled (auto-converge)',
  postcopy: 'by switching to postcopy',
};
