import { and } from 'xstate';
import {
  checkDiskConsistency,
  checkInstanceConfig,
  checkReadyForDualPrimary,
  checkRunsOnSourceOnly,
  cleanupHint,
  locate,
  planMemory,
} from './checks.js';
import type { NodeInfo } from './contract.js';
import { notConvergedMessage, raisedDowntime } from './convergence.js';
import { meta } from './describe.js';
import { errorText } from './effects.js';
import {
  abortMigration,
  backToSingleMaster,
  commitPrimary,
  effectStep,
  judgedRead,
  loadingConfig,
  outcomeState,
  survey,
  waitUntilSync,
} from './flows.js';
import { nextPollTimeout, overdue, seconds } from './limits.js';
import {
  askBoth,
  askBothAboutDisks,
  bothNodes,
  initialContext,
  outputOf,
  type ProtocolContext,
  protocol,
  step,
  where,
} from './protocol.js';

/**
 * Ganeti's newest _ExecMigration for DRBD instances, with its gaps closed: a failure while setting up
 * dual-master reverts the disks, every wait is bounded, a failure after the commit point tries once
 * more to finish forward, and whatever cannot be repaired ends in needsCleanup with a description of
 * what the nodes really look like.
 */
/** An operator abort before the disks are touched: stop where the instance is (nothing to revert). */
const stopBeforeTheDisks = {
  target: '#migration.endingReverted',
  actions: { type: 'fail', params: { message: 'Aborted by the operator before the disks were touched' } },
} as const;

export const migrationMachine = protocol.createMachine({
  id: 'migration',
  context: ({ input }) => initialContext(input),
  output: ({ context }) => outputOf(context),
  initial: 'checkingPrereqs',
  // An operator abort (delivered by the runner between steps): honoured before the handover by
  // reverting, refused after the point of no return with a word on what happens instead.
  on: { ABORT: { actions: 'refuseAbort' } },
  states: {
    /** Read-only checks: a failure here leaves everything as it was (rejected). */
    checkingPrereqs: {
      on: { ABORT: stopBeforeTheDisks },
      description:
        'Read-only checks before anything is touched: the config, where the instance runs, its memory, the target’s free memory and hypervisor, both nodes’ disks.',
      meta: meta({ rules: [6], check: 'Nothing was changed; fix the cause the error names and run again.' }),
      initial: 'loadingConfig',
      states: {
        loadingConfig: loadingConfig({
          check: (config, context) => checkInstanceConfig(config, context.request),
          next: 'locating',
          rejected: '#migration.rejected',
        }),
        locating: {
          description: 'Where does it run? It must run on the source only.',
          invoke: {
            id: 'instanceList',
            src: 'instanceList',
            input: askBoth,
            onDone: [
              {
                // Ganeti's fallback, decided here and only here: not running, failover allowed.
                guard: { type: 'fallsBackIn', params: ({ event }) => ({ lists: event.output }) },
                target: '#migration.rejected',
                actions: [
                  'recordFallback',
                  {
                    type: 'feedback',
                    params: { message: "Can't migrate, instance offline, fallback to failover" },
                  },
                ],
              },
              {
                guard: {
                  type: 'rejects',
                  params: ({ context, event }) => ({
                    problem: checkRunsOnSourceOnly(
                      event.output,
                      context.instance,
                      context.source,
                      context.target,
                    ),
                  }),
                },
                target: '#migration.rejected',
                actions: {
                  type: 'fail',
                  params: ({ context, event }) => ({
                    message: checkRunsOnSourceOnly(
                      event.output,
                      context.instance,
                      context.source,
                      context.target,
                    )!,
                  }),
                },
              },
              {
                target: 'inspecting',
                actions: { type: 'recordLocations', params: ({ event }) => ({ lists: event.output }) },
              },
            ],
            onError: {
              target: '#migration.rejected',
              actions: {
                type: 'fail',
                params: ({ event }) => ({ message: `Can't contact nodes: ${errorText(event.error)}` }),
              },
            },
          },
        },
        inspecting: {
          description: 'Reading the instance’s current memory on the source.',
          invoke: {
            id: 'instanceInfo',
            src: 'instanceInfo',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.source,
              timeoutMs: step(context),
            }),
            onDone: {
              target: 'checkingNodes',
              actions: {
                type: 'recordCurrentMemory',
                params: ({ event }) => ({ memoryMiB: event.output.memoryMiB }),
              },
            },
            onError: {
              target: '#migration.rejected',
              actions: {
                type: 'fail',
                params: ({ context, event }) => ({
                  message: `Error checking instance on node ${context.source}: ${errorText(event.error)}`,
                }),
              },
            },
          },
        },
        checkingNodes: {
          description: 'Free memory on the target (balloon or refuse) and hypervisor versions.',
          invoke: {
            id: 'nodeInfo',
            src: 'nodeInfo',
            input: askBoth,
            onDone: [
              {
                guard: {
                  type: 'rejects',
                  params: ({ context, event }) => ({
                    problem: memoryPlan(context, event.output).problem,
                  }),
                },
                target: '#migration.rejected',
                actions: {
                  type: 'fail',
                  params: ({ context, event }) => ({ message: memoryPlan(context, event.output).problem! }),
                },
              },
              {
                target: 'storageKind',
                actions: [
                  {
                    type: 'recordBalloon',
                    params: ({ context, event }) => memoryPlan(context, event.output),
                  },
                  {
                    type: 'feedback',
                    params: ({ context }) => ({ message: `Migrating instance ${context.instance}` }),
                  },
                  {
                    type: 'warn',
                    params: ({ context, event }) => ({
                      message: hypervisorMismatch(context.source, context.target, event.output),
                    }),
                  },
                ],
              },
            ],
            onError: {
              target: '#migration.rejected',
              actions: {
                type: 'fail',
                params: ({ event }) => ({
                  message: `Unable to retrieve node information: ${errorText(event.error)}`,
                }),
              },
            },
          },
        },
        storageKind: {
          description:
            'DRBD disks are checked for consistency; shared storage (Ganeti’s ext-mirror migration) has nothing to replicate.',
          always: [{ guard: 'sharedStorage', target: 'passed' }, { target: 'checkingDisks' }],
        },
        checkingDisks: judgedRead({
          src: 'diskStatus',
          description: 'Every disk Connected and UpToDate/UpToDate, single-master, on both nodes.',
          input: ({ context }) => ({
            instance: context.instance,
            nodes: bothNodes(context),
            disks: context.disks,
          }),
          problem: (c, status) => checkDiskConsistency(status, c.instance, c.source, c.target),
          next: 'passed',
          rejectTo: '#migration.rejected',
          failTo: '#migration.rejected',
          failure: (_, e) => `Cannot check disk consistency: ${e}`,
          says: () => '* checking disk consistency between source and target',
          rules: [4],
        }),
        passed: {
          description: 'Every check passed: balloon the instance if the target needs room, then go on.',
          always: [
            { guard: 'needsBalloon', target: '#migration.ballooning' },
            { target: '#migration.fetchingMigrationInfo' },
          ],
        },
      },
    },
    ballooning: {
      // The disks are untouched: on a failure the instance stays where it is, its memory put back.
      ...effectStep({
        src: 'balloonMemory',
        description:
          'Shrinking the instance’s memory so that it fits on the target (allowed runtime change).',
        says: (c) => `* setting instance memory to ${c.handover.balloonToMiB} MiB`,
        input: ({ context }) => ({
          instance: context.instance,
          node: context.source,
          memoryMiB: context.handover.balloonToMiB!,
        }),
        next: 'fetchingMigrationInfo',
        failTo: 'endingReverted',
        failure: (_, e) => `Cannot modify instance runtime memory: ${e}`,
      }),
      on: { ABORT: stopBeforeTheDisks },
      meta: meta({ check: 'If this failed the instance still runs on the source, maybe with less memory.' }),
    },
    fetchingMigrationInfo: {
      on: { ABORT: stopBeforeTheDisks },
      description:
        'Reading the source’s hypervisor runtime data that the target needs to accept the instance.',
      invoke: {
        id: 'migrationInfo',
        src: 'migrationInfo',
        input: ({ context }) => ({
          instance: context.instance,
          node: context.source,
          timeoutMs: step(context),
        }),
        onDone: {
          target: 'dualMaster',
          actions: { type: 'recordMigrationInfo', params: ({ event }) => event.output },
        },
        // Nothing was touched but the memory, if it was ballooned: that is put back.
        onError: [
          {
            guard: 'ballooned',
            target: 'restoringMemory',
            actions: { type: 'fail', params: migrationInfoFailure },
          },
          { target: 'rejected', actions: { type: 'fail', params: migrationInfoFailure } },
        ],
      },
    },
    /** The window opens: from here until the disks are single-master again, any failure reverts. */
    dualMaster: {
      on: {
        ABORT: {
          target: '#migration.revertingDisks',
          actions: {
            type: 'fail',
            params: { message: 'Aborted by the operator; reverting the disks to single-master' },
          },
        },
      },
      description:
        'Opening the dual-primary window: target disks closed, both sides standalone, reconnected with two primaries allowed, resynced, checked, then opened on both nodes.',
      meta: meta({
        rules: [2, 4],
        check:
          'A failure here reverts the disks to single-master; look at drbdsetup status on both nodes if the revert failed too.',
      }),
      initial: 'closingTargetDisks',
      states: {
        closingTargetDisks: {
          description: 'Making sure the target is Secondary (drbdsetup secondary).',
          entry: {
            type: 'feedback',
            params: ({ context }) => ({ message: `* closing instance disks on node ${context.target}` }),
          },
          invoke: {
            id: 'closeDisks',
            src: 'closeDisks',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.target,
              disks: context.disks,
              timeoutMs: step(context),
            }),
            onDone: [{ guard: 'sharedStorage', target: 'openingSource' }, { target: 'goingStandalone' }],
            onError: {
              target: '#migration.revertingDisks',
              actions: {
                type: 'fail',
                params: ({ context, event }) => ({
                  message: `Cannot close instance disks on node ${context.target}: ${errorText(event.error)}`,
                }),
              },
            },
          },
        },
        goingStandalone: {
          description: 'Disconnecting both nodes until StandAlone.',
          entry: { type: 'feedback', params: { message: '* changing into standalone mode' } },
          invoke: {
            id: 'disconnectNet',
            src: 'disconnectNet',
            input: askBothAboutDisks,
            onDone: 'attaching',
            onError: {
              target: '#migration.revertingDisks',
              actions: {
                type: 'fail',
                params: ({ event }) => ({ message: `Cannot disconnect disks: ${errorText(event.error)}` }),
              },
            },
          },
        },
        attaching: {
          description: 'Reconnecting both nodes with allow-two-primaries.',
          meta: meta({ rules: [2] }),
          entry: { type: 'feedback', params: { message: '* changing disks into dual-master mode' } },
          invoke: {
            id: 'attachNet',
            src: 'attachNet',
            input: ({ context }) => ({
              instance: context.instance,
              nodes: bothNodes(context),
              disks: context.disks,
              multimaster: true,
              timeoutMs: step(context),
            }),
            onDone: 'syncing',
            onError: {
              target: '#migration.revertingDisks',
              actions: {
                type: 'fail',
                params: ({ event }) => ({ message: `Cannot change disks config: ${errorText(event.error)}` }),
              },
            },
          },
        },
        syncing: {
          description: 'Waiting for the resync of what the source wrote while disconnected.',
          meta: meta({ rules: [4, 5] }),
          ...waitUntilSync({ onFailed: '#migration.revertingDisks', tolerated: false }),
          onDone: 'verifying',
        },
        /** Safety rule 4, checked on the nodes' own answer rather than assumed from the steps before. */
        verifying: judgedRead({
          src: 'diskStatus',
          description:
            'Reading both nodes back: Connected, UpToDate/UpToDate, two primaries allowed, before any promotion.',
          input: ({ context }) => ({
            instance: context.instance,
            nodes: bothNodes(context),
            disks: context.disks,
          }),
          problem: (c, status) => checkReadyForDualPrimary(status, bothNodes(c)),
          next: 'openingSource',
          rejectTo: '#migration.revertingDisks',
          failTo: '#migration.revertingDisks',
          failure: (_, e) => `Cannot read disk status: ${e}`,
          rules: [4],
        }),
        openingSource: {
          description: 'Opening the disks on the source in shared mode (it stays Primary).',
          entry: {
            type: 'feedback',
            params: ({ context }) => ({
              message: `* opening instance disks on node ${context.source} in shared mode`,
            }),
          },
          invoke: {
            id: 'openDisks',
            src: 'openDisks',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.source,
              disks: context.disks,
              exclusive: false,
              timeoutMs: step(context),
            }),
            onDone: 'openingTarget',
            onError: {
              target: '#migration.revertingDisks',
              actions: {
                type: 'fail',
                params: ({ context, event }) => ({
                  message: `Cannot open instance disks on node ${context.source}: ${errorText(event.error)}`,
                }),
              },
            },
          },
        },
        openingTarget: {
          description: 'Promoting the target: both nodes are Primary from here.',
          meta: meta({ rules: [2, 4] }),
          entry: {
            type: 'feedback',
            params: ({ context }) => ({
              message: `* opening instance disks on node ${context.target} in shared mode`,
            }),
          },
          invoke: {
            id: 'openDisks',
            src: 'openDisks',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.target,
              disks: context.disks,
              exclusive: false,
              timeoutMs: step(context),
            }),
            onDone: '#migration.migrating',
            onError: {
              target: '#migration.revertingDisks',
              actions: {
                type: 'fail',
                params: ({ context, event }) => ({
                  message: `Cannot open instance disks on node ${context.target}: ${errorText(event.error)}`,
                }),
              },
            },
          },
        },
      },
    },
    migrating: {
      // The instance may be on both nodes here: resuming blind is guessing.
      tags: ['handover'],
      on: {
        ABORT: [
          { guard: 'pastPointOfNoReturn', actions: 'refuseAbort' },
          {
            target: '#migration.aborting',
            actions: [
              { type: 'feedback', params: { message: 'Aborted by the operator, aborting' } },
              { type: 'fail', params: { message: 'Aborted by the operator; the handover is being undone' } },
            ],
          },
        ],
      },
      description:
        'The hypervisor’s handover: the target accepts, the source copies memory while the machine polls progress.',
      meta: meta({
        rules: [1, 5],
        check: 'query-migrate on the source; the instance may exist on both nodes only inside this step.',
      }),
      initial: 'accepting',
      states: {
        accepting: {
          description: 'Starting the target’s hypervisor waiting for the incoming instance.',
          entry: {
            type: 'feedback',
            params: ({ context }) => ({ message: `* preparing ${context.target} to accept the instance` }),
          },
          invoke: {
            id: 'acceptInstance',
            src: 'acceptInstance',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.target,
              source: context.source,
              info: context.handover.migrationInfo ?? {},
              postcopy: context.policy.postcopy && (context.handover.live ?? true),
              timeoutMs: step(context),
            }),
            onDone: 'settingParameters',
            onError: {
              target: '#migration.aborting',
              actions: [
                { type: 'feedback', params: { message: 'Pre-migration failed, aborting' } },
                {
                  type: 'fail',
                  params: ({ context, event }) => ({
                    message: `Could not pre-migrate instance ${context.instance}: ${errorText(event.error)}`,
                  }),
                },
              ],
            },
          },
        },
        settingParameters: effectStep({
          src: 'setMigrationParameters',
          description:
            'The copy’s bandwidth and downtime limits, and what the convergence policy may switch on during it, set on the source before it starts.',
          input: ({ context }) => ({
            instance: context.instance,
            node: context.source,
            bandwidthMiBps: context.policy.bandwidthMiBps,
            downtimeMs: context.handover.converge.downtimeMs,
            prepare: {
              autoConverge: context.policy.autoConverge,
              postcopy: context.policy.postcopy && (context.handover.live ?? true),
            },
          }),
          next: 'starting',
          failTo: '#migration.aborting',
          failure: (c, e) => `Could not set the migration parameters of ${c.instance}: ${e}`,
        }),
        starting: {
          description: 'Starting the memory copy on the source.',
          entry: {
            type: 'feedback',
            params: ({ context }) => ({ message: `* migrating instance to ${context.target}` }),
          },
          invoke: {
            id: 'migrateInstance',
            src: 'migrateInstance',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.source,
              target: context.target,
              live: context.handover.live ?? true,
              timeoutMs: step(context),
            }),
            onDone: 'transferring',
            onError: {
              target: '#migration.aborting',
              actions: [
                { type: 'feedback', params: { message: 'Migration failed, aborting' } },
                {
                  type: 'fail',
                  params: ({ context, event }) => ({
                    message: `Could not migrate instance ${context.instance}: ${errorText(event.error)}`,
                  }),
                },
              ],
            },
          },
        },
        transferring: {
          description: 'Memory copy in progress; a switch to postcopy makes the source unresumable.',
          tags: ['pointOfNoReturn'],
          meta: meta({ marker: 'point of no return', rules: [1, 5] }),
          entry: [{ type: 'feedback', params: { message: '* starting memory transfer' } }, 'startWatch'],
          initial: 'polling',
          states: {
            polling: {
              description:
                'Asking the source how the memory copy goes (a long poll, bounded by the nearer deadline).',
              invoke: {
                id: 'migrationStatus',
                src: 'migrationStatus',
                input: ({ context }) => ({
                  instance: context.instance,
                  node: context.source,
                  timeoutMs: nextPollTimeout(
                    context.watch,
                    context.limits.pollWindowMs,
                    context.limits.migrationTotalMs,
                    context.limits.migrationNoProgressMs,
                  ),
                }),
                onDone: {
                  target: 'judging',
                  actions: { type: 'recordMemory', params: ({ event }) => event.output },
                },
                onError: [
                  {
                    guard: 'pastPointOfNoReturn',
                    target: '#migration.surveying',
                    actions: {
                      type: 'fail',
                      params: ({ context, event }) => ({
                        message: `Lost track of the postcopy migration of ${context.instance} (it can no longer be aborted): ${errorText(event.error)}`,
                      }),
                    },
                  },
                  {
                    target: '#migration.aborting',
                    actions: [
                      { type: 'feedback', params: { message: 'Migration failed, aborting' } },
                      {
                        type: 'fail',
                        params: ({ context, event }) => ({
                          message: `Could not migrate instance ${context.instance}: ${errorText(event.error)}`,
                        }),
                      },
                    ],
                  },
                ],
              },
            },
            judging: {
              description: 'Completed, failed, broken postcopy, overdue, or poll again.',
              always: [
                {
                  guard: 'migrationCompleted',
                  target: '#migration.finalizing',
                  actions: { type: 'feedback', params: { message: '* memory transfer complete' } },
                },
                {
                  guard: 'postcopyBroken',
                  target: '#migration.surveying',
                  actions: {
                    type: 'fail',
                    params: ({ context }) => ({
                      message: `The postcopy migration of ${context.instance} broke off (${context.handover.memory?.status}); the instance is split between ${context.source} and ${context.target} and cannot be resumed on the source`,
                    }),
                  },
                },
                {
                  // The source's memory went on with the target: there is nothing left to resume.
                  guard: and(['migrationFailed', 'pastPointOfNoReturn']),
                  target: '#migration.surveying',
                  actions: {
                    type: 'fail',
                    params: ({ context }) => ({
                      message: `The postcopy migration of ${context.instance} failed (${context.handover.memory?.status}); the guest's memory was split between ${context.source} and ${context.target} and cannot be resumed on the source`,
                    }),
                  },
                },
                {
                  guard: 'migrationFailed',
                  target: '#migration.aborting',
                  actions: [
                    { type: 'feedback', params: { message: 'Migration failed, aborting' } },
                    {
                      type: 'fail',
                      params: ({ context }) => ({
                        message: `Could not migrate instance ${context.instance}: hypervisor returned failure (${context.handover.memory?.status})`,
                      }),
                    },
                  ],
                },
                {
                  guard: 'migrationOverdue',
                  target: '#migration.aborting',
                  actions: [
                    { type: 'feedback', params: { message: 'Migration overdue, aborting' } },
                    {
                      type: 'fail',
                      params: ({ context }) => ({ message: migrationOverdueMessage(context) }),
                    },
                  ],
                },
                { guard: 'copyStalled', target: 'converging' },
                { target: 'polling' },
              ],
            },
            /** The convergence policy, stage by stage (machines/convergence.ts). */
            converging: {
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
                { guard: { type: 'nextStageIs', params: { stage: 'wait' } }, target: 'polling' },
                {
                  target: '#migration.aborting',
                  actions: [
                    { type: 'feedback', params: { message: 'Migration does not converge, aborting' } },
                    {
                      type: 'fail',
                      params: ({ context }) => ({
                        message: notConvergedMessage(
                          context.instance,
                          context.policy,
                          context.handover.converge,
                        ),
                      }),
                    },
                  ],
                },
              ],
            },
            raisingDowntime: effectStep({
              src: 'setMigrationParameters',
              description:
                'Doubling the downtime limit (up to the policy’s cap) so that a bigger last pass may be sent.',
              input: ({ context }) => ({
                instance: context.instance,
                node: context.source,
                downtimeMs: raisedDowntime(context.policy, context.handover.converge),
              }),
              next: 'polling',
              done: {
                type: 'recordStage',
                params: ({ context }: { context: ProtocolContext }) => ({
                  said: `downtime limit ${context.handover.converge.downtimeMs} → ${raisedDowntime(context.policy, context.handover.converge)} ms`,
                  downtimeMs: raisedDowntime(context.policy, context.handover.converge),
                }),
              },
              failTo: '#migration.aborting',
              failure: (c, e) => `Could not raise the downtime limit of ${c.instance}: ${e}`,
            }),
            throttling: effectStep({
              src: 'setMigrationParameters',
              description:
                'Auto-converge: the guest’s CPUs are throttled so that it dirties less than the link copies.',
              input: ({ context }) => ({
                instance: context.instance,
                node: context.source,
                throttle: true as const,
              }),
              next: 'polling',
              done: {
                type: 'recordStage',
                params: { said: 'auto-converge (guest CPUs throttled)', throttled: true } as const,
              },
              failTo: '#migration.aborting',
              failure: (c, e) => `Could not throttle the guest of ${c.instance}: ${e}`,
            }),
            switchingToPostcopy: effectStep({
              src: 'startPostcopy',
              description:
                'Postcopy: the target runs the guest and fetches the rest of its memory; from the request on, the source cannot be resumed.',
              input: ({ context }) => ({ instance: context.instance, node: context.source }),
              next: 'polling',
              done: { type: 'recordStage', params: { said: 'postcopy', postcopyStarted: true } as const },
              failTo: '#migration.surveying',
              failure: (c, e) =>
                `Could not switch the migration of ${c.instance} to postcopy, which may have switched anyway (it can no longer be aborted): ${e}`,
            }),
          },
        },
      },
    },
    aborting: {
      description:
        'Stopping a failed handover: kill the target’s copy, resume the source; looks first in case the copy had completed.',
      tags: ['failure', 'handover'],
      meta: meta({ rules: [1], check: 'Where does the instance run? It must not run on both nodes.' }),
      ...abortMigration({ next: '#migration.revertingDisks', onHandoverCompleted: '#migration.finalizing' }),
    },
    /** Both finalizes always run; only when both succeeded is the commit point reached. */
    finalizing: {
      // The instance may be on both nodes here: resuming blind is guessing.
      tags: ['handover'],
      description:
        'The copy completed: finalize on the source (quit it) and on the target (keep it); both are always attempted.',
      meta: meta({ rules: [1, 3] }),
      initial: 'source',
      states: {
        source: {
          invoke: {
            id: 'finalizeMigrationSource',
            src: 'finalizeMigrationSource',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.source,
              success: true,
              live: context.handover.live ?? true,
              timeoutMs: step(context),
            }),
            onDone: 'target',
            onError: {
              target: 'target',
              actions: {
                type: 'recordFinalizeError',
                // The effect's error already names the node.
                params: ({ event }) => ({ message: errorText(event.error) }),
              },
            },
          },
        },
        target: {
          invoke: {
            id: 'finalizeMigrationTarget',
            src: 'finalizeMigrationTarget',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.target,
              info: context.handover.migrationInfo ?? {},
              success: true,
              timeoutMs: step(context),
            }),
            onDone: 'judging',
            onError: {
              target: 'judging',
              actions: {
                type: 'recordFinalizeError',
                // The effect's error already names the node.
                params: ({ event }) => ({ message: errorText(event.error) }),
              },
            },
          },
        },
        judging: {
          always: [
            {
              guard: 'finalizeFailed',
              target: '#migration.surveying',
              actions: {
                type: 'fail',
                params: ({ context }) => ({
                  message: `Could not finalize instance migration: ${context.handover.finalizeErrors.join('; ')}; the config still names ${context.source}; ${cleanupHint(context.instance)}`,
                }),
              },
            },
            { target: '#migration.committing' },
          ],
        },
      },
    },
    /** The one commit point: the config names the target from here on. */
    committing: {
      description:
        'The one commit point: the cluster config now names the target as the primary node (a failed write is read back, then tried once more).',
      tags: ['commit'],
      meta: meta({
        marker: 'commit point',
        rules: [3],
        check: 'The config must name the node where the instance runs.',
      }),
      ...commitPrimary({
        onCommitted: '#migration.singleMaster',
        onFailed: '#migration.singleMaster',
        repair: 'the instance runs there: the cleanup repairs the config',
      }),
    },
    revertingDisks: {
      description:
        'A failure before the commit: the disks go back to single-master with the source as the only primary.',
      tags: ['failure'],
      meta: meta({ rules: [2] }),
      always: { target: 'singleMaster', actions: 'demoteTarget' },
    },
    /** Written once: the forward tail after the commit, and the revert after a failure before it. */
    singleMaster: {
      description:
        'Back to single-master (written once, used forward and for the revert): demote one node, let the disks settle, standalone, reconnect without two primaries, resync.',
      meta: meta({
        rules: [2, 5],
        check: 'drbdsetup status: one Primary, allow-two-primaries off, Connected, UpToDate/UpToDate.',
      }),
      entry: 'countSingleMasterAttempt',
      ...backToSingleMaster({ self: '#migration.singleMaster', onFailed: '#migration.singleMasterFailed' }),
      onDone: [
        { guard: 'committed', target: 'migrated' },
        // Single-master around the target, but the config still does not name it.
        { guard: 'commitFailed', target: 'surveying' },
        { guard: 'sourceResumeFailed', target: 'confirmingRevert' },
        { target: 'endingReverted' },
      ],
    },
    /** The source would not resume after the abort: a revert is claimed only where the guest runs. */
    confirmingRevert: {
      description:
        'The source did not confirm it resumed after the aborted copy: looking whether the instance runs there before saying it was reverted.',
      tags: ['failure'],
      meta: meta({ rules: [1], check: 'Where does the instance run, and is it running or paused?' }),
      invoke: {
        id: 'instanceList',
        src: 'instanceList',
        input: askBoth,
        onDone: [
          {
            guard: { type: 'runningOnSourceOnlyIn', params: ({ event }) => ({ lists: event.output }) },
            target: 'endingReverted',
            actions: { type: 'recordLocations', params: ({ event }) => ({ lists: event.output }) },
          },
          {
            target: 'surveying',
            actions: [
              { type: 'recordLocations', params: ({ event }) => ({ lists: event.output }) },
              {
                type: 'fail',
                params: ({ context }) => ({
                  message: `The migration of ${context.instance} was aborted, but it is not running on ${context.source} (${
                    where(context)
                      .map((n) => `${locate(context.found.locations!, context.instance, n)} on ${n}`)
                      .join(', ') || 'found nowhere'
                  }); the cleanup resumes a paused source`,
                }),
              },
            ],
          },
        ],
        onError: {
          target: 'surveying',
          actions: {
            type: 'fail',
            params: ({ context, event }) => ({
              message: `The migration of ${context.instance} was aborted, but whether it runs on ${context.source} could not be read: ${errorText(event.error)}`,
            }),
          },
        },
      },
    },
    /** Every revert ends here: memory ballooned down to fit the target is put back (Ganeti forgets). */
    endingReverted: {
      description:
        'The migration was undone: if the instance was ballooned down to fit the target, its memory is put back first.',
      always: [{ guard: 'ballooned', target: 'restoringMemory' }, { target: 'reverted' }],
    },
    restoringMemory: {
      description: 'Putting back the memory the instance had before it was ballooned down to fit the target.',
      tags: ['failure'],
      entry: {
        type: 'feedback',
        params: ({ context }) => ({
          message: `* setting instance memory back to ${context.handover.currentMemoryMiB} MiB`,
        }),
      },
      invoke: {
        id: 'balloonMemory',
        src: 'balloonMemory',
        input: ({ context }) => ({
          instance: context.instance,
          node: context.source,
          memoryMiB: context.handover.currentMemoryMiB!,
          timeoutMs: step(context),
        }),
        onDone: 'reverted',
        // The instance runs where it was; its smaller memory is worth a warning, not a cleanup.
        onError: {
          target: 'reverted',
          actions: {
            type: 'fail',
            params: ({ context, event }) => ({
              message: `Could not put the memory of ${context.instance} back to ${context.handover.currentMemoryMiB} MiB on ${context.source} (it stays at ${context.handover.balloonToMiB} MiB): ${errorText(event.error)}`,
              tolerated: true,
            }),
          },
        },
      },
    },
    singleMasterFailed: {
      description:
        'The way back to single-master failed: after the commit it is tried once more, otherwise the run gives up.',
      tags: ['failure'],
      always: [
        { guard: 'mayRetrySingleMaster', target: 'singleMaster', actions: 'retryForward' },
        { target: 'surveying' },
      ],
    },
    surveying: {
      description: 'Giving up: reading both nodes so that the outcome says what is really left.',
      tags: ['failure'],
      ...survey({ next: '#migration.needsCleanup' }),
    },
    migrated: outcomeState(
      'migrated',
      'Done: the instance runs on the target, the config says so, the disks are single-master again.',
      { done: true },
    ),
    reverted: outcomeState(
      'reverted',
      'The migration failed and was undone: the instance runs on the source, the config names the source, the disks are single-master.',
      { check: 'Read the error: it names the step and the node that failed.' },
    ),
    rejected: outcomeState('rejected', 'A prerequisite failed or the input was bad: nothing was touched.', {
      rules: [6],
      check: 'Fix the cause the error names and run again.',
    }),
    needsCleanup: outcomeState(
      'needsCleanup',
      'The run could not finish or undo its work; `left` says what the nodes look like.',
      {
        rules: [2],
        check:
          'Inspect both nodes, then run the cleanup: drbd-migrate migrate INSTANCE --cleanup, with the --cluster FILE or --world FILE the run used.',
      },
    ),
  },
});

function migrationInfoFailure({ context, event }: { context: ProtocolContext; event: { error: unknown } }) {
  return {
    message: `Failed fetching source migration information from ${context.source}: ${errorText(event.error)}`,
  };
}

function memoryPlan(context: ProtocolContext, nodes: Record<string, NodeInfo>) {
  const targetInfo = nodes[context.target];
  if (targetInfo === undefined || context.config === null) {
    return { problem: `Can't get data from node ${context.target}`, balloonToMiB: null };
  }
  return planMemory(
    context.config,
    context.target,
    targetInfo,
    context.handover.currentMemoryMiB ?? context.config.memoryMiB,
    context.request.allowRuntimeChanges,
  );
}

function hypervisorMismatch(source: string, target: string, nodes: Record<string, NodeInfo>): string | null {
  const a = nodes[source]?.hypervisorVersion;
  const b = nodes[target]?.hypervisorVersion;
  if (a === undefined || b === undefined || a === b) return null;
  return `* warning: hypervisor version mismatch between source (${a}) and target (${b}) node`;
}

function migrationOverdueMessage(context: ProtocolContext): string {
  const why =
    context.watch === null
      ? null
      : overdue(context.watch, context.limits.migrationTotalMs, context.limits.migrationNoProgressMs);
  return why === 'total'
    ? `Could not migrate instance ${context.instance}: the memory transfer did not finish within ${seconds(context.limits.migrationTotalMs)}`
    : `Could not migrate instance ${context.instance}: the memory transfer made no progress for ${seconds(context.limits.migrationNoProgressMs)}`;
}
