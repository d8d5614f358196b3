import { MACHINES_TO_DRAW } from '../../../machines/index.js';
import { explain as explainState, statesNamed } from '../../docs/explain.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';

export const explain: Command = {
  name: 'explain',
  summary: 'what a state or outcome means, which safety rule it guards, and what to check',
  args: [{ name: 'WHAT' }],
  options: [],
  description: `WHAT is an outcome (needsCleanup, reverted, …) or a state, bare or dotted, optionally prefixed
by its machine (dualMaster.syncing, cleanup.failed); a state's own name as the live view shows it
(attaching, measuring) is enough when only one state has it.`,
  examples: [
    'drbd-migrate explain needsCleanup',
    'drbd-migrate explain dualMaster.syncing',
    'drbd-migrate explain cleanup.failed',
  ],
  async run({ args, io }) {
    const what = args.WHAT!;
    const lines = explainState(MACHINES_TO_DRAW, what);
    if (lines === null) {
      const several = statesNamed(MACHINES_TO_DRAW, what);
      throw new UsageError(
        several.length > 1
          ? `'${what}' is a state of several: ${several.join(', ')}; name one of them`
          : `no state or outcome '${what}' in the ${Object.keys(MACHINES_TO_DRAW).join(' or ')} machine`,
      );
    }
    for (const l of lines) io.out(l);
    return 0;
  },
};
