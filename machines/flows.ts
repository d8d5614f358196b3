import type { DiskStatus, NodeProbe } from './contract.js';
import { notConvergedMessage, raisedDowntime } from './convergence.js';
import { meta } from './describe.js';
import { nextPollTimeout } from './limits.js';
import {
  type ProtocolContext,
  probeTimeout,
  protocol,
  stepTimeout,
  surveyPeer,
  syncOverdueMessage,
} from './protocol.js';
import {
  aboutBoth,
  aboutDisksOnBoth,
  type Built,
  effectStep,
  ensureSecondary,
  evenIfFailed,
  failing,
  finalizeMigrationSource,
  finalizeMigrationTarget,
  formerNode,
  fromError,
  goReconnect,
  goStandalone,
  inLists,
  type NodeRole,
  openInstanceDisks,
  recordLocations,
  sequence,
  sourceNode,
  targetNode,
  warning,
} from './steps.js';

/**
 * Flows of several steps written once and used by several machines or several places of one machine.
 * Each takes the ids of the states to go to, so the flow itself never knows who uses it.
 */

/**
 * Ganeti's _WaitUntilSync on both nodes, with the total and no-progress deadlines it lacks. Each poll
 * is a long poll bounded by the nearer deadline; the first one asks for the state now.
 */
export function waitUntilSync(options: {
  onFailed: string;
  tolerated: boolean;
  /** The two ends of the link; the run's two nodes unless given (a replace's primary and old secondary). */
  between?: (c: ProtocolContext) => [string, string];
}) {
  const { tolerated, between } = options;
  return protocol.createStateConfig({
    initial: 'polling',
    entry: [{ type: 'feedback', params: { message: '* wait until resync is done' } }, 'startWatch'],
    states: {
      polling: effectStep({
        src: 'waitSync',
        description: 'Asking both nodes how the resync goes (a long poll, bounded by the nearer deadline).',
        input: (c) => ({ ...aboutDisksOnBoth(c), ...(between === undefined ? {} : { nodes: between(c) }) }),
        timeoutMs: (c) =>
          nextPollTimeout(c.watch, c.limits.pollWindowMs, c.limits.syncTotalMs, c.limits.syncNoProgressMs),
        next: 'judging',
        done: [
          { type: 'recordSync', params: ({ event }: { event: { output: unknown } }) => event.output },
          'syncProgress',
        ],
        failTo: options.onFailed,
        failure: (_, e) => `Cannot resync disks: ${e}`,
        tolerated,
      }),
      judging: {
        description: 'Synced, overdue (total or no-progress deadline), or poll again.',
        always: [
          { guard: 'synced', target: 'synced' },
          {
            guard: 'syncOverdue',
            target: options.onFailed,
            actions: failing((c) => syncOverdueMessage(c), { tolerated }),
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
  const steps = sequence(
    { failTo: options.onFailed, onDone: 'singleMaster' },
    {
      closingDisks: (link) =>
        ensureSecondary({
          node: (c) => c.repair.demote,
          description: 'Demoting the node the instance does not run on (drbdsetup secondary).',
          next: [{ guard: 'sharedStorage', target: 'reopeningExclusive' }, { target: link.next }],
          failTo: link.failTo,
        }),
      settling: (link) => ({
        description: 'Letting the disks catch up before cutting the link; a failure here is tolerated.',
        ...waitUntilSync({ onFailed: `${options.self}.goingStandalone`, tolerated: true }),
        onDone: link.next,
      }),
      goingStandalone: goStandalone,
      reconnecting: (link) =>
        goReconnect({
          ...link,
          multimaster: false,
          description: 'Reconnecting without allow-two-primaries.',
          rules: [2],
        }),
      resyncing: (link) => ({
        description: 'Waiting for the resync of what was written while disconnected.',
        ...waitUntilSync({ onFailed: options.onFailed, tolerated: false }),
        onDone: link.next,
      }),
    },
  );
  return protocol.createStateConfig({
    initial: steps.initial,
    states: {
      ...steps.states,
      /** Shared storage has no replication to reconfigure: the survivor takes its disks back alone. */
      reopeningExclusive: openInstanceDisks({
        node: survivor,
        exclusive: true,
        quiet: true,
        description: 'Shared storage: opening the disks exclusively on the node the instance runs on.',
        rules: [2],
        next: 'singleMaster',
        failTo: options.onFailed,
      }),
      singleMaster: { type: 'final' },
    } as never,
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
    ...effectStep({
      src: 'instanceList',
      description: o.description,
      input: aboutBoth,
      next: [
        {
          guard: inLists('handoverCompletedIn'),
          target: o.onCompleted,
          actions: [
            recordLocations,
            warning(
              (c) =>
                `The memory transfer to ${c.target} ${o.when}: finishing the migration instead of aborting it`,
            ),
          ],
        },
        { target: o.otherwise, actions: recordLocations },
      ],
      goOnTo: o.otherwise,
    }),
    meta: meta({ rules: [1] }),
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
      target: finalizeMigrationTarget({
        success: false,
        description: 'Stopping the copy on the target (kill the incoming instance).',
        says: (c) => `* aborting the migration on node ${c.target}`,
        next: 'source',
        goOnTo: 'rechecking',
        noting: [warning((c, e) => `Aborting migration failed on target node ${c.target}: ${e}`)],
      }),
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
      source: finalizeMigrationSource({
        success: false,
        description: 'Cancelling the copy on the source and resuming it there.',
        says: (c) => `* aborting the migration on node ${c.source}`,
        ...evenIfFailed(
          options.next,
          'recordSourceResumeFailed' as Built,
          warning((c, e) => `Aborting migration failed on source node ${c.source}: ${e}`),
        ),
      }),
    } as never,
  });
}

/**
 * Before giving up, look at each node on its own so the outcome says what is really left rather than
 * what the machine believes: a node that does not answer (a dead source) costs a probe's deadline,
 * not a step's, and leaves the other described. Failures here only make the description poorer.
 */
export function survey(options: { next: string; former?: true }) {
  type Probed = { context: ProtocolContext; event: { output: NodeProbe } };
  type Read = { context: ProtocolContext; event: { output: DiskStatus[] } };
  const look = (node: NodeRole, next: string) =>
    effectStep({
      src: 'probeNode',
      description: 'Is the node up, and is the instance there? For the record.',
      input: (c) => ({ instance: c.instance, node: node(c) }),
      timeoutMs: probeTimeout,
      next,
      done: [
        {
          type: 'recordSurveyLook',
          params: ({ context, event }: Probed) => ({ node: node(context), probe: event.output }),
        },
      ],
      goOnTo: next,
    });
  const read = (node: NodeRole, next: string) =>
    effectStep({
      src: 'nodeDiskStatus',
      description: 'Reading the node’s disk status for the record.',
      // A run between the source and the third copy reads each towards the other, not the config's pair.
      input: (c) => {
        const peer = surveyPeer(c, node(c));
        return {
          instance: c.instance,
          node: node(c),
          disks: c.disks,
          ...(peer === undefined ? {} : { peer }),
        };
      },
      // A node that did not answer the look is not waited for a whole step.
      timeoutMs: (c) => (c.found.surveyLists?.[node(c)] === undefined ? probeTimeout(c) : stepTimeout(c)),
      next,
      done: [
        {
          type: 'recordSurveyDisks',
          params: ({ context, event }: Read) => ({ node: node(context), disks: event.output }),
        },
      ],
      goOnTo: next,
    });
  return protocol.createStateConfig({
    description: 'Giving up: reading each node so that the outcome says what is really left.',
    tags: ['failure'],
    entry: 'startSurvey',
    initial: 'lookingAtSource',
    states: options.former
      ? // A replace: the former secondary is read too (its copies may be what is left).
        {
          lookingAtSource: look(sourceNode, 'lookingAtTarget'),
          lookingAtTarget: look(targetNode, 'lookingAtFormer'),
          lookingAtFormer: look(formerNode, 'sourceDisks'),
          sourceDisks: read(sourceNode, 'targetDisks'),
          targetDisks: read(targetNode, 'formerDisks'),
          formerDisks: read(formerNode, options.next),
        }
      : ({
          lookingAtSource: look(sourceNode, 'lookingAtTarget'),
          lookingAtTarget: look(targetNode, 'storageKind'),
          storageKind: {
            description: 'Shared storage has no replication state to read.',
            always: [{ guard: 'sharedStorage', target: options.next }, { target: 'sourceDisks' }],
          },
          sourceDisks: read(sourceNode, 'targetDisks'),
          targetDisks: read(targetNode, options.next),
        } as never),
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
  type Read = { event: { output: never } };
  return protocol.createStateConfig({
    initial: 'writing',
    states: {
      writing: {
        entry: 'countCommitAttempt',
        ...effectStep({
          src: 'setPrimaryNode',
          description: 'Writing the target into the config as the primary node.',
          input: (c) => ({
            instance: c.instance,
            node: c.target,
            ...(c.found.targetWithoutSelfFence === true ? { withdrawSelfFence: true } : {}),
          }),
          next: options.onCommitted,
          done: ['commit'],
          goOnTo: 'confirming',
          noting: [fromError('recordCommitWriteError', (message) => ({ message }))],
        }),
      },
      confirming: {
        meta: meta({ rules: [3] }),
        ...effectStep({
          src: 'getInstance',
          description: 'The write answered with an error: reading the config back, since it may have taken.',
          input: (c) => ({ instance: c.instance }),
          next: [
            {
              guard: { type: 'configNamesTarget', params: ({ event }: Read) => ({ config: event.output }) },
              target: options.onCommitted,
              actions: [
                'commit',
                warning(
                  (c) =>
                    `The config write answered with an error but had taken effect: the config names ${c.target}`,
                ),
              ],
            },
            {
              guard: 'mayRetryCommit',
              target: 'writing',
              actions: [
                'recordConfigRead',
                warning(
                  (c) =>
                    `Writing the config failed (${c.commit.error}); it still names ${c.source}: writing it once more`,
                ),
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
          goOnTo: [
            {
              guard: 'mayRetryCommit',
              target: 'writing',
              actions: warning(
                (c, e) =>
                  `Writing the config failed (${c.commit.error}) and reading it back failed too (${e}): writing it once more`,
              ),
            },
            {
              target: options.onFailed,
              actions: fromError('giveUpCommit', (readError) => ({ readError, repair: options.repair })),
            },
          ],
        }),
      },
    } as never,
  });
}

/**
 * The convergence policy for a copy whose dirty passes stopped shrinking, stage by stage
 * (machines/convergence.ts): a longer downtime limit, auto-converge, postcopy, each tried once in
 * order and then polled again (`poll`); with none left, the copy is given up (`onGiveUp`). A failed
 * switch to postcopy may have switched anyway: there is nothing to abort then (`onLost`).
 */
export function convergenceStages(o: { poll: string; onGiveUp: string; onLost: string }) {
  return {
    converging: protocol.createStateConfig({
      description:
        'The dirty passes stopped shrinking: the policy’s next stage, in order: a longer downtime limit (doubled up to its cap), auto-converge, postcopy; when none is left, abort and revert.',
      meta: meta({ rules: [5] }),
      always: [
        {
          guard: { type: 'nextStageIs', params: { stage: 'raiseDowntime' } },
          target: 'raisingDowntime',
        },
        { guard: { type: 'nextStageIs', params: { stage: 'autoConverge' } }, target: 'throttling' },
        {
          guard: { type: 'nextStageIs', params: { stage: 'postcopy' } },
          target: 'switchingToPostcopy',
          actions: 'passPointOfNoReturn',
        },
        // A growing throttle, or postcopy before Ganeti's number of dirty passes.
        { guard: { type: 'nextStageIs', params: { stage: 'wait' } }, target: o.poll },
        {
          target: o.onGiveUp,
          actions: failing((c) => notConvergedMessage(c.instance, c.policy, c.handover.converge), {
            says: 'Migration does not converge, aborting',
          }),
        },
      ],
    }),
    raisingDowntime: effectStep({
      src: 'setMigrationParameters',
      description:
        'Doubling the downtime limit (up to the policy’s cap) so that a bigger last pass may be sent.',
      input: (c) => ({
        instance: c.instance,
        node: c.source,
        downtimeMs: raisedDowntime(c.policy, c.handover.converge),
      }),
      next: o.poll,
      done: [
        {
          type: 'recordStage',
          params: ({ context }: { context: ProtocolContext }) => ({
            said: `downtime limit ${context.handover.converge.downtimeMs} → ${raisedDowntime(context.policy, context.handover.converge)} ms`,
            downtimeMs: raisedDowntime(context.policy, context.handover.converge),
          }),
        },
      ],
      failTo: o.onGiveUp,
      failure: (c, e) => `Could not raise the downtime limit of ${c.instance}: ${e}`,
    }),
    throttling: effectStep({
      src: 'setMigrationParameters',
      description:
        'Auto-converge: the guest’s CPUs are throttled so that it dirties less than the link copies.',
      input: (c) => ({ instance: c.instance, node: c.source, throttle: true as const }),
      next: o.poll,
      done: [
        {
          type: 'recordStage',
          params: { said: 'auto-converge (guest CPUs throttled)', throttled: true } as const,
        },
      ],
      failTo: o.onGiveUp,
      failure: (c, e) => `Could not throttle the guest of ${c.instance}: ${e}`,
    }),
    switchingToPostcopy: effectStep({
      src: 'startPostcopy',
      description:
        'Postcopy: the target runs the guest and fetches the rest of its memory; from the request on, the source cannot be resumed.',
      input: (c) => ({ instance: c.instance, node: c.source }),
      next: o.poll,
      done: [{ type: 'recordStage', params: { said: 'postcopy', postcopyStarted: true } as const }],
      failTo: o.onLost,
      failure: (c, e) =>
        `Could not switch the migration of ${c.instance} to postcopy, which may have switched anyway (it can no longer be aborted): ${e}`,
    }),
  };
}
