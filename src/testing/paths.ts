import {
  __unsafe_getAllOwnEventDescriptors,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type EventObject,
} from 'xstate';
import { getAdjacencyMap, getShortestPaths, type StatePath, type TraversalOptions } from 'xstate/graph';
import {
  type EffectName,
  isSharedStorage,
  MACHINES,
  type MachineName,
  type ProtocolContext,
  type ProtocolInput,
} from '../../machines/index.js';
import { stateKey } from '../runner/index.js';
import type { Perturbation } from '../sim/index.js';
import { type Recipe, THREE_NODES, VARIANTS, type Variant } from './variants.js';

/** What the replay does at one call: fail it, hang it, lose its answer, or perturb the world first. */
export type PlanAction = 'error' | 'hang' | 'lost' | 'abort' | Perturbation;

export interface PlanEntry {
  /** The state that makes the call (dotted state value). */
  state: string;
  effect: EffectName;
  /** The nth call of this effect from this state in the run. */
  occurrence: number;
  action: PlanAction;
}

export interface PathStep {
  /** The state the machine was in when the event came. */
  from: string;
  event: string;
  variant: string | null;
  to: string;
}

export interface GeneratedPath {
  machine: MachineName;
  /** Readable: "getInstance ✓drbd → instanceList ✓onSource → … → acceptInstance ✗". */
  description: string;
  steps: PathStep[];
  /** The state the path ends in. */
  target: string;
  recipe: Recipe;
  plan: PlanEntry[];
}

type VariantEvent = EventObject & { output?: unknown; error?: unknown; variant?: string };

const EFFECT_EVENT = /^xstate\.(done|error)\.actor\.(.+)$/;

/** The effect outcomes offered in a snapshot: an error, and every answer that can happen there. */
function eventsFor(snapshot: AnyMachineSnapshot): VariantEvent[] {
  const context = snapshot.context as ProtocolContext;
  return __unsafe_getAllOwnEventDescriptors(snapshot).flatMap((type: string): VariantEvent[] => {
    // The operator may abort in any state that is waiting on an effect.
    if (type === 'ABORT') return Object.keys(snapshot.children).length > 0 ? [{ type }] : [];
    const m = EFFECT_EVENT.exec(type);
    if (m === null) return [];
    const effect = m[2] as EffectName;
    if (m[1] === 'error') return [{ type, error: new Error(`${effect} failed`) }];
    const variants: Variant[] = VARIANTS[effect] ?? [{ name: 'ok', output: () => undefined }];
    return variants
      .filter((v) => v.applies?.(snapshot) ?? true)
      .map((v) => ({ type, output: v.output(context), variant: v.name }));
  });
}

/**
 * The vertex identity: the state plus the context facts a guard reads there, each only where it is
 * read. Timestamps and percentages are left out, or every poll would be a new vertex.
 */
function vertexOf(snapshot: AnyMachineSnapshot): string {
  const c = snapshot.context as ProtocolContext;
  const at = (state: string) => snapshot.matches(state as never);
  const polling = stateKey(snapshot.value).endsWith('.polling');
  return JSON.stringify([
    snapshot.value,
    isSharedStorage(c.config),
    c.commit.done,
    c.commit.failed,
    at('checkingPrereqs') && (c.found.probe?.error ?? c.found.probe?.state ?? null),
    // A failover whose config gives a self-fence bound may take the target's quorum as its proof.
    at('checkingPrereqs') && (c.config?.selfFenceMs ?? null) !== null,
    c.commit.configUnknown,
    at('committing') && c.commit.attempts,
    c.repair.abortTried,
    c.replace.committed,
    // A replace on DRBD 9 goes its own way (make-before-break).
    c.config?.drbdVersion === '9',
    // With a tiebreaker the config names, it is rewired too.
    (c.config?.tiebreaker ?? null) !== null,
    // And a replace of a three-copy instance's secondary joins the third copy (cleanups and rejoins
    // read it in states of their own).
    snapshot.machine.id === 'changeSecondary' && (c.config?.thirdCopy ?? null) !== null,
    // A rejoin of the third copy's node reconnects it to the secondary rather than to the third.
    snapshot.machine.id === 'rejoin' && (c.config?.thirdCopy ?? null) === c.target,
    at('migrating') && c.handover.pastPointOfNoReturn,
    at('aborting') && (c.handover.memory?.status ?? null),
    at('abortingFound') && (c.found.locations?.[c.target]?.map((i) => i.state).join() ?? null),
    at('abortingFound') && (c.found.locations?.[c.source]?.map((i) => i.state).join() ?? null),
    c.handover.sourceResumeFailed,
    (at('singleMaster') || at('singleMasterFailed')) && c.repair.attempts,
    at('finalizing') && c.handover.finalizeErrors.length > 0,
    (at('checkingPrereqs') || at('fetchingMigrationInfo')) && c.handover.balloonToMiB !== null,
    polling && c.watch !== null,
    // The convergence policy's facts: how far the stall and the stages have gone.
    at('migrating.transferring') && [
      c.handover.converge.smallestPassMiB !== null,
      c.handover.converge.stalledPasses >= c.policy.stallPasses,
      c.handover.converge.downtimeMs,
      c.handover.converge.throttled,
      c.handover.converge.postcopyStarted,
      (c.handover.converge.pass ?? 0) >= c.policy.postcopyAfterPasses,
    ],
    at('locating') && c.result.warnings.some((w) => w.startsWith('Aborting migration failed on target')),
  ]);
}

function variantOf(effect: EffectName, name: string | undefined): Variant | undefined {
  return VARIANTS[effect]?.find((v) => v.name === name);
}

/** Instance specs of two recipes, merged by name: later fields win, earlier ones stay. */
type Specs = NonNullable<NonNullable<Recipe['spec']>['instances']>;
function mergeInstances(a: Specs, b: Specs): Specs {
  const earlier = new Map(a.map((i) => [i.name, i]));
  return b.map((i) => ({ ...earlier.get(i.name), ...i }));
}

function mergeRecipe(a: Recipe, b: Recipe | undefined): Recipe {
  if (b === undefined) return a;
  const spec =
    a.spec || b.spec
      ? {
          ...a.spec,
          ...b.spec,
          settings: { ...a.spec?.settings, ...b.spec?.settings },
          // A node another answer adds (a third copy's) stays beside one this answer changes.
          ...(a.spec?.nodes && b.spec?.nodes ? { nodes: { ...a.spec.nodes, ...b.spec.nodes } } : {}),
          ...(a.spec?.instances && b.spec?.instances
            ? { instances: mergeInstances(a.spec.instances, b.spec.instances) }
            : {}),
        }
      : undefined;
  return {
    ...a,
    ...b,
    ...(spec === undefined ? {} : { spec }),
    limits: { ...a.limits, ...b.limits },
    input: { ...a.input, ...b.input },
  };
}

/**
 * The inputs each machine is explored with (a guard that reads the request needs each value), and
 * where its world starts: a rejoin needs a node that died, was failed over from, and came back.
 */
const INPUTS: Record<MachineName, Partial<ProtocolInput>[]> = {
  // The second input also explores the convergence stages the defaults leave off (each guard reads
  // only its own part of the request, so one input covers both).
  migration: [
    {},
    {
      allowFailover: true,
      // Without the prediction: the copy meets the stages it is there to explore.
      convergence: {
        stallPasses: 1,
        autoConverge: true,
        postcopy: true,
        postcopyAfterPasses: 8,
        predict: false,
      },
    },
  ],
  cleanup: [{}],
  failover: [{}, { sourceIsDown: true }, { ignoreConsistency: true }],
  // The second: the node that returns holds a three-copy instance's third copy (a config without one
  // keeps to the secondary).
  rejoin: [{}, { targetNode: 'node-c' }],
  // A replace; the repair of one that stopped before its commit (named node) or after it (none).
  // The same three for a replace of the third copy (replace-third-copy).
  changeSecondary: [
    { newSecondary: 'node-c' },
    { cleanup: true, newSecondary: 'node-c' },
    { cleanup: true },
    { newSecondary: 'node-c', replaceCopy: 'thirdCopy' },
    { cleanup: true, newSecondary: 'node-c', replaceCopy: 'thirdCopy' },
    { cleanup: true, replaceCopy: 'thirdCopy' },
  ],
};
const BASE: Partial<Record<MachineName, Recipe>> = {
  rejoin: { start: 'afterFailover' },
  // A guest that writes fast: whatever the disks miss while apart takes seconds to resync, so a
  // replace (or its undo) that does not wait for it ends with a copy still behind.
  changeSecondary: { spec: { nodes: THREE_NODES, settings: { guestWriteKiBps: 200 * 1024 } } },
};

function toGenerated(
  machine: MachineName,
  path: StatePath<AnyMachineSnapshot, EventObject>,
  input: Partial<ProtocolInput>,
): GeneratedPath {
  const steps: PathStep[] = [];
  const plan: PlanEntry[] = [];
  const occurrences = new Map<string, number>();
  let recipe: Recipe = mergeRecipe(
    BASE[machine] ?? {},
    Object.keys(input).length > 0 ? { input } : undefined,
  );
  const parts: string[] = [];
  for (let i = 1; i < path.steps.length; i++) {
    const prev = path.steps[i - 1]!;
    const step = path.steps[i]!;
    const event = step.event as VariantEvent;
    const from = stateKey(prev.state.value);
    const to = stateKey(step.state.value);
    steps.push({ from, event: event.type, variant: event.variant ?? null, to });
    if (event.type === 'ABORT') {
      // Requested while the state's effect is in flight; the runner delivers it when the call ends.
      const effect = Object.keys(prev.state.children)[0] as EffectName;
      const occurrence = (occurrences.get(`${from}|${effect}`) ?? 0) + 1;
      plan.push({ state: from, effect, occurrence, action: 'abort' });
      parts.push('operator abort');
      continue;
    }
    const m = EFFECT_EVENT.exec(event.type);
    if (m === null) continue;
    const effect = m[2] as EffectName;
    const key = `${from}|${effect}`;
    const occurrence = (occurrences.get(key) ?? 0) + 1;
    occurrences.set(key, occurrence);
    if (m[1] === 'error') {
      plan.push({ state: from, effect, occurrence, action: 'error' });
      parts.push(`${effect} ✗`);
      continue;
    }
    const variant = variantOf(effect, event.variant);
    recipe = mergeRecipe(recipe, variant?.recipe);
    if (variant?.perturb !== undefined)
      plan.push({ state: from, effect, occurrence, action: variant.perturb });
    parts.push(`${effect} ✓${event.variant ?? ''}`);
  }
  const asked = [
    ...Object.entries(input)
      .filter(([, v]) => v === true)
      .map(([k]) => k),
    ...(input.replaceCopy === 'thirdCopy' ? ['third copy'] : []),
  ];
  return {
    machine,
    description: `${asked.length > 0 ? `[${asked.join(', ')}] ` : ''}${parts.join(' → ') || '(start)'}`,
    steps,
    target: stateKey(path.state.value),
    recipe,
    plan,
  };
}

export interface PathOptions {
  machine?: MachineName;
  /** A machine of your own built on the same setup (e.g. a mutated copy, or an extension). */
  logic?: AnyStateMachine;
}

export interface PathSet {
  machine: MachineName;
  vertices: number;
  edges: number;
  /** One path per edge of the graph: the shortest path to its source, then the edge. */
  paths: GeneratedPath[];
}

/**
 * Paths generated from the real machine: effect outcomes are its invoke done/error events with the
 * answers of VARIANTS; transition coverage (shortest path to each vertex, then each of its edges), so
 * no edge is dropped while the count stays linear in the graph's size.
 */
export function machinePaths(options: PathOptions = {}): PathSet {
  const machine = options.machine ?? 'migration';
  const logic: AnyStateMachine = options.logic ?? MACHINES[machine];
  const paths: GeneratedPath[] = [];
  let edges = 0;
  let vertices = 0;
  for (const input of INPUTS[machine]) {
    const traversal = {
      events: eventsFor,
      serializeState: vertexOf,
      input: { instance: 'web1', ...input },
    } as unknown as TraversalOptions<AnyMachineSnapshot, EventObject, unknown>;
    const adjacency = getAdjacencyMap(logic, traversal);
    const shortest = new Map<string, StatePath<AnyMachineSnapshot, EventObject>>();
    for (const p of getShortestPaths(logic, traversal) as StatePath<AnyMachineSnapshot, EventObject>[]) {
      shortest.set(vertexOf(p.state), p);
    }
    vertices += Object.keys(adjacency).length;
    for (const [vertex, node] of Object.entries(adjacency)) {
      const to = shortest.get(vertex);
      if (to === undefined) throw new Error(`no path to vertex ${vertex}`);
      for (const { event, state } of Object.values(node.transitions) as {
        event: EventObject;
        state: AnyMachineSnapshot;
      }[]) {
        edges++;
        paths.push(
          toGenerated(
            machine,
            { state, weight: to.weight + 1, steps: [...to.steps, { event, state }] },
            input,
          ),
        );
      }
    }
  }
  if (machine === 'cleanup') paths.push(...paths.flatMap(inOtherWorlds));
  return { machine, vertices, edges, paths };
}

/** The name this had while it generated the migration's paths only; any machine's, as `machinePaths`. */
export const migrationPaths = machinePaths;

/**
 * The worlds a cleanup can start from besides a healthy or half-migrated one: the instance stopped
 * (running nowhere), or paused on its primary. A path whose first look at the nodes fails takes the
 * same route in any world, so it is replayed in these too: a cleanup that cannot see where the
 * instance is must not take it for running where the config says.
 */
const OTHER_WORLDS: { name: string; recipe: Recipe }[] = [
  {
    name: 'stopped',
    recipe: {
      spec: { instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', running: false }] },
    },
  },
  { name: 'paused on its primary', recipe: { start: 'pausedOnSource' } },
];

function inOtherWorlds(path: GeneratedPath): GeneratedPath[] {
  const first = path.steps.find((s) => EFFECT_EVENT.exec(s.event)?.[2] !== 'getInstance');
  if (
    first === undefined ||
    !first.event.startsWith('xstate.error') ||
    (path.recipe.start ?? 'healthy') !== 'healthy'
  )
    return [];
  return OTHER_WORLDS.map((w) => ({
    ...path,
    description: `[${w.name}] ${path.description}`,
    recipe: mergeRecipe(path.recipe, w.recipe),
  }));
}
