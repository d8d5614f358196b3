import type { EvacuationInput, EvacuationOutput, InstanceResult } from '../../../machines/index.js';
import { simSpecOf } from '../../backend/plan.js';
import { sshEffects } from '../../backend/ssh.js';
import { loadCluster } from '../../cluster/index.js';
import { createSimCluster, type Effects } from '../../index.js';
import { EvacuationJournal, ResumeError, runEvacuationJournaled } from '../../journal/index.js';
import { followEvacuation, RestateError, submitEvacuation } from '../../restate/client.js';
import { type EvacuationOptions, type RunNotice, runEvacuation } from '../../runner/index.js';
import { inputWithLimits } from '../cluster.js';
import type { Command, Invocation } from '../command.js';
import { clusterName, isServedWorld } from '../distributed.js';
import { UsageError } from '../errors.js';
import { EvacuationView, evacuationExit } from '../evacuationView.js';
import { nodeName } from '../input.js';
import { withInterrupt } from '../interrupt.js';
import { screenOf } from '../io.js';
import { restateEndpoints } from '../restate.js';
import { journalStores } from '../stateDir.js';
import { targetOf } from '../target.js';
import { checkWritable, loadWorld, saveWorld } from '../worldFile.js';

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
    'dry-run',
    'json',
    'quiet',
    'state-dir',
    'restate',
    'restate-admin',
  ],
  conflicts: [
    { option: 'quiet', with: ['json'], why: 'choose one output: only the result, or JSON lines' },
    { option: 'dry-run', with: ['state-dir'], why: 'a dry run plans the drain and touches nothing' },
    {
      option: 'restate',
      with: ['dry-run', 'state-dir'],
      why: "Restate's workers run the drain, with Restate's journal; a dry run is local",
    },
  ],
  description: `Ganeti's gnt-node migrate: every instance whose primary is NODE moves to its secondary, each
by its own migration, journaled and locked as 'migrate' does it. At most --concurrency run at once,
and at most --per-node touch any one node (NODE's link is shared by all of them). Largest first: the
drain lasts as long as its longest copies. A run that fails does not stop the others; one left
half-done is followed by the cleanup. Instances that are down move by failover only with
--allow-failover; those that cannot move (no secondary, local disks) are listed as skipped, with why.

Ctrl-C starts nothing more and lets each run under way stop at its own safe point. If the process
dies, 'drbd-migrate resume NODE' takes the runs under way up from their journals and starts the rest.

With --restate URL the drain is one durable invocation on a Restate cluster, each instance's run a
call that any worker takes; --per-node is then also held by every worker's node slots
('drbd-migrate worker --per-node N'). Ctrl-C cancels it in Restate, with the same effect.

Exit codes: 0 every instance moved; 1 not all moved, each safe where it was; 2 rejected; 3 an
instance is left to repair (its line says what and how).`,
  examples: [
    'drbd-migrate evacuate node-a --cluster cluster.yaml --dry-run',
    'drbd-migrate evacuate node-a --cluster cluster.yaml --concurrency 4 --per-node 2',
    'drbd-migrate evacuate node-a --world /tmp/w.json --allow-failover',
  ],
  run: (call) => drain(call, false),
};

function count(values: Invocation['values'], name: 'concurrency' | 'per-node'): number | undefined {
  const text = values[name];
  if (text === undefined) return undefined;
  const n = Number(text);
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
  };
}

/**
 * The evacuation of NODE (or, with `resume`, the unfinished one recorded for it) on a world or a
 * cluster; with --restate, submitted there (or, `following` an evacuation's invocation, followed).
 */
export async function drain(
  call: Invocation,
  resume: boolean,
  following?: { id: string; ended: EvacuationOutput | null },
): Promise<number> {
  const { values, io } = call;
  const node = nodeName(call.args.NODE ?? call.args.INSTANCE!);
  const target = targetOf(values);
  let input = inputOf(node, values);
  const json = values.json === true;
  // What the block counts as waiting: the node's primary instances, as the config says at the start.
  let planned = 0;
  const view = new EvacuationView(screenOf(io, json || values.quiet === true), node, () => planned);
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
  const finish = (out: EvacuationOutput, dryRun = false) => {
    if (json) io.out(JSON.stringify({ type: 'result', ...(dryRun ? { dryRun: true } : {}), ...out }));
    else for (const l of view.finish(out)) io.out(`${dryRun ? '# planned: ' : ''}${l}`);
    const code = evacuationExit(out);
    if (code !== 0) io.err(`drbd-migrate: ${out.outcome}: ${out.error ?? reasonOf(out.results)}`);
    return code;
  };

  if (values.restate !== undefined) {
    planned = await primariesOf(values, node).catch(() => 0);
    return drainOnRestate(call, input, view, onRun, finish, following);
  }
  // Where it acts: a world file's simulated cluster, saved after each step; or real nodes.
  let effects: Effects;
  let close = () => {};
  let clock: EvacuationOptions['clock'];
  if (target.kind === 'world') {
    const world = await loadWorld(target.file);
    if (world.nodes[node] === undefined)
      throw new UsageError(`node ${node} is not in world file ${target.file}`);
    planned = Object.values(world.config.instances).filter((i) => i.primaryNode === node).length;
    const sim = createSimCluster(world);
    if (values['dry-run'] !== true) {
      await checkWritable(target.file);
      sim.afterStep = () => saveWorld(target.file, sim.snapshot());
    }
    effects = sim.effects;
    clock = sim.clock;
  } else {
    const cluster = await loadCluster(target.file);
    if (!cluster.nodes.some((n) => n.name === node))
      throw new UsageError(`node ${node} is not in ${target.file}`);
    // The cluster file's deadlines and copy policy apply to every run.
    const { limits, convergence } = inputWithLimits(cluster, { instance: node });
    input = { ...input, ...(limits ? { limits } : {}), ...(convergence ? { convergence } : {}) };
    if (values['dry-run'] === true) {
      const sim = createSimCluster(simSpecOf(cluster));
      effects = sim.effects;
      clock = sim.clock;
    } else {
      const backend = await sshEffects(target.file);
      effects = backend.effects;
      close = () => backend.close();
    }
  }
  try {
    if (values['dry-run'] === true) {
      io.out(`# dry run of the evacuation of ${node} on a copy: nothing is touched`);
      const out = await runEvacuation(input, effects, {
        ...(clock === undefined ? {} : { clock }),
        onRun: (n) => {
          if (n.phase === 'start')
            io.out(
              `# would ${n.request.operation === 'failover' ? 'fail over' : 'migrate'} ${n.request.instance} to ${n.request.target}`,
            );
        },
      });
      return finish(out, true);
    }
    const stores = await journalStores(values, target);
    const evacuations = new EvacuationJournal(stores.stateDir);
    const out = await withInterrupt(io, view, { target, journaled: true }, ({ abort }) =>
      runEvacuationJournaled(
        input,
        effects,
        {
          store: stores.store,
          locks: stores.locks,
          evacuations,
          where: stores.where,
          abort,
          onRun,
          onInstanceEvent,
          ...(clock === undefined ? {} : { clock }),
        },
        resume,
      ).catch((error: unknown) => {
        if (error instanceof ResumeError) throw new UsageError(error.message);
        throw error;
      }),
    );
    return finish(out);
  } finally {
    close();
  }
}

function reasonOf(results: InstanceResult[]): string {
  const notMoved = results.filter((r) => r.outcome !== 'migrated' && r.outcome !== 'failedOver');
  return `${notMoved.length} instance(s) not moved: ${notMoved
    .slice(0, 5)
    .map((r) => `${r.instance} ${r.outcome}`)
    .join(', ')}${notMoved.length > 5 ? ', …' : ''}`;
}

/** Is there an unfinished evacuation of NAME under the state directory? (resume asks.) */
export async function evacuationRecorded(stateDir: string, name: string): Promise<boolean> {
  return (await new EvacuationJournal(stateDir).read(name).catch(() => null)) !== null;
}

/** The drain submitted to a Restate cluster and followed there (its runs spread over every worker). */
async function drainOnRestate(
  call: Invocation,
  input: EvacuationInput,
  view: EvacuationView,
  onRun: (n: RunNotice) => void,
  finish: (out: EvacuationOutput) => number,
  following?: { id: string; ended: EvacuationOutput | null },
): Promise<number> {
  const { values, io } = call;
  if (following?.ended) return finish(following.ended);
  const endpoints = restateEndpoints(values);
  const cluster = await clusterName(values);
  let id: string;
  try {
    id = following?.id ?? (await submitEvacuation(endpoints, cluster, input));
  } catch (error) {
    if (error instanceof RestateError) throw new UsageError(error.message);
    throw error;
  }
  const out = await withInterrupt(io, view, { target: targetOf(values), journaled: true }, ({ abort }) =>
    followEvacuation(endpoints, cluster, input.node, id, { onNotice: onRun, abort }),
  );
  return finish(out);
}

/** How many instances name NODE as primary, as the world or the cluster file says now (the view's count). */
async function primariesOf(values: Invocation['values'], node: string): Promise<number> {
  if (values.cluster !== undefined) {
    return (await loadCluster(values.cluster)).instances.filter((i) => i.primary === node).length;
  }
  const world = isServedWorld(values.world)
    ? ((await (await fetch(new URL('/world', values.world))).json()) as {
        config: { instances: Record<string, { primaryNode: string }> };
      })
    : await loadWorld(values.world!);
  return Object.values(world.config.instances).filter((i) => i.primaryNode === node).length;
}
