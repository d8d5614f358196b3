import { MACHINE_NAMES, type MachineName } from '../../../machines/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { pathSummary } from '../paths.js';

export const paths: Command = {
  name: 'paths',
  summary: 'the test paths generated from a machine, and the transitions they cover',
  args: [{ name: 'MACHINE', optional: true, choices: MACHINE_NAMES }],
  options: ['machine', 'json'],
  description: `Generates the machine's test paths with xstate/graph (each transition: the shortest path to its
source, then the transition), replays each on the simulated cluster, and reports the transitions
they cover. Exit 3 if any transition is left uncovered.`,
  examples: ['drbd-migrate paths cleanup', 'drbd-migrate paths migration --json'],
  async run({ args, values, io }) {
    if (args.MACHINE !== undefined && values.machine !== undefined && args.MACHINE !== values.machine) {
      throw new UsageError(`two machines named: ${args.MACHINE} and --machine ${values.machine}`);
    }
    const machine = args.MACHINE ?? values.machine ?? 'migration';
    if (!(MACHINE_NAMES as string[]).includes(machine)) {
      throw new UsageError(`unknown machine '${machine}': expected ${MACHINE_NAMES.join(' or ')}`);
    }
    const summary = await pathSummary(machine as MachineName);
    const c = summary.coverage;
    if (values.json === true) {
      for (const p of summary.set.paths) io.out(JSON.stringify({ type: 'path', ...p }));
      io.out(JSON.stringify({ type: 'coverage', ...c }));
    } else {
      for (const p of summary.set.paths) io.out(`${p.description} ⇒ ${p.target}`);
      io.out('');
      io.out(
        `${machine}: ${c.paths} paths over ${c.vertices} vertices and ${c.edges} edges; ${c.covered}/${c.transitions} transitions covered when replayed on the simulated cluster`,
      );
      for (const u of c.uncovered) io.out(`uncovered: ${u}`);
    }
    if (c.uncovered.length === 0) return 0;
    io.err(`drbd-migrate: ${c.uncovered.length} transitions of ${machine} are not covered`);
    return 3;
  },
};
