import { and, not } from 'xstate';
import { checkInstanceConfig } from './checks.js';
import type { DiskStatus, RunningInstance } from './contract.js';
import { meta } from './describe.js';
import { abortMigration, backToSingleMaster, commitPrimary, survey } from './flows.js';
import { foundAt, type ProtocolContext, protocol, runMachineBase } from './protocol.js';
import {
  aboutBoth,
  effectStep,
  evenIfFailed,
  failing,
  finalizeMigrationSource,
  finalizeMigrationTarget,
  fromAnswer,
  loadingConfig,
  outcomeState,
  recordLocations,
  saying,
  thirdCopyNode as thirdCopy,
  warning,
} from './steps.js';

/** What a cleanup that could not look at the third copy does: it says how to look again. */
const towardsSecondary = (c: ProtocolContext) =>
  `the cleanup works towards the secondary ${c.target}: if a migration to ${thirdCopy(c)} was under way, run the cleanup again once it answers`;

/**
 * Ganeti's newest _ExecCleanup: find where the instance really runs, make the config say so, then
 * bring the disks back to single-master. Safe on a healthy instance. One step beyond Ganeti: when the
 * instance is found on both nodes because the memory transfer completed but was never finalized (the
 * target runs, the source is a paused post-migrate husk), the handover is finished instead of
 * aborted, since aborting would kill the live copy and resume a stale one.
 */
export const cleanupMachine = protocol.createMachine({
  id: 'cleanup',
  ...runMachineBase,
  initial: 'loadingConfig',
  // Aborts are refused (runMachineBase): the cleanup is the repair, and an abort would leave the
  // instance as broken as it found it.
  states: {
    loadingConfig: loadingConfig({
      check: (config) => checkInstanceConfig(config, { targetNode: null }),
      next: 'choosingTarget',
      rejected: '#cleanup.rejected',
      copiesMemory: true,
    }),
    choosingTarget: {
      description:
        'With a third copy (DRBD 9), the migration to repair may have gone there rather than to the secondary: the third is looked at first.',
      always: [{ guard: 'hasThirdCopy', target: 'readingThirdCopy' }, { target: 'locating' }],
    },
    readingThirdCopy: effectStep({
      src: 'diskStatus',
      description:
        'The third copy and the source, each towards the other: the third Primary, or two primaries allowed on either side, is what a migration to it left, and the cleanup works towards it.',
      input: (c) => ({
        instance: c.instance,
        nodes: [thirdCopy(c), c.source] as [string, string],
        disks: c.disks,
      }),
      done: [fromAnswer('targetThirdCopyIfTouched', (status: Record<string, DiskStatus[]>) => ({ status }))],
      next: 'lookingOnThirdCopy',
      // Unanswered, the source's own side of their connection is read instead.
      goOnTo: 'readingSourceTowardsThird',
      noting: [
        warning(
          (c, e) =>
            `Could not read the disks on ${thirdCopy(c)}, the third copy (${e}); ${c.source}'s side of their connection is read instead`,
        ),
      ],
    }),
    readingSourceTowardsThird: {
      ...effectStep({
        src: 'nodeDiskStatus',
        description:
          'The third copy did not answer: the source’s own side of their connection. Two primaries allowed there is what a migration to the third left, and the cleanup works towards it (one that cannot reach it then ends saying what is left) rather than leaving that side as it is.',
        input: (c) => ({ instance: c.instance, node: c.source, peer: thirdCopy(c), disks: c.disks }),
        done: [
          fromAnswer('targetThirdCopyIfTouched', (disks: DiskStatus[], c) => ({
            status: { [c.source]: disks },
          })),
          saying((c) =>
            c.target === thirdCopy(c)
              ? `* ${c.source} allows two primaries towards ${c.target}, the third copy: the cleanup works towards it`
              : `* ${c.source} allows no second primary towards ${thirdCopy(c)}, the third copy`,
          ),
        ],
        ...evenIfFailed(
          'lookingOnThirdCopy',
          warning(
            (c, e) =>
              `Could not read ${c.source}'s side of its connection to ${thirdCopy(c)} either (${e}); ${towardsSecondary(c)}`,
          ),
        ),
      }),
      meta: meta({ rules: [2] }),
    },
    lookingOnThirdCopy: effectStep({
      src: 'instanceList',
      description: 'Whether the instance is on the third copy: then the cleanup works towards it.',
      input: (c) => ({ instance: c.instance, nodes: [thirdCopy(c), c.source] as [string, string] }),
      done: [
        fromAnswer('targetThirdCopyIfTouched', (lists: Record<string, RunningInstance[]>) => ({ lists })),
        saying((c) =>
          c.target === thirdCopy(c)
            ? `* ${c.target}, the third copy, was a migration's target: the cleanup works towards it`
            : `* nothing of a migration on ${thirdCopy(c)}, the third copy`,
        ),
      ],
      ...evenIfFailed(
        'locating',
        warning((c, e) =>
          c.target === thirdCopy(c)
            ? `Could not read whether the instance runs on ${thirdCopy(c)}, the third copy (${e}); the cleanup works towards it, where a migration went`
            : `Could not read whether the instance runs on ${thirdCopy(c)}, the third copy (${e}); ${towardsSecondary(c)}`,
        ),
      ),
    }),
    locating: {
      ...effectStep({
        src: 'instanceList',
        description: 'Finding where the instance really runs, on both of its nodes.',
        says: () =>
          '* checking where the instance actually runs (if this hangs, the hypervisor might be in a bad state)',
        input: aboutBoth,
        next: 'judging',
        done: [recordLocations, 'announceLocations'],
        failTo: 'surveying',
        failure: (_, e) => `Can't contact node: ${e}`,
      }),
      meta: meta({ rules: [1, 3], check: 'If this hangs, the hypervisor on a node may be in a bad state.' }),
    },
    judging: {
      description:
        'Deciding from where it runs: on both (abort, look again), on none or only as a leftover (give up), on the target (commit), on the source (repair the disks).',
      always: [
        { guard: and(['onBothNodes', not('abortTried')]), target: 'abortingFound' },
        {
          guard: 'onBothNodes',
          target: 'surveying',
          actions: failing(
            () =>
              'Instance seems to be running on two nodes, or the hypervisor is confused; you will have to ensure manually that it runs only on one and restart this operation',
            { verdict: 'onBothNodes' },
          ),
        },
        {
          guard: 'onNoNode',
          target: 'surveying',
          actions: failing(
            (c) =>
              `Instance does not seem to be running at all; in this case it's safer to repair by stopping it to ensure disk shutdown ('drbd-migrate' does not start or stop instances), and then restarting it on ${c.source}`,
            { verdict: 'runsNowhere' },
          ),
        },
        {
          guard: 'onlyLeftovers',
          target: 'surveying',
          actions: failing(
            (c) =>
              `Instance ${c.instance} survives only as a migration leftover (${foundAt(c)}), not as a running guest; stop it and start it again on ${c.source}`,
            { verdict: 'onlyLeftovers' },
          ),
        },
        { guard: 'onTargetOnly', target: 'committing' },
        // A copy aborted without resuming the source: the abort is done again (cancel, then cont).
        { guard: and(['pausedOnSourceOnly', not('abortTried')]), target: 'abortingFound' },
        {
          guard: 'pausedOnSourceOnly',
          target: 'surveying',
          actions: failing(
            (c) =>
              `Instance ${c.instance} stays paused on ${c.source} after the cleanup tried to resume it; resume it by hand (QMP cont) once you have checked why it would not`,
            { verdict: 'stuckPaused' },
          ),
        },
        {
          target: 'singleMaster',
          actions: [
            'demoteTarget',
            saying((c) => `* instance confirmed to be running on its primary node (${c.source})`),
          ],
        },
      ],
    },
    completingHandover: {
      // The instance may be on both nodes here: resuming blind is guessing.
      tags: ['handover'],
      description:
        'The copy had completed but was never finalized: finalize on the target and the source instead of aborting.',
      meta: meta({ rules: [1] }),
      entry: saying((c) => `Migration to ${c.target} completed but was never finalized; finalizing it`),
      initial: 'info',
      states: {
        info: effectStep({
          src: 'migrationInfo',
          input: (c) => ({ instance: c.instance, node: c.source }),
          done: [fromAnswer('recordMigrationInfo', (info: Record<string, unknown>) => info)],
          // The runtime data may be gone with a half-finalized source; the target can do without it.
          ...evenIfFailed('target'),
        }),
        target: finalizeMigrationTarget({
          success: true,
          next: 'source',
          failTo: '#cleanup.surveying',
          failure: (c, e) => `Instance migration cleanup failed: cannot finalize on ${c.target}: ${e}`,
        }),
        source: finalizeMigrationSource({
          success: true,
          next: '#cleanup.locating',
          failTo: '#cleanup.surveying',
          failure: (c, e) => `Instance migration cleanup failed: cannot finalize on ${c.source}: ${e}`,
        }),
      },
    },
    abortingFound: {
      // The instance may be on both nodes here: resuming blind is guessing.
      tags: ['handover'],
      description:
        'Found on both nodes: abort the handover (looking first whether it completed), then look again.',
      meta: meta({ rules: [1] }),
      entry: [
        'markAbortTried',
        { type: 'feedback', params: { message: 'Trying to cleanup after failed migration' } },
      ],
      ...abortMigration({ next: '#cleanup.locating', onHandoverCompleted: '#cleanup.completingHandover' }),
    },
    committing: {
      description:
        'The instance runs on the secondary: the config is made to say so (a failed write is read back, then tried once more).',
      tags: ['commit'],
      meta: meta({ marker: 'commit point', rules: [3] }),
      entry: saying((c) => `* instance running on secondary node (${c.target}), updating config`),
      ...commitPrimary({
        onCommitted: '#cleanup.singleMaster',
        onFailed: '#cleanup.singleMaster',
        repair: 'the instance runs there: run the cleanup again',
      }),
    },
    singleMaster: {
      description:
        'Back to single-master: demote the node the instance does not run on, settle, standalone, reconnect, resync.',
      meta: meta({ rules: [2, 5] }),
      ...backToSingleMaster({ self: '#cleanup.singleMaster', onFailed: '#cleanup.surveying' }),
      // Single-master around the target, but the config still does not name it.
      onDone: [{ guard: 'commitFailed', target: 'surveying' }, { target: 'cleaned' }],
    },
    surveying: survey({ next: '#cleanup.failed' }),
    cleaned: outcomeState(
      'cleaned',
      'Repaired: the instance runs where the config says, the disks are single-master and in sync.',
      { done: true },
    ),
    rejected: outcomeState('rejected', 'The instance is unknown or not DRBD: nothing was touched.'),
    failed: outcomeState(
      'failed',
      'The cleanup cannot repair this alone (instance on both nodes, on none, or only a leftover); `left` says what is there.',
      {
        check:
          'Follow the error’s advice; make sure the instance runs on exactly one node, then run the cleanup again.',
      },
    ),
  },
});
