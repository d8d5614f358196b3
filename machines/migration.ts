import { and } from 'xstate';
import {
  checkDiskConsistency,
  checkInstanceConfig,
  checkReadyForDualPrimary,
  checkRunsOnSourceOnly,
  checkSelfFence,
  cleanupHint,
  hypervisorMismatch,
  planMemory,
} from './checks.js';
import type { DirtyRate, InstanceInfo, MigrationStatus, NodeInfo } from './contract.js';
import { mayPostcopy } from './convergence.js';
import { meta } from './describe.js';
import {
  abortMigration,
  backToSingleMaster,
  commitPrimary,
  convergenceStages,
  survey,
  waitUntilSync,
} from './flows.js';
import { nextPollTimeout } from './limits.js';
import { forecastCopy, SAMPLE_PAGES } from './prediction.js';
import {
  bothNodes,
  copyOverdueMessage,
  foundAt,
  type ProtocolContext,
  protocol,
  runMachineBase,
  stepTimeout,
} from './protocol.js';
import {
  abortTo,
  aboutBoth,
  aboutDisksOnBoth,
  effectStep,
  ensureSecondary,
  evenIfFailed,
  failing,
  finalizeMigrationSource,
  finalizeMigrationTarget,
  fromAnswer,
  fromError,
  goReconnect,
  goStandalone,
  inLists,
  judgedRead,
  loadingConfig,
  openInstanceDisks,
  outcomeState,
  recordLocations,
  saying,
  sequence,
  sourceNode,
  targetNode,
  warning,
} from './steps.js';

/**
 * Ganeti's newest _ExecMigration for DRBD instances, with its gaps closed: a failure while setting up
 * dual-master reverts the disks, every wait is bounded, a failure after the commit point tries once
 * more to finish forward, and whatever cannot be repaired ends in needsCleanup with a description of
 * what the nodes really look like.
 */

/** An operator abort before the disks are touched: stop where the instance is (nothing to revert). */
const stopBeforeTheDisks = abortTo(
  '#migration.endingReverted',
  'Aborted by the operator before the disks were touched',
);

type Nodes = Record<string, NodeInfo>;
/** A finalize that failed is kept, not acted on: both are always attempted, then judged together. */
const noteFinalizeError = fromError('recordFinalizeError', (message) => ({ message }));
const aborting = '#migration.aborting';

export const migrationMachine = protocol.createMachine({
  id: 'migration',
  ...runMachineBase,
  initial: 'checkingPrereqs',
  // An operator abort (delivered by the runner between steps): honoured before the handover by
  // reverting, refused (runMachineBase) after the point of no return with a word on what happens.
  states: {
    /** Read-only checks: a failure here leaves everything as it was (rejected). */
    checkingPrereqs: {
      // Nothing is touched before the prerequisites pass: an abort here is a refusal.
      on: { ABORT: abortTo('#migration.rejected', 'Aborted by the operator; nothing was touched') },
      description:
        'Read-only checks before anything is touched: the config, where the instance runs, its memory, the target’s free memory and hypervisor, both nodes’ disks.',
      meta: meta({ rules: [6], check: 'Nothing was changed; fix the cause the error names and run again.' }),
      initial: 'loadingConfig',
      states: {
        loadingConfig: loadingConfig({
          check: (config, context) => checkInstanceConfig(config, context.request),
          next: 'locating',
          rejected: '#migration.rejected',
          copiesMemory: true,
        }),
        locating: judgedRead({
          src: 'instanceList',
          description: 'Where does it run? It must run on the source only.',
          input: aboutBoth,
          first: [
            {
              // Ganeti's fallback, decided here and only here: not running, failover allowed.
              guard: inLists('fallsBackIn'),
              target: '#migration.rejected',
              actions: ['recordFallback', saying("Can't migrate, instance offline, fallback to failover")],
            },
          ],
          problem: (c, lists) => checkRunsOnSourceOnly(lists, c.instance, c.source, c.target),
          next: 'inspecting',
          done: [recordLocations],
          failTo: '#migration.rejected',
          failure: (_, e) => `Can't contact nodes: ${e}`,
        }),
        inspecting: effectStep({
          src: 'instanceInfo',
          description: 'Reading the instance’s current memory on the source.',
          input: (c) => ({ instance: c.instance, node: c.source }),
          next: 'checkingNodes',
          done: [fromAnswer('recordCurrentMemory', ({ memoryMiB }: InstanceInfo) => ({ memoryMiB }))],
          failTo: '#migration.rejected',
          failure: (c, e) => `Error checking instance on node ${c.source}: ${e}`,
        }),
        checkingNodes: judgedRead({
          src: 'nodeInfo',
          description: 'Free memory on the target (balloon or refuse) and hypervisor versions.',
          input: aboutBoth,
          problem: (c, nodes) => memoryPlan(c, nodes).problem,
          next: 'storageKind',
          done: [
            fromAnswer('recordBalloon', (nodes: Nodes, c) => memoryPlan(c, nodes)),
            saying((c) => `Migrating instance ${c.instance}`),
            fromAnswer('warn', (nodes: Nodes, c) => ({
              message: hypervisorMismatch(c.source, c.target, nodes),
            })),
          ],
          failTo: '#migration.rejected',
          failure: (_, e) => `Unable to retrieve node information: ${e}`,
        }),
        storageKind: {
          description:
            'DRBD disks are checked for consistency; shared storage (Ganeti’s ext-mirror migration) has nothing to replicate.',
          always: [{ guard: 'sharedStorage', target: 'predicting' }, { target: 'checkingDisks' }],
        },
        checkingDisks: judgedRead({
          src: 'diskStatus',
          description:
            'Every disk Connected and UpToDate/UpToDate, single-master, on both nodes; with selfFenceMs, the target would stop the instance on losing quorum.',
          input: aboutDisksOnBoth,
          problem: (c, status) =>
            checkDiskConsistency(status, c.instance, c.source, c.target) ??
            checkSelfFence(c.config, status, c.target),
          next: 'predicting',
          failTo: '#migration.rejected',
          failure: (_, e) => `Cannot check disk consistency: ${e}`,
          says: () => '* checking disk consistency between source and target',
          rules: [1, 4],
        }),
        predicting: {
          description: 'A live copy is predicted first, when its policy asks for it (the default).',
          always: [{ guard: 'predictionWanted', target: 'measuring' }, { target: 'passed' }],
        },
        measuring: effectStep({
          src: 'measureDirtyRate',
          description:
            'How fast does the guest dirty its memory (QEMU calc-dirty-rate, page sampling)? A copy predicted never to converge, even by the most hopeful reading, is refused here.',
          input: (c) => ({
            instance: c.instance,
            node: c.source,
            calcSeconds: c.policy.measureSeconds,
            samplePages: SAMPLE_PAGES,
          }),
          timeoutMs: (c) => stepTimeout(c) + c.policy.measureSeconds * 1000,
          next: [
            {
              guard: fromAnswer('rejects', (rate: DirtyRate, c) => ({ problem: refusal(c, rate) })),
              target: '#migration.rejected',
              actions: fromAnswer('fail', (rate: DirtyRate, c) => ({ message: refusal(c, rate) })),
            },
            {
              target: 'passed',
              actions: [
                fromAnswer('feedback', (rate: DirtyRate, c) => ({
                  message: `* ${forecastOf(c, rate).says}`,
                })),
                fromAnswer('forecastSaid', (rate: DirtyRate, c) => {
                  const { copySeconds, downtimeMs, passes } = forecastOf(c, rate).hopeful;
                  return { copySeconds, downtimeMs, passes };
                }),
              ],
            },
          ],
          // A prediction is advice: without it the copy is judged pass by pass, as always.
          goOnTo: 'passed',
          noting: [
            warning(
              (c, e) =>
                `Could not measure how fast ${c.instance} dirties its memory (${e}); the copy is judged pass by pass as always`,
            ),
          ],
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
        input: (c) => ({ instance: c.instance, node: c.source, memoryMiB: c.handover.balloonToMiB! }),
        next: 'fetchingMigrationInfo',
        failTo: 'endingReverted',
        failure: (_, e) => `Cannot modify instance runtime memory: ${e}`,
      }),
      on: { ABORT: stopBeforeTheDisks },
      meta: meta({ check: 'If this failed the instance still runs on the source, maybe with less memory.' }),
    },
    fetchingMigrationInfo: {
      on: { ABORT: stopBeforeTheDisks },
      ...effectStep({
        src: 'migrationInfo',
        description:
          'Reading the source’s hypervisor runtime data that the target needs to accept the instance.',
        input: (c) => ({ instance: c.instance, node: c.source }),
        next: 'dualMaster',
        done: [fromAnswer('recordMigrationInfo', (info: Record<string, unknown>) => info)],
        // Nothing was touched but the memory, if it was ballooned: that is put back.
        failTo: [{ guard: 'ballooned', target: 'restoringMemory' }, { target: 'rejected' }],
        failure: (c, e) => `Failed fetching source migration information from ${c.source}: ${e}`,
      }),
    },
    /** The window opens: from here until the disks are single-master again, any failure reverts. */
    dualMaster: {
      on: {
        ABORT: abortTo(
          '#migration.revertingDisks',
          'Aborted by the operator while the disks went dual-master',
        ),
      },
      description:
        'Opening the dual-primary window: target disks closed, both sides standalone, reconnected with two primaries allowed, resynced, checked, then opened on both nodes.',
      meta: meta({
        rules: [2, 4],
        check:
          'A failure here reverts the disks to single-master; look at drbdsetup status on both nodes if the revert failed too.',
      }),
      ...sequence(
        { failTo: '#migration.revertingDisks', onDone: '#migration.migrating' },
        {
          closingTargetDisks: (link) =>
            ensureSecondary({
              node: targetNode,
              description: 'Making sure the target is Secondary (drbdsetup secondary).',
              next: [{ guard: 'sharedStorage', target: 'openingSource' }, { target: link.next }],
              failTo: link.failTo,
            }),
          goingStandalone: goStandalone,
          attaching: (link) =>
            goReconnect({
              ...link,
              multimaster: true,
              description: 'Reconnecting both nodes with allow-two-primaries.',
              rules: [2],
            }),
          syncing: (link) => ({
            description: 'Waiting for the resync of what the source wrote while disconnected.',
            meta: meta({ rules: [4, 5] }),
            ...waitUntilSync({ onFailed: link.failTo, tolerated: false }),
            onDone: link.next,
          }),
          /** Safety rule 4, checked on the nodes' own answer rather than assumed from the steps before. */
          verifying: (link) =>
            judgedRead({
              src: 'diskStatus',
              description:
                'Reading both nodes back: Connected, UpToDate/UpToDate, two primaries allowed, before any promotion.',
              input: aboutDisksOnBoth,
              problem: (c, status) => checkReadyForDualPrimary(status, bothNodes(c)),
              next: link.next,
              failTo: link.failTo,
              failure: (_, e) => `Cannot read disk status: ${e}`,
              rules: [4],
            }),
          openingSource: (link) =>
            openInstanceDisks({
              ...link,
              node: sourceNode,
              exclusive: false,
              description: 'Opening the disks on the source in shared mode (it stays Primary).',
            }),
          openingTarget: (link) =>
            openInstanceDisks({
              ...link,
              node: targetNode,
              exclusive: false,
              description: 'Promoting the target: both nodes are Primary from here.',
              rules: [2, 4],
            }),
        },
      ),
    },
    migrating: {
      // The instance may be on both nodes here: resuming blind is guessing.
      tags: ['handover'],
      on: {
        ABORT: [
          { guard: 'pastPointOfNoReturn', actions: 'refuseAbort' },
          abortTo(
            aborting,
            'Aborted by the operator during the handover',
            'Aborted by the operator, aborting',
          ),
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
        accepting: effectStep({
          src: 'acceptInstance',
          description: 'Starting the target’s hypervisor waiting for the incoming instance.',
          says: (c) => `* preparing ${c.target} to accept the instance`,
          input: (c) => ({
            instance: c.instance,
            node: c.target,
            source: c.source,
            info: c.handover.migrationInfo ?? {},
            postcopy: mayPostcopy(c.policy, c.handover.live),
          }),
          next: 'settingParameters',
          failTo: aborting,
          failSays: 'Pre-migration failed, aborting',
          failure: (c, e) => `Could not pre-migrate instance ${c.instance}: ${e}`,
        }),
        settingParameters: effectStep({
          src: 'setMigrationParameters',
          description:
            'The copy’s bandwidth and downtime limits, and what the convergence policy may switch on during it, set on the source before it starts.',
          input: (c) => ({
            instance: c.instance,
            node: c.source,
            bandwidthMiBps: c.policy.bandwidthMiBps,
            downtimeMs: c.handover.converge.downtimeMs,
            prepare: {
              autoConverge: c.policy.autoConverge,
              postcopy: mayPostcopy(c.policy, c.handover.live),
            },
          }),
          next: 'starting',
          failTo: aborting,
          failure: (c, e) => `Could not set the migration parameters of ${c.instance}: ${e}`,
        }),
        starting: effectStep({
          src: 'migrateInstance',
          description: 'Starting the memory copy on the source.',
          says: (c) => `* migrating instance to ${c.target}`,
          input: (c) => ({
            instance: c.instance,
            node: c.source,
            target: c.target,
            live: c.handover.live ?? true,
          }),
          next: 'transferring',
          failTo: aborting,
          failSays: 'Migration failed, aborting',
          failure: (c, e) => `Could not migrate instance ${c.instance}: ${e}`,
        }),
        transferring: {
          description: 'Memory copy in progress; a switch to postcopy makes the source unresumable.',
          tags: ['pointOfNoReturn'],
          meta: meta({ marker: 'point of no return', rules: [1, 5] }),
          entry: [saying('* starting memory transfer'), 'startWatch'],
          initial: 'polling',
          states: {
            polling: effectStep({
              src: 'migrationStatus',
              description:
                'Asking the source how the memory copy goes (a long poll, bounded by the nearer deadline).',
              input: (c) => ({ instance: c.instance, node: c.source }),
              timeoutMs: (c) =>
                nextPollTimeout(
                  c.watch,
                  c.limits.pollWindowMs,
                  c.limits.migrationTotalMs,
                  c.limits.migrationNoProgressMs,
                ),
              next: 'judging',
              done: [fromAnswer('recordMemory', (status: MigrationStatus) => status)],
              goOnTo: [
                {
                  guard: 'pastPointOfNoReturn',
                  target: '#migration.surveying',
                  actions: failing(
                    (c, e) =>
                      `Lost track of the postcopy migration of ${c.instance} (it can no longer be aborted): ${e}`,
                  ),
                },
                {
                  target: aborting,
                  actions: failing((c, e) => `Could not migrate instance ${c.instance}: ${e}`, {
                    says: 'Migration failed, aborting',
                  }),
                },
              ],
            }),
            judging: {
              description: 'Completed, failed, broken postcopy, overdue, or poll again.',
              always: [
                {
                  guard: 'migrationCompleted',
                  target: '#migration.finalizing',
                  actions: saying('* memory transfer complete'),
                },
                {
                  guard: 'postcopyBroken',
                  target: '#migration.surveying',
                  actions: failing(
                    (c) =>
                      `The postcopy migration of ${c.instance} broke off (${c.handover.memory?.status}); the instance is split between ${c.source} and ${c.target} and cannot be resumed on the source`,
                  ),
                },
                {
                  // The source's memory went on with the target: there is nothing left to resume.
                  guard: and(['migrationFailed', 'pastPointOfNoReturn']),
                  target: '#migration.surveying',
                  actions: failing(
                    (c) =>
                      `The postcopy migration of ${c.instance} failed (${c.handover.memory?.status}); the guest's memory was split between ${c.source} and ${c.target} and cannot be resumed on the source`,
                  ),
                },
                {
                  guard: 'migrationFailed',
                  target: aborting,
                  actions: failing(
                    (c) =>
                      `Could not migrate instance ${c.instance}: hypervisor returned failure (${c.handover.memory?.status})`,
                    { says: 'Migration failed, aborting' },
                  ),
                },
                {
                  guard: 'migrationOverdue',
                  target: aborting,
                  actions: failing(copyOverdueMessage, { says: 'Migration overdue, aborting' }),
                },
                { guard: 'copyStalled', target: 'converging' },
                { target: 'polling' },
              ],
            },
            /** The convergence policy, stage by stage (machines/convergence.ts). */
            ...convergenceStages({ poll: 'polling', onGiveUp: aborting, onLost: '#migration.surveying' }),
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
        source: finalizeMigrationSource({ success: true, ...evenIfFailed('target', noteFinalizeError) }),
        target: finalizeMigrationTarget({ success: true, ...evenIfFailed('judging', noteFinalizeError) }),
        judging: {
          always: [
            {
              guard: 'finalizeFailed',
              target: '#migration.surveying',
              actions: failing(
                (c) =>
                  `Could not finalize instance migration: ${c.handover.finalizeErrors.join('; ')}; the config still names ${c.source}; ${cleanupHint(c.instance)}`,
              ),
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
      tags: ['failure'],
      meta: meta({ rules: [1], check: 'Where does the instance run, and is it running or paused?' }),
      ...effectStep({
        src: 'instanceList',
        description:
          'The source did not confirm it resumed after the aborted copy: looking whether the instance runs there before saying it was reverted.',
        input: aboutBoth,
        next: [
          {
            guard: inLists('runningOnSourceOnlyIn'),
            target: 'endingReverted',
            actions: recordLocations,
          },
          {
            target: 'surveying',
            actions: [
              recordLocations,
              ...failing(
                (c) =>
                  `The migration of ${c.instance} was aborted, but it is not running on ${c.source} (${foundAt(c) || 'found nowhere'}); the cleanup resumes a paused source`,
              ),
            ],
          },
        ],
        failTo: 'surveying',
        failure: (c, e) =>
          `The migration of ${c.instance} was aborted, but whether it runs on ${c.source} could not be read: ${e}`,
      }),
    },
    /** Every revert ends here: memory ballooned down to fit the target is put back (Ganeti forgets). */
    endingReverted: {
      description:
        'The migration was undone: if the instance was ballooned down to fit the target, its memory is put back first.',
      always: [{ guard: 'ballooned', target: 'restoringMemory' }, { target: 'reverted' }],
    },
    restoringMemory: {
      tags: ['failure'],
      ...effectStep({
        src: 'balloonMemory',
        description:
          'Putting back the memory the instance had before it was ballooned down to fit the target.',
        says: (c) => `* setting instance memory back to ${c.handover.currentMemoryMiB} MiB`,
        input: (c) => ({ instance: c.instance, node: c.source, memoryMiB: c.handover.currentMemoryMiB! }),
        next: 'reverted',
        // The instance runs where it was; its smaller memory is worth a warning, not a cleanup.
        failTo: 'reverted',
        failure: (c, e) =>
          `Could not put the memory of ${c.instance} back to ${c.handover.currentMemoryMiB} MiB on ${c.source} (it stays at ${c.handover.balloonToMiB} MiB): ${e}`,
        tolerated: true,
      }),
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
    surveying: survey({ next: '#migration.needsCleanup' }),
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

/**
 * The target: not drained (Ganeti's CheckNodeNotDrained), and its free memory enough, enough once
 * the instance is ballooned down, or a refusal.
 */
const memoryPlan = (c: ProtocolContext, nodes: Record<string, NodeInfo>) =>
  nodes[c.target]?.drained === true
    ? {
        problem: `Node ${c.target} is drained: no instance moves to it (take the mark back with 'drbd-migrate undrain ${c.target}')`,
        balloonToMiB: null,
      }
    : planMemory(
        c.config,
        c.target,
        nodes[c.target],
        c.handover.currentMemoryMiB ?? c.config?.memoryMiB ?? 0,
        c.request.allowRuntimeChanges,
      );

/** The copy as the measured rate predicts it, for the memory it will copy (after any balloon). */
function forecastOf(c: ProtocolContext, rate: DirtyRate) {
  return forecastCopy({
    memoryMiB: c.handover.balloonToMiB ?? c.handover.currentMemoryMiB ?? c.config?.memoryMiB ?? 0,
    dirtyMiBps: rate.dirtyMiBps,
    policy: c.policy,
    live: true,
    windowSeconds: rate.calcSeconds,
  });
}

/** Why the copy is refused before anything is touched, or null. */
function refusal(c: ProtocolContext, rate: DirtyRate): string | null {
  const forecast = forecastOf(c, rate);
  return forecast.hopeless
    ? `Not migrating instance ${c.instance}: ${forecast.says}; nothing was touched (set convergence.predict false to try it anyway)`
    : null;
}
