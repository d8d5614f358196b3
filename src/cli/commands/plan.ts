import {
  type CopyPrediction,
  DEFAULT_LIMITS,
  effectSchemas,
  forecastCopy,
  type MigrationForecast,
  predictCopy,
  SAMPLE_PAGES,
} from '../../../machines/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { instanceName } from '../input.js';
import { readEffects } from '../reads.js';

export const plan: Command = {
  name: 'plan',
  summary: 'predict a live migration before it starts: the guest’s dirty rate, passes, time, downtime',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: ['cluster', 'world', 'non-live', 'calc-seconds', 'json'],
  description: `Reads the instance's config, asks QEMU on its primary how fast the guest dirties its memory
(calc-dirty-rate with page sampling: read-only, it takes --calc-seconds whole seconds), and predicts
the live copy from it and the copy's policy (the cluster file's bandwidth, downtime and convergence
options): how many dirty passes, how long, how long the guest pauses, and which of the policy's
stages it needs (a raised downtime, auto-converge, postcopy), or that it never converges and what
would make it move. Nothing is changed. A non-live migration (the instance's default, or --non-live)
is one pass of its whole memory, with the guest paused.

Page sampling counts a page once per window, so one measurement has two readings: a working set the
guest rewrites within the window (hopeful), or a dirty set that grows with each pass (doubtful). The
forecast gives the range between them. A live migration makes the same forecast first and refuses,
touching nothing, a copy that even the hopeful reading says never converges (the policy's
convergence.predict false skips it). QEMU samples 512 pages per GiB: a small guest is read coarsely.`,
  examples: [
    'drbd-migrate plan web1 --cluster cluster.yaml',
    'drbd-migrate plan web1 --world /tmp/w.json --calc-seconds 2 --json',
  ],
  async run({ args, values, io }) {
    const instance = instanceName(args.INSTANCE!);
    const calcSeconds = wholeSeconds(values['calc-seconds'] ?? '1');
    const { effects, policy, close } = await readEffects(values, instance);
    try {
      const timeoutMs = DEFAULT_LIMITS.stepTimeoutMs;
      const signal = AbortSignal.timeout(timeoutMs + calcSeconds * 1000);
      const config = effectSchemas.getInstance.output.parse(
        await effects.getInstance({ instance, timeoutMs }, signal),
      );
      const node = config.primaryNode;
      const live = values['non-live'] !== true && config.migrationMode === 'live';
      // A guest that cannot be measured (not running, its QEMU too old) is a refusal: nothing changed.
      const measured = live
        ? await effects
            .measureDirtyRate(
              {
                instance,
                node,
                timeoutMs: timeoutMs + calcSeconds * 1000,
                calcSeconds,
                samplePages: SAMPLE_PAGES,
              },
              signal,
            )
            .then(
              (answer) => effectSchemas.measureDirtyRate.output.parse(answer),
              (error: unknown) => {
                throw new UsageError(
                  `cannot measure the dirty rate of ${instance} on ${node}: ${(error as Error).message}`,
                );
              },
            )
        : null;
      // The same forecast the migration's prerequisites make; a non-live copy, unmeasured, has one reading.
      const facts = { memoryMiB: config.memoryMiB, dirtyMiBps: measured?.dirtyMiBps ?? 0, policy, live };
      const forecast =
        measured === null
          ? unmeasured(predictCopy(facts))
          : forecastCopy({ ...facts, windowSeconds: measured.calcSeconds });
      if (values.json === true) {
        io.out(
          JSON.stringify({
            type: 'plan',
            instance,
            node,
            memoryMiB: config.memoryMiB,
            live,
            measured,
            forecast,
          }),
        );
        return 0;
      }
      io.out(`${instance}: ${config.memoryMiB} MiB on ${node}, ${live ? 'live' : 'non-live'}`);
      if (measured !== null)
        io.out(
          `measured: dirties ${Math.round(measured.dirtyMiBps * 10) / 10} MiB/s (QEMU calc-dirty-rate, page sampling over ${measured.calcSeconds} s)`,
        );
      io.out(forecast.says);
      if (forecast.hopeless)
        io.out(
          'a migration would be refused before anything is touched (convergence.predict false tries it anyway)',
        );
      return 0;
    } finally {
      close();
    }
  },
};

/** A copy that is not measured has one reading (a non-live one sends the memory once, paused). */
const unmeasured = (p: CopyPrediction): MigrationForecast => ({
  hopeful: p,
  doubtful: p,
  hopeless: !p.converges,
  says: p.says,
});

function wholeSeconds(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 60)
    throw new UsageError(`bad --calc-seconds '${text}': expected a whole number of seconds from 1 to 60`);
  return n;
}
