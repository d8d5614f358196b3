import type { internal, ObjectContext, RestatePromise } from '@restatedev/restate-sdk';
import { type Clock, EFFECT_NAMES, type EffectName, type Effects, errorText } from '../../machines/index.js';
import { restate } from './sdk.js';

/**
 * What one effect call leaves in Restate's journal: its answer or its failure, and the wall time it
 * ended on the worker that ran it. A failure is recorded, not thrown: the machine decides what an
 * effect's failure means, so Restate must not retry it as if the worker had died.
 */
type Recorded = { ok: true; answer: unknown; at: number } | { ok: false; error: string; at: number };

export interface DurableOptions {
  /** Added to an effect's own timeoutMs before its step is recorded as failed. Default 1000 ms. */
  graceMs?: number;
  /** The invocation was cancelled (Restate's cancel): the operator's abort, told once. */
  onCancel: () => void;
  /** Runs one step's effect inside its identity (see runtime/step.ts). */
  withStep?: <T>(step: string, work: () => T) => T;
}

export interface Durable {
  /** The effects as the machine calls them: each call one `ctx.run` step. */
  effects: Effects;
  /**
   * Journal time: the clock reads when the last recorded step ended. Its timer never fires: a
   * step's deadline is enforced inside the step (a deadline noticed outside it would not be in the
   * journal, and a replay would take another path).
   */
  clock: Clock;
}

/**
 * Binds effects to an invocation's journal. Each call is a `ctx.run` step named by its place in
 * the run ("7 attachNet node-b"): the machine is deterministic given its effects' answers, so a
 * replay makes the same calls in the same order and finds each answer under the same name.
 */
export async function durableEffects(
  ctx: ObjectContext,
  effects: Effects,
  options: DurableOptions,
): Promise<Durable> {
  let at = await ctx.date.now();
  let steps = 0;
  let cancelled = false;
  const graceMs = options.graceMs ?? 1_000;
  // Ends when this attempt does (the worker suspends, or loses the server): a stale attempt's node
  // command is told to stop; the attempt that replaces it asks again.
  const attempt = ctx.request().attemptCompletedSignal;
  const cancellation = (ctx as unknown as internal.ContextInternal).cancellation();

  function act(stepName: string, name: EffectName, input: unknown, hurry?: AbortSignal) {
    const impl = effects[name] as (i: unknown, s: AbortSignal, h?: AbortSignal) => Promise<unknown>;
    const limitMs = (input as { timeoutMs: number }).timeoutMs + graceMs;
    const inStep = options.withStep ?? (<T>(_: string, work: () => T) => work());
    return () =>
      new Promise<Recorded>((resolve) => {
        const stop = new AbortController();
        let ended = false;
        const end = (recorded: Recorded) => {
          if (ended) return;
          ended = true;
          clearTimeout(deadline);
          attempt.removeEventListener('abort', onAttemptEnd);
          resolve(recorded);
        };
        const onAttemptEnd = () => stop.abort(attempt.reason);
        attempt.addEventListener('abort', onAttemptEnd, { once: true });
        const deadline = setTimeout(() => {
          stop.abort(new Error('deadline'));
          end({ ok: false, error: `${name} did not answer within ${limitMs} ms`, at: Date.now() });
        }, limitMs);
        Promise.resolve()
          .then(() => inStep(stepName, () => impl(input, stop.signal, hurry)))
          .then(
            (answer) => end({ ok: true, answer, at: Date.now() }),
            (error: unknown) => end({ ok: false, error: errorText(error), at: Date.now() }),
          );
      });
  }

  async function call(name: EffectName, input: unknown, hurry?: AbortSignal): Promise<unknown> {
    const node = (input as { node?: unknown }).node;
    const stepName = `${++steps} ${name}${typeof node === 'string' ? ` ${node}` : ''}`;
    const step: RestatePromise<Recorded> = ctx.run(stepName, act(stepName, name, input, hurry));
    if (!cancelled) {
      // Restate's cancel arrives in the journal between steps; the step in flight finishes first.
      const first = await restate.RestatePromise.race([step.map(() => false), cancellation.map(() => true)]);
      if (first) {
        cancelled = true;
        options.onCancel();
      }
    }
    const recorded = await step;
    at = Math.max(at, recorded.at);
    if (!recorded.ok) throw new Error(recorded.error);
    return recorded.answer;
  }

  const bound = Object.fromEntries(
    EFFECT_NAMES.map((name) => [
      name,
      (input: unknown, _signal: AbortSignal, hurry?: AbortSignal) => call(name, input, hurry),
    ]),
  ) as unknown as Effects;
  const clock: Clock = {
    now: () => at,
    // Nothing in the machines sleeps (their waits are long polls); a sleep here is a durable timer.
    sleep: async (ms, signal) => {
      if (signal?.aborted) return false;
      await ctx.sleep(ms);
      at += ms;
      return true;
    },
    timer: () => () => {},
  };
  return { effects: bound, clock };
}
