import { type AnyActorRef, fromPromise, type PromiseActorLogic } from 'xstate';
import { armTimer, type Clock, systemClock } from './clock.js';
import {
  EFFECT_NAMES,
  type EffectInput,
  type EffectName,
  type EffectOutput,
  type Effects,
  effectSchemas,
} from './contract.js';

/** An effect that failed: which effect, on which node (when it acts on one), and what it said. */
export class EffectError extends Error {
  override name = 'EffectError';
  constructor(
    readonly effect: EffectName,
    readonly node: string | null,
    message: string,
  ) {
    super(message);
  }
}

/** Error text for the operator: "node-b: drbdsetup primary 0 exited 11: ..." */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

export type EffectActor<K extends EffectName> = PromiseActorLogic<EffectOutput<K>, EffectInput<K>>;
export type EffectActors = { [K in EffectName]: EffectActor<K> };

/** Placeholders for setup(): a machine that was not given effects fails its first step clearly. */
export function unprovidedEffects(): EffectActors {
  const entries = EFFECT_NAMES.map((name) => [
    name,
    fromPromise(async () => {
      throw new EffectError(name, null, `effect ${name} was not provided (use provideEffects)`);
    }),
  ]);
  return Object.fromEntries(entries) as EffectActors;
}

export interface BindOptions {
  clock?: Clock;
  /** Added to every step's timeoutMs before the step is cut off, for transport latency. */
  graceMs?: number;
  /** Called with every effect call and its settlement, for logs and tests. */
  onCall?: (call: EffectCall) => void;
  /** Awaited before every call (e.g. until the journal is on disk), so nothing acts ahead of the record. */
  beforeCall?: () => Promise<void>;
  /** The hurry signal handed to each call as it starts (see Effects): the runner's operator abort. */
  hurry?: () => AbortSignal;
}

export type EffectCall =
  | { phase: 'start'; effect: EffectName; input: unknown }
  | { phase: 'done'; effect: EffectName; input: unknown; output: unknown }
  | { phase: 'error'; effect: EffectName; input: unknown; error: EffectError };

function nodeOf(input: unknown): string | null {
  const node = (input as { node?: unknown }).node;
  return typeof node === 'string' ? node : null;
}

/** Why a call's own signal is aborted when the step is left before its answer (deadline, stop). */
const STEP_LEFT = new Error('the step was left');

/** An effect's failure, its message prefixed with the node it acted on (once). */
function effectError(name: EffectName, node: string | null, message: string): EffectError {
  return new EffectError(
    name,
    node,
    node !== null && !message.startsWith(`${node}:`) ? `${node}: ${message}` : message,
  );
}

/** One effect call: input re-parsed, the journal awaited, the deadline enforced, the answer parsed. */
async function callEffect<K extends EffectName>(
  name: K,
  effects: Effects,
  options: BindOptions,
  input: EffectInput<K>,
  signal: AbortSignal,
): Promise<EffectOutput<K>> {
  const clock = options.clock ?? systemClock;
  const schema = effectSchemas[name];
  const impl = effects[name] as (
    input: EffectInput<K>,
    signal: AbortSignal,
    hurry?: AbortSignal,
  ) => Promise<unknown>;
  const node = nodeOf(input);
  // Inputs come from the machine, but they name things that reach shells: parse them again here.
  const parsedInput = schema.input.safeParse(input);
  if (!parsedInput.success) {
    throw effectError(
      name,
      node,
      `refusing ${name} with invalid input: ${parsedInput.error.issues[0]?.message}`,
    );
  }
  // Nothing acts ahead of the record: wait for the journal (time stands still meanwhile).
  if (options.beforeCall !== undefined) {
    const before = options.beforeCall();
    await (clock.hold === undefined ? before : clock.hold(before));
  }
  if (signal.aborted) throw effectError(name, node, `${name} was not started: the step was left`);
  options.onCall?.({ phase: 'start', effect: name, input });
  // The implementation's signal: aborted when the machine leaves the step or the deadline passes.
  const step = new AbortController();
  const onAbort = () => step.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const limitMs = parsedInput.data.timeoutMs + (options.graceMs ?? 1_000);
  let disarm: (() => void) | undefined;
  let answered = false;
  try {
    // One promise for the answer and the deadline, whichever comes first.
    const answer = await new Promise<unknown>((resolve, reject) => {
      disarm = armTimer(clock, limitMs, () =>
        reject(effectError(name, node, `${name} did not answer within ${limitMs} ms`)),
      );
      // A plain function may answer without a promise, or throw before it returns one.
      Promise.resolve(impl(parsedInput.data as EffectInput<K>, step.signal, options.hurry?.())).then(
        resolve,
        reject,
      );
    });
    answered = true;
    const parsed = schema.output.safeParse(answer);
    if (!parsed.success) {
      throw effectError(
        name,
        node,
        `${name} answered malformed data: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    options.onCall?.({ phase: 'done', effect: name, input, output: parsed.data });
    return parsed.data as EffectOutput<K>;
  } catch (error) {
    const failure = error instanceof EffectError ? error : effectError(name, node, errorText(error));
    options.onCall?.({ phase: 'error', effect: name, input, error: failure });
    throw failure;
  } finally {
    disarm?.();
    signal.removeEventListener('abort', onAbort);
    // An implementation still at work (its deadline passed, its step left) is told to stop.
    if (!answered) step.abort(STEP_LEFT);
  }
}

function bindEffect<K extends EffectName>(name: K, effects: Effects, options: BindOptions): EffectActor<K> {
  return fromPromise<EffectOutput<K>, EffectInput<K>>(({ input, signal }) =>
    callEffect(name, effects, options, input, signal),
  );
}

/**
 * The effects of each run, found from the actor system the run's actors live in: a machine is
 * provided with these actors once, and every run binds its own effects and options to its system.
 */
const runs = new WeakMap<object, { effects: Effects; options: BindOptions }>();

/** Binds a run's effects to its actor (call before starting it). */
export function bindRun(actor: AnyActorRef, effects: Effects, options: BindOptions): void {
  runs.set(actor.system, { effects, options });
}

/** Effect actors that call whatever effects the run they belong to was bound to (bindRun). */
export function runBoundActors(): EffectActors {
  const entries = EFFECT_NAMES.map((name) => [
    name,
    fromPromise(({ input, signal, system }) => {
      const run = runs.get(system);
      if (run === undefined) {
        throw new EffectError(name, null, `effect ${name} has no run bound to it (use bindRun before start)`);
      }
      return callEffect(name, run.effects, run.options, input as never, signal);
    }),
  ]);
  return Object.fromEntries(entries) as EffectActors;
}

/** Turns plain async effect functions into the actors the machines invoke. */
export function effectActors(effects: Effects, options: BindOptions = {}): EffectActors {
  const entries = EFFECT_NAMES.map((name) => [name, bindEffect(name, effects, options)]);
  return Object.fromEntries(entries) as EffectActors;
}
