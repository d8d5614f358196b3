import { z } from 'zod';
import { EFFECT_NAMES, type EffectName } from '../../machines/index.js';

/**
 * Injected faults: an effect fails (error), never answers (hang), or acts and then fails to answer
 * (lost: the answer is lost on the way back, the case that makes idempotency matter). Without a call
 * number the fault hits every call of that effect.
 */
export const FaultKind = z.enum(['error', 'hang', 'lost']);
export type FaultKind = z.infer<typeof FaultKind>;

export const Fault = z.object({
  effect: z.enum(EFFECT_NAMES as [EffectName, ...EffectName[]]),
  call: z.number().int().positive().nullable(),
  kind: FaultKind,
});
export type Fault = z.infer<typeof Fault>;

/** Parses "EFFECT" or "EFFECT@N", naming the known effects when the name is wrong. */
export function parseFault(text: string, kind: FaultKind): Fault {
  const m = /^([A-Za-z]+)(?:@(\d+))?$/.exec(text);
  if (m === null)
    throw new Error(`bad fault '${text}': expected EFFECT or EFFECT@N, e.g. acceptInstance or waitSync@2`);
  const effect = m[1] as string;
  if (!(EFFECT_NAMES as string[]).includes(effect)) {
    throw new Error(
      `unknown effect '${effect}' in fault '${text}'; known effects: ${EFFECT_NAMES.join(', ')}`,
    );
  }
  const call = m[2] === undefined ? null : Number(m[2]);
  if (call === 0) throw new Error(`bad fault '${text}': calls are counted from 1`);
  return Fault.parse({ effect, call, kind });
}

export function faultFor(faults: readonly Fault[], effect: EffectName, call: number): Fault | undefined {
  return faults.find((f) => f.effect === effect && (f.call === null || f.call === call));
}
