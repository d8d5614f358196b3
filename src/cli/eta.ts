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

/**
 * The whole run's ETA: the DRBD resync the run waits for before its copy, then the copy. Before the
 * copy starts, the copy counts as its prediction said (the measurement before it); once it runs, as
 * its own ETA says. The same rule holds: the end moves later only when the resync slowed down, or
 * the copy's ETA gives its reason, or the copy turns out longer than predicted; and then it says so.
 */
export class RunEta {
  private readonly copy = new CopyEta();
  private predictedCopy = 0;
  private copying = false;
  private copyEstimated = false;
  private sync: { at: number; percent: number } | null = null;
  /** The resync rate the current end was computed from, % per second. */
  private syncRate: number | null = null;
  /** A new resync began (its percentage started again): its first estimate may move the end. */
  private resyncAgain = false;
  private endsAt: number | null = null;

  /** The copy's prediction, said before it starts. */
  forecast(copySeconds: number): void {
    this.predictedCopy = copySeconds;
  }

  observeSync(percent: number, at: number): EtaStep {
    const last = this.sync;
    this.sync = { at, percent };
    if (last === null || at <= last.at) return this.now(at);
    if (percent < last.percent) {
      // Back to single-master, the disks resync what was written while they were apart.
      this.resyncAgain = this.endsAt !== null;
      this.syncRate = null;
      return this.now(at);
    }
    const rate = (percent - last.percent) / ((at - last.at) / 1000);
    if (rate <= 0) return this.now(at);
    const endsAt = at + ((100 - percent) / rate + (this.copying ? 0 : this.predictedCopy)) * 1000;
    const slower = this.syncRate !== null && rate < this.syncRate * (1 - MARGIN);
    const later = this.endsAt !== null && endsAt > this.endsAt;
    if (later && !slower && !this.resyncAgain) return this.now(at);
    const why = !later
      ? null
      : this.resyncAgain
        ? 'the disks resync again'
        : `the resync now goes at ${round(rate)} % a second`;
    this.resyncAgain = false;
    this.syncRate = rate;
    this.endsAt = endsAt;
    return { seconds: (endsAt - at) / 1000, why };
  }

  observeCopy(reading: CopyReading): EtaStep {
    this.copying = true;
    const step = this.copy.observe(reading);
    // Until the copy has an estimate of its own, the run's end stays the one predicted.
    if (!this.copyEstimated && step.seconds === null && step.why === null) return this.now(reading.at);
    this.copyEstimated = true;
    const endsAt = step.seconds === null ? null : reading.at + step.seconds * 1000;
    const later = endsAt === null ? this.endsAt !== null : this.endsAt !== null && endsAt > this.endsAt;
    const why = step.why ?? (later ? 'the copy goes slower than predicted' : null);
    this.endsAt = endsAt;
    return { seconds: step.seconds, why };
  }

  private now(at: number): EtaStep {
    return { seconds: this.endsAt === null ? null : Math.max(0, (this.endsAt - at) / 1000), why: null };
  }
}
