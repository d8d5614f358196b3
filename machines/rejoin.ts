import { checkInstanceConfig, checkRejoined, resyncForecast } from './checks.js';
import type { DiskStatus, InstanceConfig, NodeProbe } from './contract.js';
import { meta } from './describe.js';
import { survey, waitUntilSync } from './flows.js';
import { type ProtocolContext, probeTimeout, protocol, runMachineBase } from './protocol.js';
import {
  abortTo,
  aboutDisksOnBoth,
  effectStep,
  fromAnswer,
  goReconnect,
  goStandalone,
  judgedRead,
  loadingConfig,
  outcomeState,
  saying,
  thirdCopyNode,
  warning,
} from './steps.js';

/**
 * The failed node comes back (after a failover it is the instance's secondary): it must become
 * Secondary and never overwrite what the survivor wrote (safety rule 7). A guest still running
 * there is a stale copy and is stopped; the node reconnects with --discard-my-data, so that a split
 * brain (it wrote on its own before it died) resolves in the survivor's favour; then the resync runs
 * and both sides are read back. Where the survivor wrote nothing since (the failover never started
 * the instance), DRBD resyncs from the returning node, whose data is the newer: the rejoin reads both
 * sides first and says which way it goes, and what is discarded before it is. With three copies
 * (DRBD 9) the returning node then reconnects to the other copy the same way: the third copy, or,
 * where the third copy's node is the one returning, the secondary, if that is in sync with the
 * primary. Here `source` is the survivor (the config's primary) and `target` the returning node.
 */

const returning = (c: ProtocolContext) => c.target;
const forecast = (c: ProtocolContext) => resyncForecast(c.found.disksBefore, survivor(c), returning(c));
const survivor = (c: ProtocolContext) => c.source;
/**
 * With three copies, the one the returning node reconnects to after the survivor: the third copy
 * when the secondary returns; the secondary when the third copy's node returns.
 */
const otherCopy = (c: ProtocolContext) =>
  returning(c) === thirdCopyNode(c) ? (c.config?.secondaryNode ?? '') : thirdCopyNode(c);
const otherCopyRole = (c: ProtocolContext) =>
  returning(c) === thirdCopyNode(c) ? 'the secondary' : 'the third copy';
type Probed = { context: ProtocolContext; event: { output: NodeProbe } };

export const rejoinMachine = protocol.createMachine({
  id: 'rejoin',
  ...runMachineBase,
  initial: 'loadingConfig',
  // Aborts are refused (runMachineBase) once the config is read: halfway through, the returning node
  // is neither out nor in, so the rejoin finishes.
  states: {
    loadingConfig: {
      on: {
        ABORT: abortTo('rejected', 'Aborted by the operator; nothing was touched'),
      },
      ...loadingConfig({
        check: rejoinProblem,
        next: 'probing',
        rejected: '#rejoin.rejected',
        says: (c) =>
          `Rejoining ${returning(c)} as the ${returning(c) === thirdCopyNode(c) ? 'third copy' : 'secondary'} of ${c.instance} (primary ${survivor(c)})`,
      }),
    },
    probing: {
      meta: meta({ rules: [1, 7] }),
      ...effectStep({
        src: 'probeNode',
        description: 'Is the returning node up, and does a stale copy of the instance run there?',
        input: (c) => ({ instance: c.instance, node: returning(c) }),
        timeoutMs: probeTimeout,
        next: [
          {
            guard: { type: 'unreachableIn', params: ({ event }: Probed) => ({ probe: event.output }) },
            target: 'rejected',
            actions: {
              type: 'fail',
              params: ({ context, event }: Probed) => ({
                message: `${returning(context)} does not answer (${event.output.error}): boot it first, then rejoin it`,
              }),
            },
          },
          {
            guard: { type: 'presentIn', params: ({ event }: Probed) => ({ probe: event.output }) },
            target: 'stoppingStaleCopy',
          },
          { guard: 'sharedStorage', target: 'demoting' },
          { target: 'lookingAtDisks' },
        ],
        failTo: 'rejected',
        failure: (c, e) => `Cannot probe node ${returning(c)}: ${e}`,
      }),
    },
    lookingAtDisks: effectStep({
      src: 'diskStatus',
      description:
        'Is the returning node already the secondary, connected and in sync? Then there is nothing to do (a rejoin of a healthy node changes nothing).',
      input: aboutDisksOnBoth,
      next: [
        {
          guard: fromAnswer('rejoinedIn', (status: Record<string, DiskStatus[]>) => ({ status })),
          // A third copy's link is looked at too: it may not have come back with the survivor's.
          target: 'thirdCopy',
          actions: saying(
            (c) =>
              `* ${returning(c)} is already the secondary of ${c.instance}, connected and in sync: nothing to do`,
          ),
        },
        {
          target: 'demoting',
          actions: fromAnswer('recordDisksBefore', (status: Record<string, DiskStatus[]>) => ({
            disks: status,
          })),
        },
      ],
      // A read that fails says nothing either way: the rejoin goes on and reads back at its end.
      goOnTo: 'demoting',
    }),
    stoppingStaleCopy: {
      ...effectStep({
        src: 'shutdownInstance',
        description:
          'A copy of the instance runs on the returning node: stale, since the config names the survivor; it is stopped.',
        input: (c) => ({ instance: c.instance, node: returning(c) }),
        next: 'demoting',
        failTo: '#rejoin.surveying',
        failure: (c, e) => `Could not stop the stale copy of ${c.instance} on ${returning(c)}: ${e}`,
        says: (c) => `* stopping the stale copy of ${c.instance} on ${returning(c)}`,
        rules: [1],
      }),
    },
    demoting: {
      ...effectStep({
        src: 'closeDisks',
        description: 'The returning node’s disks become Secondary.',
        input: (c) => ({ instance: c.instance, node: returning(c), disks: c.disks }),
        next: 'storageKind',
        failTo: '#rejoin.surveying',
        failure: (c, e) => `Cannot make the disks Secondary on ${returning(c)}: ${e}`,
        says: (c) => `* making the disks Secondary on ${returning(c)}`,
        rules: [2, 7],
      }),
    },
    storageKind: {
      description:
        'Shared storage has no replication to resync: a returning node that holds nothing is rejoined.',
      always: [{ guard: 'sharedStorage', target: 'rejoined' }, { target: 'goingStandalone' }],
    },
    goingStandalone: goStandalone({
      description: 'Both sides StandAlone, whatever the survivor was waiting for.',
      // What the returning node would lose is said before it is lost.
      next: [{ target: 'reconnecting', actions: warning((c) => forecast(c).discards) }],
      failTo: '#rejoin.surveying',
    }),
    reconnecting: goReconnect({
      description:
        'Reconnecting single-master, the returning node with --discard-my-data: a split brain resolves in the survivor’s favour.',
      multimaster: false,
      discardOn: returning,
      rules: [2, 7],
      says: (c) => forecast(c).says,
      next: 'resyncing',
      failTo: '#rejoin.surveying',
      failure: (_, e) => `Cannot reconnect the disks: ${e}`,
    }),
    resyncing: {
      description: 'Waiting for the returning node to catch up with the survivor.',
      meta: meta({ rules: [5] }),
      ...waitUntilSync({ onFailed: '#rejoin.surveying', tolerated: false }),
      onDone: 'verifying',
    },
    verifying: judgedRead({
      src: 'diskStatus',
      description: 'Reading both sides back: Connected, UpToDate/UpToDate, the returning node Secondary.',
      input: aboutDisksOnBoth,
      problem: (c, status) => checkRejoined(status, survivor(c), returning(c)),
      next: 'thirdCopy',
      failTo: '#rejoin.surveying',
      failure: (_, e) => `Cannot read disk status: ${e}`,
      rules: [2, 4],
    }),
    thirdCopy: {
      description:
        'DRBD 9 with three copies: the returning node is reconnected to the other copy too (the third, or, where the third returns, the secondary; it followed the survivor meanwhile).',
      always: [
        { guard: 'hasThirdCopy', target: 'reconnectingThird' },
        { guard: 'returnsThirdCopy', target: 'readingSecondary' },
        { target: 'rejoined' },
      ],
    },
    readingSecondary: effectStep({
      src: 'nodeDiskStatus',
      description:
        'The third copy returns: is the secondary in sync with the survivor? Only then is it a copy to take from; one that is not (it may have died too) is left to its own rejoin, which reconnects it to the third.',
      input: (c) => ({ instance: c.instance, node: otherCopy(c), disks: c.disks }),
      next: [
        { guard: fromAnswer('inSync', (disks: DiskStatus[]) => ({ disks })), target: 'reconnectingThird' },
        {
          target: 'rejoined',
          actions: warning(
            (c) =>
              `${otherCopy(c)}, the secondary, is not in sync with ${survivor(c)}: ${returning(c)} is not connected to it; 'drbd-migrate rejoin ${otherCopy(c)}' connects the two once it is back`,
          ),
        },
      ],
      goOnTo: 'rejoined',
      noting: [
        warning(
          (c, e) =>
            `Cannot read ${otherCopy(c)}, the secondary (${e}): ${returning(c)} is not connected to it; run the rejoin of ${returning(c)} again once it answers`,
        ),
      ],
    }),
    reconnectingThird: goReconnect({
      description:
        'Reconnecting the returning node to the other copy, single-master, with --discard-my-data on the returning side: that copy, which took the survivor’s writes, is never overwritten.',
      multimaster: false,
      discardOn: returning,
      between: (c) => [otherCopy(c), returning(c)],
      rules: [2, 7],
      says: (c) => `* reconnecting ${returning(c)} to ${otherCopy(c)}, ${otherCopyRole(c)}`,
      next: 'resyncingThird',
      failTo: '#rejoin.surveying',
      failure: (c, e) => `Cannot reconnect ${returning(c)} to ${otherCopy(c)}, ${otherCopyRole(c)}: ${e}`,
    }),
    resyncingThird: {
      description: 'Waiting for the returning node and the other copy to be in sync.',
      meta: meta({ rules: [5] }),
      ...waitUntilSync({
        onFailed: '#rejoin.surveying',
        tolerated: false,
        between: (c) => [otherCopy(c), returning(c)],
      }),
      onDone: 'rejoined',
    },
    surveying: survey({ next: '#rejoin.needsCleanup' }),
    rejoined: outcomeState(
      'rejoined',
      'Done: the returning node is the Secondary again, in sync with the survivor.',
      {
        done: true,
      },
    ),
    rejected: outcomeState(
      'rejected',
      'The instance cannot be rejoined (not DRBD, no secondary), or the returning node is not up: nothing was touched.',
    ),
    needsCleanup: outcomeState(
      'needsCleanup',
      'The rejoin stopped halfway; `left` says what the nodes look like; it can be run again.',
      { check: 'Read the error and `left`, then run the rejoin again.' },
    ),
  },
});

function rejoinProblem(config: InstanceConfig): string | null {
  return checkInstanceConfig(config, { targetNode: null });
}
