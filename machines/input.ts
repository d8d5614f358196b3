import { z } from 'zod';
import { MigrationMode } from './contract.js';
import { Convergence } from './convergence.js';
import { Limits } from './limits.js';
import { InstanceName, NodeName } from './names.js';

/**
 * What a caller may ask of a machine, checked before anything runs: a typo in a limit or a number no
 * timer can wait is bad input, refused with the key and the reason, not a run that times out at once.
 */
export const ProtocolInputSchema = z
  .object({
    instance: InstanceName,
    mode: MigrationMode.optional(),
    targetNode: NodeName.optional(),
    allowRuntimeChanges: z.boolean().optional(),
    ignoreConsistency: z.boolean().optional(),
    sourceIsDown: z.boolean().optional(),
    allowFailover: z.boolean().optional(),
    expectedSource: NodeName.optional(),
    cleanup: z.boolean().optional(),
    newSecondary: NodeName.optional(),
    replaceCopy: z.enum(['secondary', 'thirdCopy']).optional(),
    limits: Limits.partial().optional(),
    convergence: Convergence.partial().optional(),
  })
  .strict();

/** Zod's issues as one line an operator reads: "limits.stepTimeoutMs: must be at most …". */
export function issuesText(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const at = i.path.join('.');
      const what =
        i.code === 'unrecognized_keys'
          ? `unknown ${i.keys.length === 1 ? 'key' : 'keys'} ${i.keys.map((k) => `'${k}'`).join(', ')}`
          : i.message;
      return at === '' ? what : `${at}: ${what}`;
    })
    .join('; ');
}

/** Why the input cannot be run, or null. */
export function inputProblem(input: unknown): string | null {
  const parsed = ProtocolInputSchema.safeParse(input);
  return parsed.success ? null : `bad input: ${issuesText(parsed.error.issues)}`;
}
