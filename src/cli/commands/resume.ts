import { type Resumed, ResumeError, resumeRun } from '../../journal/index.js';
import { resumeOnCluster } from '../cluster.js';
import type { Command, Invocation } from '../command.js';
import { UsageError } from '../errors.js';
import { instanceName } from '../input.js';
import { withInterrupt } from '../interrupt.js';
import { finish, viewFor } from '../output.js';
import { resumeOnRestate } from '../restate.js';
import { simulate } from '../simulated.js';
import { defaultStateDir, journalStores } from '../stateDir.js';
import { targetOf } from '../target.js';
import { checkWritable, loadWorld, worldNodes } from '../worldFile.js';
import { drain, evacuationRecorded } from './evacuate.js';

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
    if (call.values.restate !== undefined) {
      return resumeOnRestate(call, instanceName(call.args.INSTANCE!), (id, ended) =>
        drain(call, true, { id, ended }),
      );
    }
    // A node with an unfinished evacuation: the evacuation is resumed.
    const stateDir = call.values['state-dir'] ?? defaultStateDir();
    if (await evacuationRecorded(stateDir, call.args.INSTANCE!)) return drain(call, true);
    return call.values.cluster !== undefined ? onCluster(call) : onWorld(call);
  },
};

/** A journal that cannot be resumed is a refusal: nothing was touched. */
const refusal = (error: unknown): never => {
  if (error instanceof ResumeError) throw new UsageError(error.message);
  throw error;
};

async function onCluster(call: Invocation): Promise<number> {
  const { values, io } = call;
  const target = targetOf(values);
  const instance = instanceName(call.args.INSTANCE!);
  const { view, onEvent } = viewFor(io, values);
  const journal = await journalStores(values, target);
  const entry = await journal.store.read(instance).catch(() => null);
  const about = { ...(entry === null ? {} : { machine: entry.machine }), instance, target, journaled: true };
  const resumed = await withInterrupt(io, view, about, ({ abort, onCall }) =>
    resumeOnCluster(target.file, instance, { onEvent, abort, onCall, journal }).catch(refusal),
  );
  if (resumed.how === 'cleanup') view.line(`resume: running the cleanup instead: ${resumed.reason}`);
  return finish(io, values, view, resumed.output, {
    at: Date.now(),
    runsOn: resumed.output.primaryNode,
    target,
  });
}

async function onWorld(call: Invocation): Promise<number> {
  const { values, io } = call;
  const target = targetOf(values);
  const instance = instanceName(call.args.INSTANCE!);
  const world = await loadWorld(target.file);
  await checkWritable(target.file);
  const journal = { ...(await journalStores(values, target)), nodes: worldNodes(world, instance) };
  const entry = await journal.store.read(instance).catch((error: Error) => {
    throw new UsageError(error.message);
  });
  if (entry === null) {
    throw new UsageError(
      `there is no unfinished migration or cleanup of ${instance} to resume (no journal in ${values['state-dir'] ?? defaultStateDir()})`,
    );
  }
  const run = await simulate(
    io,
    world,
    values,
    entry.machine,
    async (effects, options) => {
      const resumed: Resumed = await resumeRun(instance, effects, { ...options, ...journal }).catch(refusal);
      return resumed.output;
    },
    { target, instance, journaled: true },
  );
  return run.code;
}
