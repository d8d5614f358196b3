import { and, not } from 'xstate';
import { inSyncWithPeer } from './checks.js';
import type { DiskStatus, InstanceConfig, NodeInfo, NodeProbe } from './contract.js';
import { meta } from './describe.js';
import { survey, waitUntilSync } from './flows.js';
import {
  memoryProblem,
  nodeConfigProblem,
  spaceNeededMiB,
  storageProblem,
  takeoverNeedMiB,
} from './placement.js';
import { copyNode, type ProtocolContext, probeTimeout, protocol, runMachineBase } from './protocol.js';
import {
  abortTo,
  aboutDisksOnBoth,
  effectStep,
  evenIfFailed,
  failing,
  fromAnswer,
  goReconnect,
  judgedRead,
  loadingConfig,
  outcomeState,
  type StepOptions,
  warning,
} from './steps.js';

/**
 * Giving an instance a new secondary (Ganeti's `replace-disks -n`, TLReplaceDisks._ExecDrbd8Secondary).
 * New volumes and a DRBD device on the new node first; then, by what the DRBD can do:
 *
 * - DRBD 8.4 has two peers only (Ganeti's order): the old secondary and the primary disconnected,
 *   the commit (the config names the new secondary, and the old one as still to be removed), the
 *   primary attached to the new node, the full resync, and only then the old copies removed. From
 *   the disconnect until the resync ends the instance has one copy: that window is announced before
 *   it opens (rule 8).
 * - DRBD 9 (make-before-break): the new node joins the primary as a further peer while the old
 *   secondary stays connected, the full resync, the check that both ends say UpToDate, the commit,
 *   and only then the old secondary removed as a peer and its copies removed: two UpToDate copies at
 *   every moment. Where the config names the resources' tiebreaker, the new node joins it too before
 *   the commit and the old one leaves it after, so that its vote, and quorum as a proof that a
 *   cut-off node cannot write, carry over to the new pair. Where the instance has a third copy, the
 *   new node joins it the same way and is in sync with it before the commit: the third copy stays a
 *   peer of both the primary and the secondary, and three UpToDate copies are never fewer.
 *
 * Before the commit every failure reverts, removing what was made (Ganeti leaves it); after it the
 * run finishes forward, or ends asking for `replace-secondary --cleanup`, which finishes it. The
 * instance never stops or moves.
 *
 * DRBD 9 with a third copy, the third copy moves the same way (`replaceCopy: 'thirdCopy'`, the CLI's
 * replace-third-copy): the new node joins the primary and the secondary, is in sync with both, the
 * config names it the third copy (setThirdCopyNode), and the old third leaves. A drain of the third
 * copy's node runs it. The states that name the "other copy" are about the copy that stays beside
 * the primary's: the third when the secondary moves, the secondary when the third moves.
 *
 * Here `source` is the primary (it stays), `target` the new node, `replace.former` the old one.
 */

/** How the CLI names a replace of each copy, for the errors that say what to run. */
export const REPLACE_COMMAND = {
  secondary: { command: 'replace-secondary', option: '--new-secondary', name: 'secondary' },
  thirdCopy: { command: 'replace-third-copy', option: '--new-third-copy', name: 'third copy' },
} as const;

const primary = (c: ProtocolContext) => c.source;
/** Named only where the rewiresTiebreaker guard let the run in. */
const tiebreaker = (c: ProtocolContext) => c.config?.tiebreaker ?? '';
const movesThird = (c: ProtocolContext) => c.request.replaceCopy === 'thirdCopy';
/**
 * The copy the instance keeps besides the primary's and the one that moves: its third copy, or its
 * secondary when the third copy moves. Named only where the hasOtherCopy guard let the run in.
 */
const otherCopy = (c: ProtocolContext) =>
  (movesThird(c) ? c.config?.secondaryNode : c.config?.thirdCopy) ?? '';
const otherCopyNamed = (c: ProtocolContext) =>
  `${otherCopy(c)}, the ${movesThird(c) ? 'secondary' : 'third copy'}`;
/** What the moving copy is called: the secondary, or the third copy. */
const role = (c: ProtocolContext) => REPLACE_COMMAND[c.request.replaceCopy].name;
const newSecondary = (c: ProtocolContext) => c.target;
const former = (c: ProtocolContext) => c.replace.former;
const cleanupCommand = (c: ProtocolContext) => {
  const { command, option } = REPLACE_COMMAND[c.request.replaceCopy];
  return `drbd-migrate ${command} ${c.instance} --cleanup${c.replace.committed ? '' : ` ${option} ${newSecondary(c)}`}`;
};

/** DRBD 9 before the commit: the old copy never left, so an abort undoes the new peer. */
const abortBeforeJoined = {
  guard: and([not('replaceCommitted'), 'makeBeforeBreak']),
  ...(abortTo(
    '#changeSecondary.droppingNewPeer',
    'Aborted by the operator; the new peer and what was made on the new node are removed',
  ) as object),
};

/**
 * DRBD 9: `peer` is no longer a peer of `node` (del-peer, forget-peer). A failure is surveyed and
 * names the repair; after the commit it says the new copy is the config's, UpToDate.
 */
function removingAsPeer(o: {
  description: string;
  rules?: number[];
  node: (c: ProtocolContext) => string;
  /** How the node is called in what is said (the tiebreaker's role); its name unless given. */
  named?: (c: ProtocolContext) => string;
  peer: (c: ProtocolContext) => string;
  committed: boolean;
  next: StepOptions<'removePeer'>['next'];
}) {
  const named = o.named ?? o.node;
  return effectStep({
    src: 'removePeer',
    description: o.description,
    ...(o.rules === undefined ? {} : { rules: o.rules }),
    says: (c) => `* removing ${o.peer(c)} as a peer of ${named(c)}`,
    input: (c) => ({ instance: c.instance, node: o.node(c), peer: o.peer(c), disks: c.disks }),
    next: o.next,
    failTo: '#changeSecondary.surveying',
    failure: (c, e) =>
      `Cannot remove ${o.peer(c)} as a peer of ${named(c)} (${e})${o.committed ? `; the config names ${newSecondary(c)}, UpToDate` : ''}; run '${cleanupCommand(c)}'`,
  });
}

/** The config stops naming the old copy's node once its copies are gone; a failure is said. */
function forgettingFormer(src: 'forgetFormerSecondary' | 'forgetFormerThirdCopy', name: string) {
  return effectStep({
    src,
    description: `The config stops naming the old ${name}: nothing of the instance is left there.`,
    input: (c) => ({ instance: c.instance }),
    done: ['recordFormerForgotten'],
    ...evenIfFailed(
      'doneKind',
      warning(
        (c, e) =>
          `The old copies on ${former(c)} are gone, but the config still names it (${e}); '${cleanupCommand(c)}' clears it`,
      ),
    ),
  });
}

const refused = (c: ProtocolContext, problem: string | null) =>
  problem === null
    ? null
    : `Cannot make ${newSecondary(c)} the ${role(c)} of ${c.instance}: ${problem}; nothing was touched`;

export const changeSecondaryMachine = protocol.createMachine({
  id: 'changeSecondary',
  ...runMachineBase,
  initial: 'loadingConfig',
  states: {
    loadingConfig: {
      on: { ABORT: abortTo('rejected', 'Aborted by the operator; nothing was touched') },
      ...loadingConfig({
        check: replaceProblem,
        replacing: true,
        next: 'mode',
        rejected: '#changeSecondary.rejected',
        says: (c) =>
          c.request.cleanup
            ? `Repairing the replace of ${c.instance}'s ${role(c)} (${former(c)} by ${newSecondary(c)})`
            : `Replacing the ${role(c)} of ${c.instance}: ${former(c)} by ${newSecondary(c)} (primary ${primary(c)})`,
      }),
    },
    mode: {
      description:
        'A repair finishes a replace that passed its commit, or undoes one that did not; a replace checks its prerequisites first.',
      always: [
        { guard: 'replaceCommitted', target: 'creatingDisks' },
        // DRBD 9 never parted the old copy: undoing is removing the new peer and its copies.
        { guard: and(['cleanupRequested', 'makeBeforeBreak']), target: 'droppingNewPeer' },
        { guard: 'cleanupRequested', target: 'probingFormer' },
        { target: 'checkingPrereqs' },
      ],
    },
    checkingPrereqs: {
      description: 'Read-only: the new node, its room and memory, the primary’s disks. Nothing is touched.',
      meta: meta({ rules: [4, 6, 8] }),
      on: { ABORT: abortTo('#changeSecondary.rejected', 'Aborted by the operator; nothing was touched') },
      initial: 'listingNodes',
      states: {
        listingNodes: judgedRead({
          src: 'listNodes',
          description: 'Is the new node one the config knows, and not drained?',
          input: () => ({}),
          problem: (c, nodes) =>
            refused(
              c,
              nodeConfigProblem(
                c.config!,
                newSecondary(c),
                nodes.find((n) => n.name === newSecondary(c)),
              ),
            ),
          next: 'readingTakeover',
          failTo: '#changeSecondary.rejected',
          failure: (_, e) => `Cannot read the cluster's nodes: ${e}`,
        }),
        readingTakeover: effectStep({
          src: 'takeoverLoad',
          description:
            'Which instances would the new node take over if the primary failed (N+1: it needs their memory too)?',
          input: (c) => ({ node: newSecondary(c), primary: primary(c) }),
          next: 'checkingMemory',
          done: [
            fromAnswer('recordMemoryNeed', (load: { instances: string[]; memoryMiB: number }, c) => ({
              needMiB: takeoverNeedMiB(c.config!, load),
            })),
          ],
          failTo: '#changeSecondary.rejected',
          failure: (_, e) => `Cannot read the cluster's instances: ${e}`,
        }),
        checkingMemory: judgedRead({
          src: 'nodeInfo',
          description: 'Has the new node the memory to run the instance if the primary fails?',
          input: (c) => ({ instance: c.instance, nodes: [newSecondary(c)] }),
          problem: (c, info: Record<string, NodeInfo>) =>
            refused(
              c,
              memoryProblem(
                c.config!,
                newSecondary(c),
                info[newSecondary(c)]?.memoryFreeMiB ?? 0,
                c.replace.needMiB ?? c.config!.memoryMiB,
              ),
            ),
          next: 'checkingStorage',
          failTo: '#changeSecondary.rejected',
          failure: (c, e) => `Cannot read ${newSecondary(c)}'s free memory: ${e}`,
        }),
        checkingStorage: judgedRead({
          src: 'nodeStorage',
          description:
            'Has the new node room in its volume group for every disk (data and metadata), and its DRBD minors free?',
          input: (c) => ({ node: newSecondary(c) }),
          problem: (c, storage) => refused(c, storageProblem(c.config!, newSecondary(c), storage)),
          next: 'checkingPrimary',
          failTo: '#changeSecondary.rejected',
          failure: (c, e) => `Cannot read the storage of ${newSecondary(c)}: ${e}`,
        }),
        checkingPrimary: judgedRead({
          src: 'nodeDiskStatus',
          description:
            'Is every disk UpToDate on the primary? A copy is never made from a degraded one (Ganeti: "unsafe to replace").',
          input: (c) => ({ instance: c.instance, node: primary(c), disks: c.disks }),
          problem: (c, disks) => refused(c, degradedPrimary(c, disks) ?? quorumProblem(c, disks)),
          next: 'primaryChecked',
          // The window is said before anything is touched, so that an operator can stop here.
          done: [warning(windowAnnouncement)],
          failTo: '#changeSecondary.rejected',
          failure: (c, e) => `Cannot read the disks of ${primary(c)}: ${e}`,
        }),
        primaryChecked: {
          description:
            'DRBD 9 with another copy (the third, or the secondary when the third moves): it is checked too.',
          always: [{ guard: 'hasOtherCopy', target: 'checkingOtherCopy' }, { target: 'otherCopyChecked' }],
        },
        checkingOtherCopy: judgedRead({
          src: 'nodeDiskStatus',
          description:
            'DRBD 9: is the other copy UpToDate and connected to the primary? The new node joins it too, and a replace never starts with fewer copies in sync than it is to end with.',
          input: (c) => ({ instance: c.instance, node: otherCopy(c), disks: c.disks }),
          problem: (c, disks) => refused(c, otherCopyProblem(c, disks)),
          next: 'otherCopyChecked',
          failTo: '#changeSecondary.rejected',
          failure: (c, e) =>
            `Cannot read the disks of ${otherCopyNamed(c)} (${e}): the new node must join it too; nothing was touched`,
        }),
        otherCopyChecked: {
          description:
            'DRBD 9 with a tiebreaker the config names: it is checked too; otherwise the checks are done.',
          always: [
            { guard: 'rewiresTiebreaker', target: 'checkingTiebreaker' },
            { target: '#changeSecondary.creatingDisks' },
          ],
        },
        checkingTiebreaker: judgedRead({
          src: 'nodeDiskStatus',
          description:
            'DRBD 9: is the tiebreaker diskless and connected to the primary? The new node must join it too, or the resources would lose its vote.',
          input: (c) => ({ instance: c.instance, node: tiebreaker(c), disks: c.disks }),
          problem: (c, disks) => refused(c, tiebreakerProblem(c, disks)),
          next: '#changeSecondary.creatingDisks',
          failTo: '#changeSecondary.rejected',
          failure: (c, e) =>
            `Cannot read the disks of ${tiebreaker(c)}, the tiebreaker (${e}): the new node must join it too; nothing was touched`,
        }),
      },
    },
    creatingDisks: {
      meta: meta({ rules: [6] }),
      on: {
        ABORT: [
          // A repair after the commit makes the copy the config names: there is nothing to undo.
          { guard: 'replaceCommitted', actions: 'refuseAbort' },
          abortTo('removingNewDisks', 'Aborted by the operator; what was made on the new node is removed'),
        ],
      },
      ...effectStep({
        src: 'createDisks',
        description:
          'The new node’s volumes (data and metadata) and its DRBD devices on them, Secondary, without network.',
        says: (c) => `* creating the disks of ${c.instance} on ${newSecondary(c)}`,
        input: (c) => ({ instance: c.instance, node: newSecondary(c), disks: c.disks }),
        next: [
          { guard: 'makeBeforeBreak', target: 'joiningNew' },
          { guard: 'replaceCommitted', target: 'attachingNew' },
          { target: 'detachingFormer' },
        ],
        failTo: [
          { guard: 'replaceCommitted', target: 'surveying' },
          { guard: 'makeBeforeBreak', target: 'droppingNewPeer' },
          { target: 'removingNewDisks' },
        ],
        failure: (c, e) => `Cannot create the disks of ${c.instance} on ${newSecondary(c)}: ${e}`,
      }),
    },
    joiningNew: {
      on: { ABORT: [abortBeforeJoined, { actions: 'refuseAbort' }] },
      ...goReconnect({
        description:
          'DRBD 9: the new node made a further peer of the primary, single-master, while the old copy stays connected; it receives a full resync.',
        says: (c) =>
          `* adding ${newSecondary(c)} as a peer of ${primary(c)} beside ${former(c)} (DRBD 9: ${c.instance} keeps its ${(c.config?.thirdCopy ?? null) === null ? 'two' : 'three'} copies throughout)`,
        multimaster: false,
        rules: [2, 8],
        next: 'joinedPrimary',
        failTo: '#changeSecondary.newCopyFailed',
        failure: (c, e) => `Cannot add ${newSecondary(c)} as a peer of ${primary(c)}: ${e}`,
      }),
    },
    joinedPrimary: {
      description: 'DRBD 9 with another copy: the new node joins it too before its resync is waited for.',
      always: [{ guard: 'hasOtherCopy', target: 'joiningOtherCopy' }, { target: 'joinedOtherCopy' }],
    },
    joiningOtherCopy: {
      on: { ABORT: [abortBeforeJoined, { actions: 'refuseAbort' }] },
      ...goReconnect({
        description:
          'DRBD 9: the new node and the other copy made peers of each other, single-master, so that the copy the config will name is connected to all the instance’s copies, as the old one is.',
        says: (c) => `* adding ${newSecondary(c)} as a peer of ${otherCopyNamed(c)}`,
        between: (c) => [otherCopy(c), newSecondary(c)],
        multimaster: false,
        rules: [2, 8],
        next: 'joinedOtherCopy',
        failTo: '#changeSecondary.newCopyFailed',
        failure: (c, e) => `Cannot add ${newSecondary(c)} as a peer of ${otherCopyNamed(c)}: ${e}`,
      }),
    },
    joinedOtherCopy: {
      description:
        'DRBD 9 with a tiebreaker the config names: the new node joins it too before its resync is waited for.',
      always: [{ guard: 'rewiresTiebreaker', target: 'joiningTiebreaker' }, { target: 'resyncing' }],
    },
    joiningTiebreaker: {
      on: { ABORT: [abortBeforeJoined, { actions: 'refuseAbort' }] },
      ...goReconnect({
        description:
          'DRBD 9: the new node and the tiebreaker made peers of each other, so that the tiebreaker’s vote counts for the new copy as it did for the old (quorum stays a proof).',
        says: (c) => `* adding ${newSecondary(c)} as a peer of ${tiebreaker(c)}, the tiebreaker`,
        between: (c) => [tiebreaker(c), newSecondary(c)],
        multimaster: false,
        rules: [7],
        next: 'resyncing',
        failTo: '#changeSecondary.newCopyFailed',
        failure: (c, e) =>
          `Cannot add ${newSecondary(c)} as a peer of ${tiebreaker(c)}, the tiebreaker: ${e}`,
      }),
    },
    detachingFormer: effectStep({
      src: 'disconnectNet',
      description:
        'The old secondary’s side StandAlone (Ganeti shuts its DRBD down). It may be down: a failure is a warning, and its copies are removed when it answers again.',
      says: (c) => `* disconnecting ${former(c)}, the old secondary`,
      input: (c) => ({
        instance: c.instance,
        nodes: [primary(c), former(c)] as [string, string],
        disks: c.disks,
        only: former(c),
      }),
      ...evenIfFailed(
        'goingStandalone',
        warning(
          (c, e) =>
            `Could not disconnect ${former(c)} (${e}); its copies of ${c.instance} are removed when it answers again`,
        ),
      ),
    }),
    goingStandalone: {
      meta: meta({ rules: [8] }),
      ...effectStep({
        src: 'disconnectNet',
        description: 'The primary StandAlone: from here it has the only copy, until the new node is in sync.',
        says: () => '* changing the primary into standalone mode',
        input: (c) => ({
          instance: c.instance,
          nodes: [primary(c), former(c)] as [string, string],
          disks: c.disks,
          only: primary(c),
        }),
        next: 'committing',
        failTo: 'probingFormer',
        failure: (c, e) => `Cannot disconnect the disks on ${primary(c)}: ${e}`,
      }),
    },
    committing: {
      tags: ['commit'],
      meta: meta({ rules: [3] }),
      initial: 'choosing',
      states: {
        choosing: {
          description: 'The write names the copy that moves: the secondary, or the third copy.',
          always: [{ guard: 'replacesThirdCopy', target: 'writingThirdCopy' }, { target: 'writing' }],
        },
        writing: effectStep({
          src: 'setSecondaryNode',
          description:
            'The one commit point: the config names the new secondary, and the old one as still to be removed.',
          says: (c) => `* updating the configuration: ${newSecondary(c)} is the secondary of ${c.instance}`,
          input: (c) => ({ instance: c.instance, node: newSecondary(c), former: former(c) }),
          next: '#changeSecondary.committed',
          done: ['recordReplaceCommit'],
          goOnTo: 'confirming',
          noting: [warning((_, e) => `Writing the config failed (${e}); reading it back`)],
        }),
        writingThirdCopy: effectStep({
          src: 'setThirdCopyNode',
          description:
            'The one commit point of a third copy’s replace: the config names the new third copy, and the old one as still to be removed.',
          says: (c) =>
            `* updating the configuration: ${newSecondary(c)} holds the third copy of ${c.instance}`,
          input: (c) => ({ instance: c.instance, node: newSecondary(c), former: former(c) }),
          next: '#changeSecondary.committed',
          done: ['recordReplaceCommit'],
          goOnTo: 'confirming',
          noting: [warning((_, e) => `Writing the config failed (${e}); reading it back`)],
        }),
        confirming: effectStep({
          src: 'getInstance',
          description: 'A failed write may have taken: the config is read back before anything else.',
          input: (c) => ({ instance: c.instance }),
          next: [
            {
              guard: fromAnswer('configNamesNewCopy', (config: InstanceConfig) => ({ config })),
              target: '#changeSecondary.committed',
              actions: ['recordReplaceCommit'],
            },
            {
              target: '#changeSecondary.undoingUncommitted',
              actions: failing(
                (c) =>
                  `The config could not be made to name ${newSecondary(c)} as the ${role(c)} of ${c.instance} (it still names ${former(c)}); the replace is undone`,
              ),
            },
          ],
          failTo: '#changeSecondary.surveying',
          failure: (c, e) =>
            `Cannot tell whether the config names ${newSecondary(c)} as the ${role(c)} of ${c.instance} (${e})${c.config?.drbdVersion === '9' ? '' : '; the primary is StandAlone'}; read the config, then run '${cleanupCommand(c)}'`,
        }),
      },
    },
    committed: {
      description:
        'Past the commit: DRBD 9 removes the old peer (the new copy is UpToDate already); 8.4 attaches the new node.',
      always: [{ guard: 'makeBeforeBreak', target: 'removingFormerPeer' }, { target: 'attachingNew' }],
    },
    undoingUncommitted: {
      description:
        'The commit did not take: DRBD 9 removes the new peer (the old copy never left); 8.4 reconnects the old secondary first.',
      always: [{ guard: 'makeBeforeBreak', target: 'droppingNewPeer' }, { target: 'probingFormer' }],
    },
    attachingNew: goReconnect({
      description:
        'The primary attached to the new node, single-master: the new node becomes its peer and receives a full resync.',
      says: (c) => `* attaching ${newSecondary(c)} to ${primary(c)}`,
      multimaster: false,
      rules: [2, 8],
      next: 'resyncing',
      failTo: '#changeSecondary.surveying',
      failure: (c, e) =>
        `Cannot attach ${newSecondary(c)} to ${primary(c)} (${e}); the config names ${newSecondary(c)}, and ${c.instance} runs on one copy; run '${cleanupCommand(c)}'`,
    }),
    resyncing: {
      description: 'Waiting until the new node is UpToDate (bounded, as every wait).',
      meta: meta({ rules: [5, 8] }),
      on: { ABORT: [abortBeforeJoined, { actions: 'refuseAbort' }] },
      ...waitUntilSync({ onFailed: '#changeSecondary.newCopyFailed', tolerated: false }),
      onDone: [{ guard: 'hasOtherCopy', target: 'resyncingWithOtherCopy' }, { target: 'checkingNewCopy' }],
    },
    resyncingWithOtherCopy: {
      description:
        'DRBD 9 with another copy: waiting until the new node and it are in sync with each other too (bounded); both links are checked after.',
      meta: meta({ rules: [5, 8] }),
      on: { ABORT: [abortBeforeJoined, { actions: 'refuseAbort' }] },
      ...waitUntilSync({
        onFailed: '#changeSecondary.newCopyFailed',
        tolerated: false,
        between: (c) => [otherCopy(c), newSecondary(c)],
      }),
      onDone: 'checkingNewCopy',
    },
    // A wait that ends is not a copy in sync: DRBD reports no resync running also when the link never
    // came up (seen on real 8.4: the new node's resync handler refused, the link dropped, StandAlone).
    checkingNewCopy: judgedRead({
      src: 'diskStatus',
      description:
        'Ganeti\'s "checking disks status": both ends Connected and UpToDate/UpToDate on every disk, or the old copies stay.',
      rules: [4, 8],
      input: aboutDisksOnBoth,
      problem: (c, perNode) => inSyncProblem(c, [primary(c), newSecondary(c)], perNode),
      next: 'newCopyChecked',
      failTo: '#changeSecondary.newCopyFailed',
      failure: (c, e) =>
        `Cannot check the new copy of ${c.instance} on ${newSecondary(c)} (${e}); the old copies on ${former(c)} are kept; run '${cleanupCommand(c)}'`,
    }),
    newCopyChecked: {
      description: 'DRBD 9 with another copy: the new copy is in sync with the primary; with the other too?',
      always: [{ guard: 'hasOtherCopy', target: 'checkingOtherCopyLink' }, { target: 'newCopyInSync' }],
    },
    checkingOtherCopyLink: judgedRead({
      src: 'diskStatus',
      description:
        'DRBD 9: the new node and the other copy each see the other Connected and UpToDate on every disk, or the old node stays their peer.',
      rules: [4, 8],
      input: (c) => ({
        instance: c.instance,
        nodes: [otherCopy(c), newSecondary(c)] as [string, string],
        disks: c.disks,
      }),
      problem: (c, perNode) => inSyncProblem(c, [otherCopy(c), newSecondary(c)], perNode),
      next: 'newCopyInSync',
      failTo: '#changeSecondary.newCopyFailed',
      failure: (c, e) =>
        `Cannot check the new copy of ${c.instance} on ${newSecondary(c)} against ${otherCopyNamed(c)} (${e}); the old copies on ${former(c)} are kept; run '${cleanupCommand(c)}'`,
    }),
    newCopyInSync: {
      description:
        'DRBD 9: the new copy UpToDate beside the old one, so now the config may name it; after the commit the old one goes.',
      always: [
        { guard: not('replaceCommitted'), target: 'committing' },
        { guard: 'makeBeforeBreak', target: 'removingFormerPeer' },
        { target: 'removingFormerDisks' },
      ],
    },
    newCopyFailed: {
      description:
        'The new copy did not come: before a DRBD 9 commit the old copy never left, so the replace is undone; otherwise what is left is surveyed.',
      always: [
        { guard: and([not('replaceCommitted'), 'makeBeforeBreak']), target: 'droppingNewPeer' },
        { target: 'surveying' },
      ],
    },
    removingFormerPeer: removingAsPeer({
      description:
        'DRBD 9, after the commit, with the new copy UpToDate: the old node is no longer a peer of the primary (del-peer), its bitmap slot freed (forget-peer).',
      rules: [8],
      node: primary,
      peer: former,
      committed: true,
      next: [
        { guard: 'hasOtherCopy', target: 'removingFormerFromOtherCopy' },
        { guard: 'rewiresTiebreaker', target: 'removingFormerFromTiebreaker' },
        { target: 'removingFormerDisks' },
      ],
    }),
    removingFormerFromOtherCopy: removingAsPeer({
      description:
        'DRBD 9: the old node is no longer a peer of the other copy either (the new copy is in sync with it).',
      rules: [8],
      node: otherCopy,
      named: otherCopyNamed,
      peer: former,
      committed: true,
      next: [
        { guard: 'rewiresTiebreaker', target: 'removingFormerFromTiebreaker' },
        { target: 'removingFormerDisks' },
      ],
    }),
    removingFormerFromTiebreaker: removingAsPeer({
      description: 'DRBD 9: the old node is no longer a peer of the tiebreaker either.',
      node: tiebreaker,
      named: (c) => `${tiebreaker(c)}, the tiebreaker`,
      peer: former,
      committed: true,
      next: 'removingFormerDisks',
    }),
    removingFormerDisks: effectStep({
      src: 'removeDisks',
      description:
        'Only now, with the new copy UpToDate, the old node’s devices and volumes go. A node that does not answer keeps them, recorded in the config, until it answers again.',
      says: (c) => `* removing the old copies of ${c.instance} on ${former(c)}`,
      input: (c) => ({ instance: c.instance, node: former(c), disks: c.disks }),
      next: [
        { guard: 'replacesThirdCopy', target: 'forgettingFormerThirdCopy' },
        { target: 'forgettingFormer' },
      ],
      goOnTo: 'doneKind',
      noting: [
        warning(
          (c, e) =>
            `Could not remove the old copies of ${c.instance} on ${former(c)} (${e}); the config keeps ${former(c)} as their node: run '${cleanupCommand(c)}' once it answers`,
        ),
      ],
    }),
    forgettingFormer: forgettingFormer('forgetFormerSecondary', 'secondary'),
    forgettingFormerThirdCopy: forgettingFormer('forgetFormerThirdCopy', 'third copy'),
    doneKind: {
      description: 'A replace is done; a repair has cleaned up.',
      always: [{ guard: 'cleanupRequested', target: 'cleaned' }, { target: 'replaced' }],
    },
    probingFormer: effectStep({
      src: 'probeNode',
      description:
        'Undoing before the commit: does the old secondary answer? One that does not (lost, or powered off) cannot be reconnected now: the primary stays without its peer, as it was when the replace began, or as the loss left it.',
      input: (c) => ({ instance: c.instance, node: former(c) }),
      timeoutMs: probeTimeout,
      next: [
        {
          guard: fromAnswer('unreachableIn', (probe: NodeProbe) => ({ probe })),
          target: 'removingNewDisks',
          actions: warning(
            (c) =>
              `${former(c)} does not answer: ${primary(c)} stays without its peer, on one copy of ${c.instance}; once ${former(c)} is back, 'drbd-migrate rejoin ${former(c)}' reconnects it (or replace it again)`,
          ),
        },
        { target: 'reattachingFormer' },
      ],
      // A probe that fails says nothing: the reconnect is tried, and says what happens.
      goOnTo: 'reattachingFormer',
    }),
    reattachingFormer: goReconnect({
      description:
        'Undoing before the commit: the primary connected again to the old secondary, which catches up on what it missed.',
      says: (c) => `* reconnecting ${primary(c)} to ${former(c)}`,
      between: (c) => [primary(c), former(c)],
      multimaster: false,
      rules: [2, 8],
      next: 'catchingUp',
      failTo: '#changeSecondary.surveying',
      failure: (c, e) =>
        `Cannot reconnect ${primary(c)} to ${former(c)} (${e}); run '${cleanupCommand(c)}' once ${former(c)} answers`,
    }),
    catchingUp: {
      description:
        'Waiting until the old secondary has caught up on what it missed: the undo ends with the two copies it found.',
      meta: meta({ rules: [5, 8] }),
      ...waitUntilSync({
        onFailed: '#changeSecondary.surveying',
        tolerated: false,
        between: (c) => [primary(c), former(c)],
      }),
      onDone: 'removingNewDisks',
    },
    droppingNewPeer: removingAsPeer({
      description:
        'Undoing on DRBD 9: the new node is no longer a peer of the primary (the old copy never left).',
      node: primary,
      peer: newSecondary,
      committed: false,
      next: [
        { guard: 'hasOtherCopy', target: 'droppingNewFromOtherCopy' },
        { guard: 'rewiresTiebreaker', target: 'droppingNewFromTiebreaker' },
        { target: 'removingNewDisks' },
      ],
    }),
    droppingNewFromOtherCopy: removingAsPeer({
      description: 'Undoing on DRBD 9: the new node is no longer a peer of the other copy either.',
      node: otherCopy,
      named: otherCopyNamed,
      peer: newSecondary,
      committed: false,
      next: [
        { guard: 'rewiresTiebreaker', target: 'droppingNewFromTiebreaker' },
        { target: 'removingNewDisks' },
      ],
    }),
    droppingNewFromTiebreaker: removingAsPeer({
      description: 'Undoing on DRBD 9: the new node is no longer a peer of the tiebreaker either.',
      node: tiebreaker,
      named: (c) => `${tiebreaker(c)}, the tiebreaker`,
      peer: newSecondary,
      committed: false,
      next: 'removingNewDisks',
    }),
    removingNewDisks: effectStep({
      src: 'removeDisks',
      description: 'Undoing: what was made on the new node is removed (Ganeti leaves it behind).',
      says: (c) => `* removing what was made on ${newSecondary(c)}`,
      input: (c) => ({ instance: c.instance, node: newSecondary(c), disks: c.disks }),
      next: [{ guard: 'cleanupRequested', target: 'cleaned' }, { target: 'reverted' }],
      failTo: '#changeSecondary.surveying',
      failure: (c, e) =>
        `Cannot remove the disks made for ${c.instance} on ${newSecondary(c)} (${e}); run '${cleanupCommand(c)}'`,
    }),
    surveying: survey({ next: '#changeSecondary.needsCleanup', former: true }),
    replaced: outcomeState(
      'replaced',
      'Done: the new node holds the copy (the secondary, or the third), UpToDate; the old one holds nothing of the instance.',
      { done: true, rules: [8] },
    ),
    cleaned: outcomeState(
      'cleaned',
      'Repaired: the replace is finished, or undone, and the disks are connected and in sync.',
      { done: true },
    ),
    reverted: outcomeState(
      'reverted',
      'Undone before the commit: the old secondary connected again, nothing left on the new node.',
    ),
    rejected: outcomeState(
      'rejected',
      'A prerequisite failed (the node, its room or memory, a degraded primary): nothing was touched.',
    ),
    needsCleanup: outcomeState(
      'needsCleanup',
      'The replace stopped halfway; `left` says what the three nodes look like, the error what to run.',
      {
        check:
          'Read the error and `left`, then run the repair (replace-secondary or replace-third-copy --cleanup) the error names.',
      },
    ),
  },
});

function windowAnnouncement(c: ProtocolContext): string | null {
  if (c.config?.drbdVersion === '9') return null;
  return `DRBD 8.4 keeps two copies only: from the disconnect of ${former(c)} until ${newSecondary(c)} is in sync, ${c.instance} has one copy (on ${primary(c)})`;
}

/** Why the new copy is not one yet (each end's view of every disk, towards the other), or null. */
function inSyncProblem(
  c: ProtocolContext,
  ends: readonly [string, string],
  perNode: Record<string, DiskStatus[]>,
): string | null {
  const views = ends.flatMap((node) => {
    const disks = perNode[node] ?? [];
    const bad = disks.filter((d) => !inSyncWithPeer(d));
    if (disks.length < c.disks.length) return [`${node} reported ${disks.length} of ${c.disks.length} disks`];
    return bad.map((d) => `${node} sees ${d.resource} ${d.connection}, ${d.diskState}/${d.peerDiskState}`);
  });
  return views.length === 0
    ? null
    : `The new copy of ${c.instance} on ${newSecondary(c)} is not in sync${ends[0] === primary(c) ? '' : ` with ${otherCopyNamed(c)},`} after the resync wait (${views.join('; ')}); the old copies on ${former(c)} are kept; run '${cleanupCommand(c)}'`;
}

/**
 * DRBD 9 with quorum: the new node must join the resource's tiebreaker as well as the primary, or it
 * would count in no majority; only a tiebreaker the config names can be rewired.
 */
function quorumProblem(c: ProtocolContext, disks: DiskStatus[]): string | null {
  const quorate = disks.filter((d) => d.quorum !== 'off');
  return c.config?.drbdVersion !== '9' || quorate.length === 0 || c.config.tiebreaker !== null
    ? null
    : `${quorate.map((d) => d.resource).join(', ')} ${quorate.length === 1 ? 'has' : 'have'} quorum on ${primary(c)}, but the cluster file names no tiebreaker: the new peer would join ${primary(c)} alone and count in no majority; name the resource's diskless third node in the instance's tiebreaker`;
}

/** The tiebreaker must be one (diskless) and reach the primary, for the new node to join it. */
function tiebreakerProblem(c: ProtocolContext, disks: DiskStatus[]): string | null {
  const t = tiebreaker(c);
  if (disks.length < c.disks.length)
    return `${t}, the tiebreaker, reported ${disks.length} of ${c.disks.length} disks`;
  const copies = disks.filter((d) => d.diskState !== 'Diskless');
  if (copies.length > 0)
    return `${t}, named the tiebreaker, holds ${copies.map((d) => `${d.resource} ${d.diskState}`).join(', ')}: a tiebreaker is diskless; correct the cluster file`;
  const apart = disks.filter((d) => d.connection !== 'Connected');
  return apart.length === 0
    ? null
    : `${t}, the tiebreaker, is not connected to ${primary(c)} on ${apart.map((d) => `${d.resource} (${d.connection})`).join(', ')}: the new node must join it too; bring it back first`;
}

/** The other copy must be UpToDate and connected to the primary, for the new node to join it. */
function otherCopyProblem(c: ProtocolContext, disks: DiskStatus[]): string | null {
  const t = otherCopyNamed(c);
  if (disks.length < c.disks.length) return `${t}, reported ${disks.length} of ${c.disks.length} disks`;
  const bad = disks.filter((d) => !inSyncWithPeer(d));
  return bad.length === 0
    ? null
    : `${t}, is not in sync with ${primary(c)} (${bad.map((d) => `${d.resource} ${d.connection}, ${d.diskState}/${d.peerDiskState}`).join('; ')}): the new node must join it too; bring it back in sync first`;
}

function degradedPrimary(c: ProtocolContext, disks: DiskStatus[]): string | null {
  const bad = disks.filter((d) => d.diskState !== 'UpToDate');
  if (disks.length < c.disks.length)
    return `${primary(c)} reported ${disks.length} of ${c.disks.length} disks`;
  return bad.length === 0
    ? null
    : `${bad.map((d) => `${d.resource} is ${d.diskState} on ${primary(c)}`).join(', ')} (a copy is never made from a degraded primary)`;
}

/** What the config must say for a replace (or its repair) to start. */
export function replaceProblem(config: InstanceConfig, c: ProtocolContext): string | null {
  const { newSecondary: wanted, cleanup, replaceCopy: copy } = c.request;
  const { command, option, name } = REPLACE_COMMAND[copy];
  if (config.diskTemplate !== 'drbd')
    return `Instance ${config.name}'s disk layout '${config.diskTemplate}' has no DRBD ${name} to replace`;
  if (config.secondaryNode === null) return `Instance ${config.name} has no secondary node`;
  if (copy === 'thirdCopy' && (config.thirdCopy === null || config.drbdVersion !== '9'))
    return `Instance ${config.name} has no third copy (a DRBD 9 third replica the config names): 'drbd-migrate replace-secondary ${config.name}' moves its secondary`;
  if (spaceNeededMiB(config.disks) === null)
    return `The sizes of ${config.name}'s disks are not known: the cluster file gives each disk a sizeMiB`;
  // A replace of the other copy that has not finished: its repair comes first.
  const other = copy === 'thirdCopy' ? 'secondary' : 'thirdCopy';
  // A config from before formerThirdCopy existed has none (the contract's default).
  const otherFormer = (other === 'thirdCopy' ? config.formerThirdCopy : config.formerSecondary) ?? null;
  if (otherFormer !== null)
    return `A replace of ${config.name}'s ${REPLACE_COMMAND[other].name} has not finished (the config still names ${otherFormer} as holding old copies): run 'drbd-migrate ${REPLACE_COMMAND[other].command} ${config.name} --cleanup' first`;
  const held = copyNode(config, copy);
  const formerNode = (copy === 'thirdCopy' ? config.formerThirdCopy : config.formerSecondary) ?? null;
  const others = [
    [config.primaryNode, 'primary'],
    [
      copy === 'thirdCopy' ? config.secondaryNode : config.thirdCopy,
      copy === 'thirdCopy' ? 'secondary' : 'third copy',
    ],
  ] as const;
  const otherRole = others.find(([n]) => n !== null && n === wanted)?.[1];
  if (cleanup) {
    if (formerNode !== null)
      return wanted === null || wanted === held
        ? null
        : `The config names ${held} as the ${name} of ${config.name} already (a replace passed its commit): run the repair without ${option}`;
    return wanted === null
      ? `No replace of ${config.name}'s ${name} to repair: the config names no former ${name}; name the node a failed replace left disks on with ${option}`
      : wanted === held
        ? `Nothing to repair: the replace of ${config.name}'s ${name} by ${wanted} finished (the config names ${wanted} as its ${name}, and no former one)`
        : otherRole !== undefined
          ? `${wanted} is a node of ${config.name} (the config names it ${otherRole === 'primary' ? 'primary' : `its ${otherRole}`}): the repair removes what a failed replace left on another node`
          : null;
  }
  if (formerNode !== null)
    return `A replace of ${config.name}'s ${name} has not finished (the config still names ${formerNode} as holding old copies): run 'drbd-migrate ${command} ${config.name} --cleanup' first`;
  if (wanted === null) return `Name the new ${name} of ${config.name}`;
  if (wanted === held) return `${wanted} is already the ${name} of ${config.name}`;
  if (otherRole === 'primary') return `${wanted} is the primary of ${config.name}`;
  if (otherRole !== undefined)
    return `${wanted} holds the ${otherRole} of ${config.name} already: name a node that holds none`;
  if (wanted === config.tiebreaker)
    return `${wanted} is the tiebreaker of ${config.name}'s resources (diskless, the third vote): a copy there would leave them two votes; name another node`;
  return null;
}
