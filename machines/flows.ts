import type { EffectInput, EffectName, EffectOutput, InstanceConfig } from './contract.js';
import { meta } from './describe.js';
import { errorText } from './effects.js';
import { nextPollTimeout } from './limits.js';
import {
  askBoth,
  askBothAboutDisks,
  bothNodes,
  type Outcome,
  type ProtocolContext,
  protocol,
  step,
  syncOverdueMessage,
} from './protocol.js';

/**
 * Flows written once and used by several machines or several places of one machine. Each takes the
 * ids of the states to go to, so the flow itself never knows who uses it.
 */

/**
 * Ganeti's _WaitUntilSync on both nodes, with the total and no-progress deadlines it lacks. Each poll
 * is a long poll bounded by the nearer deadline; the first one asks for the state now.
 */
export function waitUntilSync(options: { onFailed: string; tolerated: boolean }) {
  const tolerated = options.tolerated;
  return protocol.createStateConfig({
    initial: 'polling',
    entry: [{ type: 'feedback', params: { message: '* wait until resync is done' } }, 'startWatch'],
    states: {
      polling: {
        description: 'Asking both nodes how the resync goes (a long poll, bounded by the nearer deadline).',
        invoke: {
          id: 'waitSync',
          src: 'waitSync',
          input: ({ context }) => ({
            instance: context.instance,
            nodes: bothNodes(context),
            disks: context.disks,
            timeoutMs: nextPollTimeout(
              context.watch,
              context.limits.pollWindowMs,
              context.limits.syncTotalMs,
              context.limits.syncNoProgressMs,
            ),
          }),
          onDone: {
            target: 'judging',
            actions: [{ type: 'recordSync', params: ({ event }) => event.output }, 'syncProgress'],
          },
          onError: {
            target: options.onFailed,
            actions: {
              type: 'fail',
              params: ({ event }) => ({
                message: `Cannot resync disks: ${errorText(event.error)}`,
                tolerated,
              }),
            },
          },
        },
      },
      judging: {
        description: 'Synced, overdue (total or no-progress deadline), or poll again.',
        always: [
          { guard: 'synced', target: 'synced' },
          {
            guard: 'syncOverdue',
            target: options.onFailed,
            actions: {
              type: 'fail',
              params: ({ context }) => ({ message: syncOverdueMessage(context), tolerated }),
            },
          },
          { target: 'polling' },
        ],
      },
      synced: { type: 'final' },
    },
  });
}

/**
 * Back to single-master (Ganeti's cleanup steps 6-10 and the tail of a migration): demote one node,
 * let the disks catch up (a failure there is tolerated: a StandAlone disk cannot sync, and the
 * reconnect below repairs that), go standalone, reconnect without two primaries, wait for sync.
 * `self` is the id of the state this flow is placed in.
 */
export function backToSingleMaster(options: { self: string; onFailed: string }) {
  return protocol.createStateConfig({
    initial: 'closingDisks',
    states: {
      closingDisks: {
        description: 'Demoting the node the instance does not run on (drbdsetup secondary).',
        entry: {
          type: 'feedback',
          params: ({ context }) => ({ message: `* closing instance disks on node ${context.repair.demote}` }),
        },
        invoke: {
          id: 'closeDisks',
          src: 'closeDisks',
          input: ({ context }) => ({
            instance: context.instance,
            node: context.repair.demote,
            disks: context.disks,
            timeoutMs: step(context),
          }),
          onDone: [{ guard: 'sharedStorage', target: 'reopeningExclusive' }, { target: 'settling' }],
          onError: {
            target: options.onFailed,
            actions: {
              type: 'fail',
              params: ({ context, event }) => ({
                message: `Cannot close instance disks on node ${context.repair.demote}: ${errorText(event.error)}`,
              }),
            },
          },
        },
      },
      settling: {
        description: 'Letting the disks catch up before cutting the link; a failure here is tolerated.',
        ...waitUntilSync({ onFailed: `${options.self}.goingStandalone`, tolerated: true }),
        onDone: 'goingStandalone',
      },
      goingStandalone: {
        description: 'Disconnecting both nodes until StandAlone.',
        entry: { type: 'feedback', params: { message: '* changing into standalone mode' } },
        invoke: {
          id: 'disconnectNet',
          src: 'disconnectNet',
          input: askBothAboutDisks,
          onDone: 'reconnecting',
          onError: {
            target: options.onFailed,
            actions: {
              type: 'fail',
              params: ({ event }) => ({ message: `Cannot disconnect disks: ${errorText(event.error)}` }),
            },
          },
        },
      },
      reconnecting: {
        description: 'Reconnecting without allow-two-primaries.',
        meta: meta({ rules: [2] }),
        entry: { type: 'feedback', params: { message: '* changing disks into single-master mode' } },
        invoke: {
          id: 'attachNet',
          src: 'attachNet',
          input: ({ context }) => ({
            instance: context.instance,
            nodes: bothNodes(context),
            disks: context.disks,
            multimaster: false,
            timeoutMs: step(context),
          }),
          onDone: 'resyncing',
          onError: {
            target: options.onFailed,
            actions: {
              type: 'fail',
              params: ({ event }) => ({ message: `Cannot change disks config: ${errorText(event.error)}` }),
            },
          },
        },
      },
      resyncing: {
        description: 'Waiting for the resync of what was written while disconnected.',
        ...waitUntilSync({ onFailed: options.onFailed, tolerated: false }),
        onDone: 'singleMaster',
      },
      /** Shared storage has no replication to reconfigure: the survivor takes its disks back alone. */
      reopeningExclusive: {
        description: 'Shared storage: opening the disks exclusively on the node the instance runs on.',
        meta: meta({ rules: [2] }),
        invoke: {
          id: 'openDisks',
          src: 'openDisks',
          input: ({ context }) => ({
            instance: context.instance,
            node: survivor(context),
            disks: context.disks,
            exclusive: true,
            timeoutMs: step(context),
          }),
          onDone: 'singleMaster',
          onError: {
            target: options.onFailed,
            actions: {
              type: 'fail',
              params: ({ context, event }) => ({
                message: `Cannot open instance disks exclusively on node ${survivor(context)}: ${errorText(event.error)}`,
              }),
            },
          },
        },
      },
      singleMaster: { type: 'final' },
    },
  });
}

const survivor = (context: Pick<ProtocolContext, 'repair' | 'source' | 'target'>) =>
  context.repair.demote === context.source ? context.target : context.source;

/**
 * Where does the instance run? If the copy completed (the target runs, the source is a paused
 * post-migrate husk), aborting would kill the live copy and resume a stale one: finish forward.
 */
function lookForCompletedHandover(o: {
  description: string;
  onCompleted: string;
  otherwise: string;
  when: string;
}) {
  return protocol.createStateConfig({
    description: o.description,
    meta: meta({ rules: [1] }),
    invoke: {
      id: 'instanceList',
      src: 'instanceList',
      input: askBoth,
      onDone: [
        {
          guard: { type: 'handoverCompletedIn', params: ({ event }) => ({ lists: event.output }) },
          target: o.onCompleted,
          actions: [
            { type: 'recordLocations', params: ({ event }) => ({ lists: event.output }) },
            {
              type: 'warn',
              params: ({ context }) => ({
                message: `The memory transfer to ${context.target} ${o.when}: finishing the migration instead of aborting it`,
              }),
            },
          ],
        },
        {
          target: o.otherwise,
          actions: { type: 'recordLocations', params: ({ event }) => ({ lists: event.output }) },
        },
      ],
      onError: o.otherwise,
    },
  });
}

/**
 * Ganeti's _AbortMigration: finalize the target, then the source, with success=false. Both are always
 * attempted and neither failure stops the flow: what comes next (a revert, or a second look at where
 * the instance runs) has to happen regardless.
 *
 * Unlike Ganeti it looks first: when the memory transfer in fact completed (the target runs, the
 * source is paused post-migrate), aborting would kill the live copy and resume a stale one, so the
 * flow hands over to `onHandoverCompleted` to finish forward instead.
 */
export function abortMigration(options: { next: string; onHandoverCompleted: string }) {
  return protocol.createStateConfig({
    initial: 'checking',
    states: {
      checking: lookForCompletedHandover({
        description: 'Looking before aborting: a completed copy must be finished, not aborted.',
        onCompleted: options.onHandoverCompleted,
        otherwise: 'target',
        when: 'had completed',
      }),
      target: {
        description: 'Stopping the copy on the target (kill the incoming instance).',
        entry: {
          type: 'feedback',
          params: ({ context }) => ({ message: `* aborting the migration on node ${context.target}` }),
        },
        invoke: {
          id: 'finalizeMigrationTarget',
          src: 'finalizeMigrationTarget',
          input: ({ context }) => ({
            instance: context.instance,
            node: context.target,
            info: context.handover.migrationInfo ?? {},
            success: false,
            timeoutMs: step(context),
          }),
          onDone: 'source',
          onError: {
            target: 'rechecking',
            actions: {
              type: 'warn',
              params: ({ context, event }) => ({
                message: `Aborting migration failed on target node ${context.target}: ${errorText(event.error)}`,
              }),
            },
          },
        },
      },
      /**
       * The target could not be stopped, so its copy may have gone on to complete while we waited:
       * resuming the source now could run the guest twice. Look once more.
       */
      rechecking: lookForCompletedHandover({
        description: 'The target would not stop: looking again before resuming the source.',
        onCompleted: options.onHandoverCompleted,
        otherwise: 'source',
        when: 'completed meanwhile',
      }),
      source: {
        description: 'Cancelling the copy on the source and resuming it there.',
        entry: {
          type: 'feedback',
          params: ({ context }) => ({ message: `* aborting the migration on node ${context.source}` }),
        },
        invoke: {
          id: 'finalizeMigrationSource',
          src: 'finalizeMigrationSource',
          input: ({ context }) => ({
            instance: context.instance,
            node: context.source,
            success: false,
            live: context.handover.live ?? true,
            timeoutMs: step(context),
          }),
          onDone: options.next,
          onError: {
            target: options.next,
            actions: [
              'recordSourceResumeFailed',
              {
                type: 'warn',
                params: ({ context, event }) => ({
                  message: `Aborting migration failed on source node ${context.source}: ${errorText(event.error)}`,
                }),
              },
            ],
          },
        },
      },
    },
  });
}

/**
 * Before giving up, look at both nodes so the outcome says what is really left rather than what the
 * machine believes. Failures here only make the description poorer.
 */
export function survey(options: { next: string }) {
  return protocol.createStateConfig({
    initial: 'storageKind',
    states: {
      storageKind: {
        description: 'Shared storage has no replication state to read.',
        always: [{ guard: 'sharedStorage', target: 'instances' }, { target: 'disks' }],
      },
      disks: {
        description: 'Reading both nodes’ disk status for the record.',
        invoke: {
          id: 'diskStatus',
          src: 'diskStatus',
          input: askBothAboutDisks,
          onDone: {
            target: 'instances',
            actions: { type: 'recordSurveyDisks', params: ({ event }) => ({ disks: event.output }) },
          },
          onError: { target: 'instances', actions: { type: 'recordSurveyDisks', params: { disks: null } } },
        },
      },
      instances: {
        description: 'Reading where the instance is, for the record.',
        invoke: {
          id: 'instanceList',
          src: 'instanceList',
          input: askBoth,
          onDone: {
            target: options.next,
            actions: { type: 'recordSurveyLists', params: ({ event }) => ({ lists: event.output }) },
          },
          onError: { target: options.next, actions: { type: 'recordSurveyLists', params: { lists: null } } },
        },
      },
    },
  });
}

/**
 * The one commit point: the config is made to name the target. A write that answers with an error
 * may still have taken (its answer lost on the way back), so the config is read back before anything
 * is concluded, and a write that did not take is tried once more. `onFailed` is entered with the
 * source to be demoted: the instance runs on the target whatever the config says.
 */
export function commitPrimary(options: {
  onCommitted: string;
  onFailed: string;
  /** What repairs a commit that could not be made, for the error. */
  repair: string;
}) {
  return protocol.createStateConfig({
    initial: 'writing',
    states: {
      writing: {
        description: 'Writing the target into the config as the primary node.',
        entry: 'countCommitAttempt',
        invoke: {
          id: 'setPrimaryNode',
          src: 'setPrimaryNode',
          input: ({ context }) => ({
            instance: context.instance,
            node: context.target,
            timeoutMs: step(context),
          }),
          onDone: { target: options.onCommitted, actions: 'commit' },
          onError: {
            target: 'confirming',
            actions: {
              type: 'recordCommitWriteError',
              params: ({ event }) => ({ message: errorText(event.error) }),
            },
          },
        },
      },
      confirming: {
        description: 'The write answered with an error: reading the config back, since it may have taken.',
        meta: meta({ rules: [3] }),
        invoke: {
          id: 'getInstance',
          src: 'getInstance',
          input: ({ context }) => ({ instance: context.instance, timeoutMs: step(context) }),
          onDone: [
            {
              guard: { type: 'configNamesTarget', params: ({ event }) => ({ config: event.output }) },
              target: options.onCommitted,
              actions: [
                'commit',
                {
                  type: 'warn',
                  params: ({ context }) => ({
                    message: `The config write answered with an error but had taken effect: the config names ${context.target}`,
                  }),
                },
              ],
            },
            {
              guard: 'mayRetryCommit',
              target: 'writing',
              actions: [
                'recordConfigRead',
                {
                  type: 'warn',
                  params: ({ context }) => ({
                    message: `Writing the config failed (${context.commit.error}); it still names ${context.source}: writing it once more`,
                  }),
                },
              ],
            },
            {
              target: options.onFailed,
              actions: [
                'recordConfigRead',
                { type: 'giveUpCommit', params: { readError: null, repair: options.repair } },
              ],
            },
          ],
          onError: [
            {
              guard: 'mayRetryCommit',
              target: 'writing',
              actions: {
                type: 'warn',
                params: ({ context, event }) => ({
                  message: `Writing the config failed (${context.commit.error}) and reading it back failed too (${errorText(event.error)}): writing it once more`,
                }),
              },
            },
            {
              target: options.onFailed,
              actions: {
                type: 'giveUpCommit',
                params: ({ event }) => ({ readError: errorText(event.error), repair: options.repair }),
              },
            },
          ],
        },
      },
    },
  });
}

type StepArgs = { context: ProtocolContext };

/**
 * The shape most steps share: say what is being done, call one effect, go on when it answers, and
 * when it fails, fail the run with a message (the effect's error already names the node) and go to
 * `failTo`. Steps that judge an answer are written out; steps that only act are this.
 */
export function effectStep<K extends EffectName>(o: {
  src: K;
  description: string;
  input: (args: StepArgs) => Omit<EffectInput<K>, 'timeoutMs'>;
  next: string;
  /** Actions on the way to `next` when the effect answered (what the step achieved). */
  done?: unknown;
  failTo: string;
  failure: (context: ProtocolContext, error: string) => string;
  /** A Ganeti-style feedback line when the step starts. */
  says?: (context: ProtocolContext) => string;
  rules?: number[];
}) {
  return stepOf(o, o.done === undefined ? o.next : { target: o.next, actions: o.done });
}

/** The step's shape around its effect: description, feedback, deadline, and the failure path. */
function stepOf<K extends EffectName>(
  o: {
    src: K;
    description: string;
    input: (args: StepArgs) => Omit<EffectInput<K>, 'timeoutMs'>;
    failTo: string;
    failure: (context: ProtocolContext, error: string) => string;
    says?: (context: ProtocolContext) => string;
    rules?: number[];
  },
  onDone: unknown,
) {
  return protocol.createStateConfig({
    description: o.description,
    ...(o.rules === undefined ? {} : { meta: meta({ rules: o.rules }) }),
    ...(o.says === undefined
      ? {}
      : { entry: { type: 'feedback', params: ({ context }: StepArgs) => ({ message: o.says!(context) }) } }),
    invoke: {
      id: o.src,
      src: o.src,
      input: (args: StepArgs) => ({ ...o.input(args), timeoutMs: step(args.context) }),
      onDone,
      onError: {
        target: o.failTo,
        actions: {
          type: 'fail',
          params: ({ context, event }: StepArgs & { event: { error: unknown } }) => ({
            message: o.failure(context, errorText(event.error)),
          }),
        },
      },
    } as never,
  });
}

/**
 * The first step of every machine: read the instance's config; a config the machine cannot act on
 * (`check` says why) is a refusal before anything is touched.
 */
export function loadingConfig(o: {
  check: (config: InstanceConfig, context: ProtocolContext) => string | null;
  next: string;
  rejected: string;
  /** A Ganeti-style line once the config is read ("Migrating instance web1"). */
  says?: (context: ProtocolContext) => string;
}) {
  return protocol.createStateConfig({
    description: 'Reading the instance’s config (getInstance).',
    invoke: {
      id: 'getInstance',
      src: 'getInstance',
      input: ({ context }) => ({ instance: context.instance, timeoutMs: step(context) }),
      onDone: [
        {
          guard: {
            type: 'rejects',
            params: ({ context, event }) => ({ problem: o.check(event.output, context) }),
          },
          target: o.rejected,
          actions: [
            { type: 'recordConfig', params: ({ event }) => event.output },
            { type: 'fail', params: ({ context, event }) => ({ message: o.check(event.output, context)! }) },
          ],
        },
        {
          target: o.next,
          actions: [
            { type: 'recordConfig', params: ({ event }) => event.output },
            ...(o.says === undefined
              ? []
              : [
                  {
                    type: 'feedback' as const,
                    params: ({ context }: StepArgs) => ({ message: o.says!(context) }),
                  },
                ]),
          ],
        },
      ],
      onError: {
        target: o.rejected,
        actions: {
          type: 'fail',
          params: ({ context, event }) => ({
            message: `Cannot read the config of instance ${context.instance}: ${errorText(event.error)}`,
          }),
        },
      },
    },
  });
}

/**
 * A read whose answer is judged: `problem` says what is wrong with it (the run goes to `rejectTo`
 * with that message) or null (on to `next`); an error of the read itself goes to `failTo`.
 */
export function judgedRead<K extends EffectName>(o: {
  src: K;
  description: string;
  input: (args: StepArgs) => Omit<EffectInput<K>, 'timeoutMs'>;
  problem: (context: ProtocolContext, answer: EffectOutput<K>) => string | null;
  next: string;
  rejectTo: string;
  failTo: string;
  failure: (context: ProtocolContext, error: string) => string;
  says?: (context: ProtocolContext) => string;
  rules?: number[];
}) {
  type Done = StepArgs & { event: { output: EffectOutput<K> } };
  return stepOf(o, [
    {
      guard: {
        type: 'rejects',
        params: ({ context, event }: Done) => ({ problem: o.problem(context, event.output) }),
      },
      target: o.rejectTo,
      actions: {
        type: 'fail',
        params: ({ context, event }: Done) => ({ message: o.problem(context, event.output)! }),
      },
    },
    { target: o.next },
  ]);
}

/** A final state: the outcome recorded, described for diagrams and `explain`. */
export function outcomeState(
  outcome: Outcome,
  description: string,
  options: { check?: string; rules?: number[]; done?: boolean } = {},
) {
  return protocol.createStateConfig({
    description,
    ...(options.done ? {} : { tags: ['failure'] }),
    ...(options.check === undefined && options.rules === undefined
      ? {}
      : {
          meta: meta({
            ...(options.check === undefined ? {} : { check: options.check }),
            ...(options.rules === undefined ? {} : { rules: options.rules }),
          }),
        }),
    type: 'final',
    entry: [
      ...(options.done ? [{ type: 'feedback' as const, params: { message: '* done' } }] : []),
      { type: 'recordOutcome', params: { outcome } },
    ],
  });
}
