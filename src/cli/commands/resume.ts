import { JournalError, ResumeError } from '../../journal/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { instanceName } from '../input.js';
import { finish, viewFor } from '../output.js';
import { openSession, restateRefusal, showRun } from '../runtime.js';
import { targetFlag } from '../target.js';
import { drain } from './evacuate.js';

export const resume: Command = {
  name: 'resume',
  summary: 'continue a migration, cleanup or node evacuation whose process died, from its journal',
  args: [{ name: 'INSTANCE' }],
  oneOf: ['cluster', 'world'],
  options: ['cluster', 'world', 'state-dir', 'json', 'quiet', 'restate', 'restate-admin'],
  conflicts: [
    { option: 'quiet', with: ['json'], why: 'choose one output: only the result, or JSON lines' },
    {
      option: 'restate',
      with: ['state-dir'],
      why: "a run on Restate is in Restate's journal, not in a state directory",
    },
  ],
  description: `Reads the journal of INSTANCE under --state-dir and continues from its last transition, on
the cluster file or world file the run acted on (another one is refused). Where continuing blind is
unsafe (the process died inside the hypervisor's handover, or the config no longer says what the
journal believed), it looks where the instance really runs and runs the cleanup instead. With no
journal, a corrupt one, or one written by another version of the machine, it says so and touches
nothing (exit 2).

Given a NODE whose evacuation was cut short, it continues the evacuation: the runs that were under
way are taken up from their journals, a half-done one is cleaned up, the rest are started.

With --restate URL there is nothing to continue by hand (Restate's workers take a run up by
themselves): it follows the instance's run under way, or the node's evacuation under way, to its
end, as the client that submitted it (and died) would have.`,
  examples: [
    'drbd-migrate resume web1 --cluster cluster.yaml',
    'drbd-migrate resume web1 --world /tmp/w.json',
    'drbd-migrate resume node-a --cluster cluster.yaml',
  ],
  run: async (call) => {
    const { values, io } = call;
    const name = instanceName(call.args.INSTANCE!);
    const session = await openSession(call, { operation: `resume of ${name}` });
    try {
      const { runtime, target } = session;
      // What the runtime holds of NAME, as an instance and as a node; a journal it cannot read, or a
      // Restate that does not answer, is a refusal: nothing was touched.
      const refused = (error: unknown): never => {
        if (error instanceof JournalError)
          throw new UsageError(
            `${error.message}, so it cannot be resumed; run 'drbd-migrate migrate ${name}${targetFlag(target)} --cleanup', which looks at the nodes and sets the file aside`,
          );
        throw error instanceof Error && !(error instanceof UsageError)
          ? new UsageError(error.message)
          : error;
      };
      const run = await runtime.status(name).catch(refused);
      const evacuation = await runtime.evacuationStatus(name).catch(refused);
      if (run !== null && run.output === null) {
        return await showRun(call, session, { machine: run.kind, instance: name }, async (follow) => {
          const output = await runtime.resume(name, follow).catch((error: unknown) => {
            if (error instanceof ResumeError) throw new UsageError(error.message);
            throw restateRefusal(error, name, target);
          });
          if (output === null) throw new UsageError(`the run of ${name} ended meanwhile`);
          return output;
        });
      }
      if (evacuation !== null) return await drain(call, true, session);
      if (run?.output != null) {
        // On Restate a run may have ended while no client followed it: reported as it ended.
        const { view } = viewFor(io, values);
        view.line(`The ${run.kind} of ${name} had already ended.`);
        return finish(io, values, view, run.output, {
          at: Date.now(),
          runsOn: run.output.primaryNode,
          target,
          of: { machine: run.kind },
        });
      }
      throw new UsageError(
        session.stateDir === null
          ? `Restate knows no run of ${name} to resume (nor an evacuation of a node ${name})`
          : `there is no unfinished migration or cleanup of ${name} to resume, nor an evacuation of a node ${name} (no journal in ${session.stateDir})`,
      );
    } finally {
      await session.close();
    }
  },
};
