import type {
  Effects,
  EvacuationInput,
  EvacuationOutput,
  InstanceConfig,
  InstanceResult,
} from '../../../machines/index.js';
import { planEvacuation } from '../../../machines/index.js';
import { simSpecOf } from '../../backend/plan.js';
import { loadCluster } from '../../cluster/index.js';
import { ResumeError } from '../../journal/index.js';
import { type EvacuationOptions, type RunNotice, runEvacuation } from '../../runner/index.js';
import { createSimCluster, type SimClock } from '../../sim/index.js';
import { evacuationWithCluster } from '../cluster.js';
import type { Command, Invocation } from '../command.js';
import { primariesNow } from '../distributed.js';
import { UsageError } from '../errors.js';
import { EvacuationView, evacuationExit } from '../evacuationView.js';
import { nodeName } from '../input.js';
import { withInterrupt } from '../interrupt.js';
import { screenOf } from '../io.js';
import { openSession, restateRefusal, type Session } from '../runtime.js';
import { targetOf } from '../target.js';
import { loadWorld } from '../worldFile.js';

export const evacuate: Command = {
  name: 'evacuate',
  summary: 'drain a node: migrate every instance whose primary it is to its secondary',
  args: [{ name: 'NODE' }],
  oneOf: ['cluster', 'world'],
  options: [
    'cluster',
    'world',
    'concurrency',
    'per-node',
    'non-live',
    'allow-failover',
    'secondaries',
    'all',
    'deadline',
    'dry-run',
    'json',
    'quiet',
    'state-dir',
    'restate',
    'restate-admin',
  ],
  conflicts: [
    { option: 'all', with: ['secondaries'], why: '--all moves the primaries and replaces the secondaries' },
    { option: 'quiet', with: ['json'], why: 'choose one output: only the result, or JSON lines' },
    { option: 'dry-run', with: ['state-dir'], why: 'a dry run plans the drain and touches nothing' },
    {
      option: 'deadline',
      with: ['restate'],
      why: 'on Restate the deadline would have to be a durable timer of the drain, which is not built',
    },
    {
      option: 'restate',
      with: ['dry-run', 'state-dir'],
      why: "Restate's workers run the drain, with Restate's journal; a dry run is local",
    },
  ],
  description: `Ganeti's gnt-node migrate: every instance whose primary is NODE moves to its secondary, each
by its own migration, journaled and locked as 'migrate' does it. At most --concurrency run at once,
and at most --per-node touch any one node (NODE's link is shared by all of them). Longest first: the
drain lasts as long as its longest copies. Before anything moves, each live copy's guest is
measured (QEMU's calc-dirty-rate, one at a time, one second each unless the copy policy says
otherwise; off with the policy's predict: false), the queue is ordered by the predicted times, and
the drain's length is said (its copies and resyncs under the limits; a new secondary's resync at
the cluster file's resyncMiBps, default 100). The view shows each run against its prediction and
the summary what the drain took. A measurement that fails is a warning: that guest and those after
it count as one pass of their memory. A run that fails does not stop the others; one left
half-done is followed by the cleanup. Instances that are down move by failover only with
--allow-failover; those that cannot move (no secondary, local disks) are listed as skipped, with why.

Ctrl-C starts nothing more and lets each run under way stop at its own safe point. --deadline
DURATION does the same by itself once DURATION has passed (from the start, or from a resume): runs
under way end as they would, one left half-done still gets its repair, and every instance not
started is listed as such (exit 1), so that a drain cannot outlast its maintenance window. If the process
dies, 'drbd-migrate resume NODE' takes the runs under way up from their journals and starts the rest.

With --secondaries the node's secondaries go instead: every instance whose secondary is NODE gets
a new one (as 'replace-secondary' does it: DRBD 8.4's break-before-make, its one-copy window said
before it opens; DRBD 9's make-before-break, two copies throughout), on a node chosen as replace-secondary chooses it, each choice counting against
the room, memory and secondaries of the nodes for the next. With --all the node is emptied: marked
drained in the config (nothing new is placed there; 'drbd-migrate undrain NODE' takes the mark
back), its primaries moved, then every instance whose secondary it is (those just moved off it
included) given a new one. Afterwards NODE holds no primary, no secondary, no volume and no DRBD
device of any instance, or each instance that still has something there is listed with why. At the
end the drain reads NODE itself and says what it still holds; a DRBD device or volume that no listed
instance accounts for (a copy the cluster file does not name, a leftover) keeps it incomplete (exit
1) and is left where it is. A resync shares the nodes' links like a memory copy: --per-node counts
both.

With --restate URL the drain is one durable invocation on a Restate cluster, each instance's run a
call that any worker takes; --per-node is then also held by every worker's node slots
('drbd-migrate worker --per-node N'). Ctrl-C cancels it in Restate, with the same effect.

Exit codes: 0 every instance moved (and with --secondaries or --all, given its new secondary); 1 not all moved, each safe where it was; 2 rejected; 3 an
instance is left to repair (its line says what and how).`,
  examples: [
    'drbd-migrate evacuate node-a --cluster cluster.yaml --dry-run',
    'drbd-migrate evacuate node-a --cluster cluster.yaml --concurrency 4 --per-node 2',
    'drbd-migrate evacuate node-a --world /tmp/w.json --allow-failover',
    'drbd-migrate evacuate node-b --cluster cluster.yaml --all --allow-failover --dry-run',
  ],
  run: (call) => drain(call, false),
};

function count(values: Invocation['values'], name: 'concurrency' | 'per-node'): number | undefined {
  const text = values[name];
  if (text === undefined) return undefined;
  // Digits only: "1e3" and "0x10" are numbers to Number(), not to an operator.
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 1024) {
    throw new UsageError(`bad --${name} '${text}': expected a whole number from 1 to 1024`);
  }
  return n;
}

function inputOf(node: string, values: Invocation['values']): EvacuationInput {
  const concurrency = count(values, 'concurrency');
  const perNode = count(values, 'per-node');
  return {
    node,
    ...(concurrency === undefined ? {} : { concurrency }),
    ...(perNode === undefined ? {} : { perNode }),
    ...(values['non-live'] === true ? { mode: 'non-live' as const } : {}),
    ...(values['allow-failover'] === true ? { allowFailover: true } : {}),
    ...(values.secondaries === true ? { primaries: false, secondaries: true } : {}),
    ...(values.all === true ? { secondaries: true, drain: true } : {}),
    ...(values.deadline === undefined ? {} : { deadlineMs: duration(values.deadline) }),
  };
}

/** "90s", "45m", "2h30m": whole hours, minutes and seconds, in that order. */
function duration(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  const ms = m === null ? 0 : ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
  if (m === null || ms <= 0 || ms > 2_147_483_647)
    throw new UsageError(
      `bad --deadline '${text}': expected a duration such as 90s, 45m or 2h30m (at most 24 days)`,
    );
  return ms;
}

/**
 * The evacuation of NODE on the runtime the command line names, or with `resume` the unfinished one
 * recorded for it (its runs under way taken up first); --dry-run plans it on a copy.
 */
export async function drain(call: Invocation, resume: boolean, opened?: Session): Promise<number> {
  const { values, io } = call;
  const node = nodeName(call.args.NODE ?? call.args.INSTANCE!);
  const input = inputOf(node, values);
  const json = values.json === true;
  // What the block counts as waiting: the node's primary instances, as the config says at the start.
  let planned = 0;
  // The world's clock once the session has one (simulated time on a world file).
  let now: () => number = Date.now;
  const view = new EvacuationView(
    screenOf(io, json || values.quiet === true),
    node,
    () => planned,
    () => now(),
  );
  const onRun = (n: RunNotice) => {
    if (json) {
      const { request } = n;
      io.out(
        JSON.stringify({
          type: 'run',
          phase: n.phase,
          instance: request.instance,
          operation: request.operation,
          target: request.target,
          ...(n.phase === 'end' ? { outcome: n.output?.outcome ?? null } : {}),
        }),
      );
    } else view.onRun(n);
  };
  const onInstanceEvent: EvacuationOptions['onInstanceEvent'] = (instance, event) => {
    if (json) io.out(JSON.stringify({ instance, ...event }));
    else view.onInstanceEvent(instance, event);
  };
  const onEvent: EvacuationOptions['onEvent'] = (event) => {
    if (json) io.out(JSON.stringify(event));
    else view.onEvent(event);
  };
  const finish = (out: EvacuationOutput, dryRun = false) => {
    if (json) io.out(JSON.stringify({ type: 'result', ...(dryRun ? { dryRun: true } : {}), ...out }));
    else for (const l of view.finish(out)) io.out(`${dryRun ? '# planned: ' : ''}${l}`);
    const code = evacuationExit(out);
    if (code !== 0) io.err(`drbd-migrate: ${out.outcome}: ${out.error ?? reasonOf(out.results)}`);
    return code;
  };
  if (values['dry-run'] === true) {
    // A dry run's own lines are marked as planned; the drain's forecast too.
    const saidPlanned: EvacuationOptions['onEvent'] = (event) =>
      !json && event.type === 'feedback' ? io.out(`# ${event.message}`) : onEvent(event);
    const out = await dryRunDrain(call, input, saidPlanned, (clock) => {
      now = () => clock.now();
    });
    return finish(out, true);
  }

  const session = opened ?? (await openSession(call, { node, operation: `evacuation of ${node}` }));
  const sim = session.sim;
  if (sim !== null) now = () => sim.clock.now();
  try {
    // What the drain will run (not what it skips): planned as the evacuation plans it, where this
    // process holds the config; elsewhere the node's primaries.
    planned =
      session.sim !== null
        ? plannedRuns(node, Object.values(session.sim.world.config.instances), input)
        : [...(await primariesNow(values).catch(() => new Map<string, string>())).values()].filter(
            (p) => p === node,
          ).length;
    const ended = resume ? await session.runtime.evacuationStatus(node) : null;
    // On Restate a drain may have ended while no client followed it: reported as it ended.
    if (ended?.output != null) return finish(ended.output);
    const out = await withInterrupt(
      io,
      view,
      { target: session.target, journaled: true },
      async ({ abort }) => {
        const follow = { onRun, onInstanceEvent, onEvent, abort };
        if (!resume) return session.runtime.evacuate(session.prepareEvacuation(input), follow);
        const resumed = await session.runtime.resumeEvacuation(node, follow);
        if (resumed === null)
          throw new ResumeError(
            `there is no unfinished evacuation of ${node} to resume; run evacuate ${node}`,
          );
        return resumed;
      },
    ).catch((error: unknown) => {
      if (error instanceof ResumeError) throw new UsageError(error.message);
      throw restateRefusal(error, node, session.target);
    });
    return finish(out);
  } finally {
    if (opened === undefined) await session.close();
  }
}

/** How many instances the drain will run (each counted once, a move and its replace together). */
function plannedRuns(node: string, configs: InstanceConfig[], input: EvacuationInput): number {
  const everywhere = Object.fromEntries(configs.map((c) => [c.name, node]));
  return planEvacuation(node, configs, input.allowFailover === true, undefined, {
    primaries: input.primaries !== false,
    secondaries: input.secondaries === true,
    placements: everywhere,
    unplaced: {},
  }).queue.length;
}

/** --dry-run: the drain planned and run on a simulated copy, each start printed; nothing is touched. */
async function dryRunDrain(
  call: Invocation,
  input: EvacuationInput,
  onEvent: EvacuationOptions['onEvent'],
  useClock: (clock: SimClock) => void,
): Promise<EvacuationOutput> {
  const { values, io } = call;
  const target = targetOf(values);
  let effects: Effects;
  let clock: SimClock;
  let asked = input;
  if (target.kind === 'world') {
    const world = await loadWorld(target.file);
    if (world.nodes[input.node] === undefined)
      throw new UsageError(`node ${input.node} is not in world file ${target.file}`);
    const sim = createSimCluster(world);
    effects = sim.effects;
    clock = sim.clock;
    asked = { resyncMiBps: world.settings.resyncKiBps / 1024, ...input };
  } else {
    const cluster = await loadCluster(target.file);
    if (!cluster.nodes.some((n) => n.name === input.node))
      throw new UsageError(`node ${input.node} is not in ${target.file}`);
    asked = evacuationWithCluster(cluster, input);
    const sim = createSimCluster(simSpecOf(cluster));
    effects = sim.effects;
    clock = sim.clock;
  }
  io.out(`# dry run of the evacuation of ${input.node} on a copy: nothing is touched`);
  useClock(clock);
  return runEvacuation(asked, effects, {
    clock,
    ...(onEvent === undefined ? {} : { onEvent }),
    onRun: (n) => {
      if (n.phase === 'start')
        io.out(
          n.request.operation === 'changeSecondary'
            ? `# would give ${n.request.instance} the new ${n.request.input.replaceCopy === 'thirdCopy' ? 'third copy' : 'secondary'} ${n.request.target}`
            : `# would ${n.request.operation === 'failover' ? 'fail over' : 'migrate'} ${n.request.instance} to ${n.request.target}`,
        );
    },
  });
}

function reasonOf(results: InstanceResult[]): string {
  const notMoved = results.filter(
    (r) => !['migrated', 'failedOver', 'replaced'].includes(r.outcome) || r.error !== undefined,
  );
  return `${notMoved.length} instance(s) not moved: ${notMoved
    .slice(0, 5)
    .map((r) => `${r.instance} ${r.outcome}`)
    .join(', ')}${notMoved.length > 5 ? ', …' : ''}`;
}
