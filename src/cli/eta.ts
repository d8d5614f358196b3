/**
 * The memory copy's ETA, held to one rule: it never runs backwards without a reason. Each reading
 * gives the link's bandwidth and the guest's dirty rate over the last interval (what was sent, and
 * how the remainder moved); the time left is what remains at the bandwidth less the dirty rate. The
 * end time it gives may move later only when the guest got busier or the link slower than the ETA
 * last assumed, and then it says which; otherwise a later estimate is noise and the end time stays.
 * (KubeVirt never shipped a progress figure because its estimate "can run backwards".)
 */

export interface CopyReading {
  /** The world's clock, ms. */
  at: number;
  transferredMiB: number;
  /** What is left of the current pass, MiB (null when the hypervisor does not say). */
  remainingMiB: number | null;
}

export interface EtaStep {
  /** Seconds left, or null when the copy cannot end at the rates seen (the guest outruns the link). */
  seconds: number | null;
  /** Why the end moved later, when it did ("the guest now dirties 180 MiB/s"). */
  why: string | null;
}

/** A rate must change by this much to count as a change (below it: noise between two readings). */
const MARGIN = 0.1;

const round = (n: number) => (n >= 10 ? Math.round(n) : Math.round(n * 10) / 10);

export class CopyEta {
  private last: CopyReading | null = null;
  /** The rates the current end time was computed from. */
  private assumed: { bandwidth: number; dirty: number } | null = null;
  private endsAt: number | null = null;

  observe(reading: CopyReading): EtaStep {
    const last = this.last;
    this.last = reading;
    const dt = last === null ? 0 : (reading.at - last.at) / 1000;
    if (last === null || dt <= 0 || reading.remainingMiB === null || last.remainingMiB === null)
      return this.now(reading.at);
    const sent = reading.transferredMiB - last.transferredMiB;
    const bandwidth = sent / dt;
    // What the remainder grew by beyond what was sent is what the guest dirtied meanwhile.
    const dirty = Math.max(0, (reading.remainingMiB - last.remainingMiB + sent) / dt);
    if (bandwidth <= 0) return this.now(reading.at);
    const left = dirty < bandwidth ? reading.remainingMiB / (bandwidth - dirty) : null;
    const endsAt = left === null ? null : reading.at + left * 1000;
    const busier = this.assumed !== null && dirty > this.assumed.dirty * (1 + MARGIN) + 1;
    const slower = this.assumed !== null && bandwidth < this.assumed.bandwidth * (1 - MARGIN);
    // An end that moves out to never, or to a later time (from never to a time is earlier).
    const later = endsAt === null ? this.endsAt !== null : this.endsAt !== null && endsAt > this.endsAt;
    if (this.assumed !== null && later && !busier && !slower) return this.now(reading.at);
    const why =
      this.assumed === null || !later
        ? null
        : busier
          ? `the guest now dirties ${round(dirty)} MiB/s`
          : `the link now sends ${round(bandwidth)} MiB/s`;
    this.assumed = { bandwidth, dirty };
    this.endsAt = endsAt;
    return { seconds: left, why };
  }

  /** The end time kept: the seconds left to it now. */
  private now(at: number): EtaStep {
    return { seconds: this.endsAt === null ? null : Math.max(0, (this.endsAt - at) / 1000), why: null };
  }
}
