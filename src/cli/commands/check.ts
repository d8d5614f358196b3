import {
  DEFAULT_LIMITS,
  type DiskStatus,
  effectSchemas,
  judgeReadiness,
  type Readiness,
  type RunningInstance,
} from '../../../machines/index.js';
import type { Command } from '../command.js';
import { instanceName } from '../input.js';
import { readEffects } from '../reads.js';

export const check: Command = {
  name: 'check',
  summary:
    'whether an instance could be migrated now, and what a failover away from its primary would rest on',
  args: [{ name: 'INSTANCE', optional: true }],
  oneOf: ['cluster', 'world'],
  options: ['cluster', 'world', 'json'],
  description: `Reads the instance's nodes, changing nothing: where it runs, its disks on both nodes (and on
its tiebreaker), and says whether a migration to its secondary would pass its checks now (the
disks Connected and UpToDate on both, single-master, auto-promote off, the target's quorum-lost
handler where the instance has selfFenceMs) and what a failover away from its primary would rest on
were the primary to go silent: DRBD quorum as the proof that it cannot write (selfFenceMs set, the
primary's own quorum-lost handler, quorum held on both, the tiebreaker connected to the secondary),
or the operator's --source-is-down. A migration reads the target's handler before it makes that node the primary; the
primary the cluster file starts with is read only here. Without INSTANCE, every instance of the file,
each line led by its name.

Exit codes: 0 both hold, for every instance checked (without selfFenceMs a failover resting on
--source-is-down is as meant: said, not a problem); 1 a migration would be refused, or a failover
could not rest on quorum as selfFenceMs means it to (each said, with what to do); 2 bad input (an
instance the file does not know).`,
  examples: [
    'drbd-migrate check web1 --cluster cluster.yaml',
    'drbd-migrate check --cluster cluster.yaml',
    'drbd-migrate check web1 --world /tmp/w.json --json',
  ],
  async run({ args, values, io }) {
    const named = args.INSTANCE === undefined ? null : instanceName(args.INSTANCE);
    const { effects, close } = await readEffects(values, named);
    try {
      const instances =
        named !== null
          ? [named]
          : effectSchemas.listInstances.output
              .parse(
                await effects.listInstances(
                  { timeoutMs: DEFAULT_LIMITS.stepTimeoutMs },
                  AbortSignal.timeout(DEFAULT_LIMITS.stepTimeoutMs),
                ),
              )
              .map((c) => c.name)
              .sort();
      let ready = true;
      for (const instance of instances) {
        const readiness = await readinessOf(effects, instance);
        ready &&= readiness.migration === null && readiness.failover === null;
        const lead = named === null ? `${instance}: ` : '';
        if (values.json === true) io.out(JSON.stringify({ type: 'check', instance, ...readiness }));
        else {
          for (const line of readiness.holds) io.out(`${lead}ok: ${line}`);
          if (readiness.migration !== null) io.out(`${lead}migration: ${readiness.migration}`);
          if (readiness.failover !== null) io.out(`${lead}failover: ${readiness.failover}`);
        }
      }
      return ready ? 0 : 1;
    } finally {
      close();
    }
  },
};

/** The reads a readiness is judged from; a node that does not answer is what is said of it. */
async function readinessOf(
  effects: Awaited<ReturnType<typeof readEffects>>['effects'],
  instance: string,
): Promise<Readiness> {
  const timeoutMs = DEFAULT_LIMITS.stepTimeoutMs;
  const signal = AbortSignal.timeout(timeoutMs);
  const config = effectSchemas.getInstance.output.parse(
    await effects.getInstance({ instance, timeoutMs }, signal),
  );
  // Without a second node there is nothing to read: the config's own check says so.
  if (config.secondaryNode === null) return judgeReadiness(config, {}, {}, null);
  const nodes: [string, string] = [config.primaryNode, config.secondaryNode];
  let lists: Record<string, RunningInstance[]>;
  let status: Record<string, DiskStatus[]> = {};
  try {
    lists = effectSchemas.instanceList.output.parse(
      await effects.instanceList({ instance, nodes, timeoutMs }, signal),
    );
    if (config.diskTemplate === 'drbd')
      status = effectSchemas.diskStatus.output.parse(
        await effects.diskStatus({ instance, nodes, disks: config.disks, timeoutMs }, signal),
      );
  } catch (error) {
    const text = `Cannot read ${nodes.join(' and ')} (${(error as Error).message}): nothing is known of ${instance} there`;
    return { migration: text, failover: text, holds: [] };
  }
  // The tiebreaker's link that a silent primary leaves: the one to the secondary.
  const tiebreaker = config.tiebreaker;
  const tiebreakerDisks =
    tiebreaker === null
      ? null
      : await effects
          .diskStatus(
            { instance, nodes: [tiebreaker, config.secondaryNode], disks: config.disks, timeoutMs },
            signal,
          )
          .then((answer) => effectSchemas.diskStatus.output.parse(answer)[tiebreaker] ?? null)
          .catch((error: Error) => ({ unread: error.message }));
  return judgeReadiness(config, lists, status, tiebreakerDisks);
}
