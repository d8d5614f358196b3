import { and, not } from 'xstate';
import {
  checkFailoverConfig,
  checkPeerLost,
  checkQuorumProof,
  checkSelfFence,
  checkTargetUpToDate,
  locate,
} from './checks.js';
import type { DiskStatus, NodeProbe } from './contract.js';
import { meta } from './describe.js';
import { commitPrimary, survey } from './flows.js';
import { type ProtocolContext, probeTimeout, protocol, runMachineBase, stepTimeout } from './protocol.js';
import {
  abortTo,
  aboutBoth,
  aboutDisksOnBoth,
  effectStep,
  failing,
  fromAnswer,
  judgedRead,
  loadingConfig,
  outcomeState,
  recordLocations,
  warning,
} from './steps.js';

/**
 * Ganeti's _ExecFailover for DRBD instances: stop the instance on its primary, demote the disks
 * there, commit the secondary as the new primary, promote its disks, start the instance there.
 *
 * A dead source is a decision, not a guess (safety rule 7): with `sourceIsDown` the operator says the
 * node is down, and the machine still looks. A source that answers and runs the instance, or a
 * target whose DRBD is still connected to it, refuses the run before anything is touched. Without
 * the claim, a source that does not answer refuses it too, saying how to proceed, unless the
 * target's own kernel proves it cannot write (DRBD 9 quorum held without it) and the config gives
 * the bound within which it stops the instance itself: that bound is waited out first.
 */

/** Where the instance is on the source, as the last look saw it. */
const onSource = (c: ProtocolContext) =>
  c.found.locations === null ? null : locate(c.found.locations, c.instance, c.source);

type Probed = { context: ProtocolContext; event: { output: NodeProbe } };
const recordProbe = { type: 'recordProbe', params: ({ event }: Probed) => ({ probe: event.output }) };

/** Which of the target's disks would not be fenced by its own handler (none without selfFenceMs). */
const unfenced = (disks: DiskStatus[], c: ProtocolContext) =>
  c.config?.selfFenceMs == null ? undefined : disks.find((d) => d.quorumLostHandler === false);

/**
 * An emergency goes on onto a target that would not fence itself (its quorum-lost handler missing
 * since its copy was made), but its commit withdraws the instance's selfFenceMs: a later failover
 * away from it must not take its lost quorum as proof. Where the handler runs, nothing changes.
 */
const targetWithoutSelfFence = [
  fromAnswer('noteTargetWithoutSelfFence', (disks: DiskStatus[], c) => ({
    missing: unfenced(disks, c) !== undefined,
  })),
  fromAnswer('warn', (disks: DiskStatus[], c) => {
    const missing = unfenced(disks, c);
    return {
      message:
        missing === undefined
          ? null
          : `${c.target} would not stop ${c.instance} on losing DRBD quorum (no quorum-lost handler runs there for ${missing.resource}): the commit takes selfFenceMs out of the config, so that a failover away from ${c.target} needs the operator's word; give it the resource file with the handler, as on the other nodes (cluster.md), then put selfFenceMs back`,
    };
  }),
];

export const failoverMachine = protocol.createMachine({
  id: 'failover',
  ...runMachineBase,
  initial: 'checkingPrereqs',
  // Aborts are refused (runMachineBase) once the prerequisites passed: stopping halfway would leave
  // the instance down, so it finishes.
  states: {
    checkingPrereqs: {
      description:
        'Read-only checks: the config, whether the source is down or running the instance, the target’s disks.',
      meta: meta({
        rules: [6, 7],
        check: 'Nothing was changed; fix the cause the error names and run again.',
      }),
      on: {
        ABORT: abortTo('#failover.rejected', 'Aborted by the operator; nothing was touched'),
      },
      initial: 'loadingConfig',
      states: {
        loadingConfig: loadingConfig({
          check: (config, context) => checkFailoverConfig(config, context.request),
          next: 'probingSource',
          rejected: '#failover.rejected',
          towardsPrimary: (c) => c.request.cleanup,
          says: (c) =>
            c.request.cleanup
              ? `Repairing the failover of ${c.instance}: bringing it up on ${c.target}, which the config names, once ${c.source} is proven stopped or down`
              : `Failover instance ${c.instance}`,
        }),
        probingSource: {
          meta: meta({ rules: [7] }),
          ...effectStep({
            src: 'probeNode',
            description:
              'Does the source answer, and does it run the instance? The evidence for or against “down”.',
            input: (c) => ({ instance: c.instance, node: c.source }),
            timeoutMs: probeTimeout,
            next: [
              {
                // Said to be down, but it answers and has the instance: two writers if we went on. A
                // repair finding it there finds no failover left halfway: the config names the other.
                guard: {
                  type: 'presentWhereItMayNotStayIn',
                  params: ({ event }: Probed) => ({ probe: event.output }),
                },
                target: '#failover.rejected',
                actions: {
                  type: 'fail',
                  params: ({ context: c, event }: Probed) => ({
                    message: c.request.cleanup
                      ? `${c.instance} is ${event.output.state} on ${c.source}, but the config names ${c.target}: the repair does not stop a running instance to start it elsewhere; if ${c.target}'s data is the one to keep, stop ${c.instance} on ${c.source} and run this again; if ${c.source}'s is, make the config name it with 'drbd-migrate migrate ${c.instance} --cleanup'`
                      : `${c.source} is said to be down, but it answers and ${c.instance} is ${event.output.state} there: refusing to start it on ${c.target} as well; migrate it, or fail it over without --source-is-down (which shuts it down first)`,
                  }),
                },
              },
              {
                guard: { type: 'unreachableIn', params: ({ event }: Probed) => ({ probe: event.output }) },
                target: 'judgingSilence',
                actions: recordProbe,
              },
              { target: 'locating', actions: recordProbe },
            ],
            failTo: '#failover.rejected',
            failure: (c, e) => `Cannot probe node ${c.source}: ${e}`,
          }),
        },
        judgingSilence: {
          description:
            'The source does not answer: only with the operator’s word that it is down does the failover go on; DRBD’s view is the further evidence where there is DRBD.',
          meta: meta({ rules: [7] }),
          always: [
            {
              guard: and([not('sourceIsDownClaimed'), 'selfFences', not('sharedStorage')]),
              target: 'checkingQuorum',
            },
            {
              guard: not('sourceIsDownClaimed'),
              target: '#failover.rejected',
              actions: failing(
                (c) =>
                  `${c.source} does not answer: if it is powered off, say so with --source-is-down (a failover starts ${c.instance} on ${c.target} only with that word and the evidence that ${c.source} is down)`,
              ),
            },
            {
              // Shared storage has no replication link to testify: silence is no proof (a node cut off
              // from the management network still runs the guest and writes the shared device).
              guard: 'sharedStorage',
              target: '#failover.rejected',
              actions: failing(
                (c) =>
                  `${c.source} does not answer, but with shared storage nothing else can confirm it is down (a node cut off from this network may still run ${c.instance} and write its disks): power it off and make sure (fence it), then fail over without --source-is-down once it answers, or start ${c.instance} on ${c.target} by hand`,
              ),
            },
            { target: 'checkingPeer' },
          ],
        },
        checkingPeer: judgedRead({
          src: 'nodeDiskStatus',
          description:
            'The source does not answer: with the operator’s word that it is down, the target’s DRBD must agree (no connection to it) and hold UpToDate data.',
          rules: [4, 7],
          says: (c) => `* node ${c.source} does not answer; checking what ${c.target} sees`,
          input: (c) => ({ instance: c.instance, node: c.target, disks: c.disks }),
          problem: (c, disks) =>
            checkPeerLost(disks, c.instance, c.source, c.target, c.config?.tiebreaker ?? null),
          next: 'afterPeerLost',
          done: [
            ...targetWithoutSelfFence,
            warning(
              (c) =>
                `${c.source} is down (it does not answer and ${c.target} lost its DRBD connection to it): failing over without stopping the instance there`,
            ),
            warning((c) =>
              c.request.ignoreConsistency
                ? `--ignore-consistency: whatever ${c.source} wrote that had not reached ${c.target} before it went down is lost`
                : null,
            ),
          ],
          failTo: '#failover.rejected',
          failure: (c, e) => `Cannot read the disks on ${c.target}: ${e}`,
        }),
        afterPeerLost: {
          description:
            'The operator’s word is all that says a silent source stopped; where the config gives a self-fence bound, it is waited out as well (a node only cut off stops its guest within it).',
          always: [{ guard: 'selfFences', target: 'awaitingSelfFence' }, { target: '#failover.committing' }],
        },
        checkingQuorum: judgedRead({
          src: 'nodeDiskStatus',
          description:
            'The source does not answer and nobody said it is down: the target’s kernel must prove it cannot write (DRBD quorum held without it, may_promote) on every disk, its own data UpToDate.',
          rules: [4, 7],
          says: (c) =>
            `* node ${c.source} does not answer; asking ${c.target}'s DRBD whether it can still write`,
          input: (c) => ({ instance: c.instance, node: c.target, disks: c.disks }),
          problem: (c, disks) =>
            checkQuorumProof(disks, c.instance, c.source, c.target, c.config?.tiebreaker ?? null),
          next: 'awaitingSelfFence',
          done: [
            ...targetWithoutSelfFence,
            warning(
              (c) =>
                `${c.source} does not answer and ${c.target} holds DRBD quorum without it: ${c.source} cannot write; its quorum-lost handler stops ${c.instance} there within ${c.config?.selfFenceMs} ms, waited out before it starts on ${c.target}`,
            ),
          ],
          failTo: '#failover.rejected',
          failure: (c, e) => `Cannot read the disks on ${c.target}: ${e}`,
        }),
        awaitingSelfFence: effectStep({
          src: 'awaitSelfFence',
          description:
            'Rule 1 besides rule 7: the source cannot write, and must not run the instance either; its quorum-lost handler stops it within the config’s bound, waited out here (nothing is sent to it).',
          rules: [1, 7],
          input: (c) => ({ instance: c.instance, node: c.source, withinMs: c.config?.selfFenceMs ?? 1 }),
          timeoutMs: (c) => (c.config?.selfFenceMs ?? 0) + stepTimeout(c),
          next: '#failover.committing',
          failTo: '#failover.rejected',
          failure: (c, e) => `Waiting for ${c.source} to stop ${c.instance} itself was cut short: ${e}`,
        }),
        locating: effectStep({
          src: 'instanceList',
          description: 'The source answers and does not run the instance: where is it? Not on the target.',
          input: aboutBoth,
          next: 'storageKind',
          done: [recordLocations],
          failTo: '#failover.rejected',
          failure: (c, e) =>
            c.request.cleanup
              ? `Can't contact nodes: ${e}; if ${c.target}, which the config names, is down, the failover never committed: fail ${c.instance} over again ('drbd-migrate failover ${c.instance} --source-is-down')`
              : `Can't contact nodes: ${e}`,
        }),
        storageKind: {
          description: 'DRBD disks are checked on the target; shared storage has nothing to replicate.',
          always: [{ guard: 'sharedStorage', target: 'checkingMemory' }, { target: 'checkingDisks' }],
        },
        checkingDisks: judgedRead({
          src: 'diskStatus',
          description:
            'The target’s disks must be UpToDate (and in sync with the source, unless told to ignore it); with selfFenceMs, a planned failover’s target would stop the instance on losing quorum.',
          input: aboutDisksOnBoth,
          // A repair brings the instance up where the config already names: nothing to choose.
          problem: (c, status) =>
            diskProblem(c, status) ?? (c.request.cleanup ? null : checkSelfFence(c.config, status, c.target)),
          next: 'checkingMemory',
          failTo: '#failover.rejected',
          failure: (_, e) => `Cannot check disk consistency: ${e}`,
          says: () => '* checking disk consistency on the target',
          rules: [1, 4],
        }),
        checkingMemory: judgedRead({
          src: 'nodeInfo',
          description: 'The target must have room for the instance: it starts there with all of its memory.',
          input: aboutBoth,
          problem: (c, nodes) => {
            // A repair that finds the instance running where the config names needs no room for it.
            if (c.found.locations !== null && locate(c.found.locations, c.instance, c.target) !== null)
              return null;
            const free = Math.floor(nodes[c.target]?.memoryFreeMiB ?? 0);
            const need = c.config?.memoryMiB ?? 0;
            return free >= need
              ? null
              : `Not enough memory on node ${c.target} for failing over instance ${c.instance}: needed ${need} MiB, available ${free} MiB`;
          },
          next: '#failover.shuttingDown',
          failTo: '#failover.rejected',
          failure: (_, e) => `Unable to retrieve node information: ${e}`,
        }),
      },
    },
    shuttingDown: {
      ...effectStep({
        src: 'shutdownInstance',
        description: 'Stopping the instance on the source (it is not running there; this makes sure).',
        input: (c) => ({ instance: c.instance, node: c.source }),
        next: 'deactivatingSourceDisks',
        failTo: '#failover.surveying',
        failure: (c, e) =>
          `Could not shut down instance ${c.instance} on node ${c.source}: ${e}; it may still run there, so it is not started on ${c.target}`,
        says: () => '* shutting down instance on source node',
        rules: [1, 7],
      }),
    },
    deactivatingSourceDisks: {
      ...effectStep({
        src: 'closeDisks',
        description: 'Demoting the disks on the source (drbdsetup secondary).',
        input: (c) => ({ instance: c.instance, node: c.source, disks: c.disks }),
        next: 'committing',
        failTo: '#failover.surveying',
        failure: (c, e) => `Can't shut down the instance's disks on ${c.source}: ${e}`,
        says: () => "* deactivating the instance's disks on source node",
        rules: [2],
      }),
    },
    committing: {
      description: 'The one commit point: the config now names the target as the primary node.',
      tags: ['commit'],
      meta: meta({ marker: 'commit point', rules: [3] }),
      ...commitPrimary({
        onCommitted: '#failover.committed',
        onFailed: '#failover.surveying',
        repair: 'the instance is stopped; run the failover again',
      }),
    },
    committed: {
      description:
        'Ganeti starts the instance on its new primary only if it is to run: a stopped instance stays stopped, its disks Secondary on both nodes.',
      always: [{ guard: 'stoppedByAdmin', target: 'failedOver' }, { target: 'activatingDisks' }],
    },
    activatingDisks: {
      ...effectStep({
        src: 'openDisks',
        description: 'Promoting the disks on the target, its own data UpToDate (its peer stopped or down).',
        input: (c) => ({ instance: c.instance, node: c.target, disks: c.disks, exclusive: true }),
        next: 'startingInstance',
        failTo: '#failover.surveying',
        failure: (c, e) =>
          `Can't activate the instance's disks on ${c.target}: ${e}; the config names ${c.target} and the instance is stopped: finish it with 'drbd-migrate failover ${c.instance} --cleanup' once the cause is fixed (a failover run again would move it back)`,
        says: (c) => `* activating the instance's disks on target node ${c.target}`,
        rules: [4, 7],
      }),
    },
    startingInstance: {
      ...effectStep({
        src: 'startInstance',
        description: 'Starting the instance on the target from its disks.',
        input: (c) => ({ instance: c.instance, node: c.target }),
        next: 'failedOver',
        failTo: '#failover.surveying',
        failure: (c, e) =>
          `Could not start instance ${c.instance} on node ${c.target}: ${e}; its disks are active there and the config names it: finish it with 'drbd-migrate failover ${c.instance} --cleanup' once the cause is fixed (a failover run again would move it back)`,
        says: (c) => `* starting the instance on the target node ${c.target}`,
        rules: [1],
      }),
    },
    surveying: survey({ next: '#failover.needsCleanup' }),
    failedOver: outcomeState(
      'failedOver',
      'Done: the instance runs on the former secondary, and the config names it.',
      {
        done: true,
      },
    ),
    rejected: outcomeState(
      'rejected',
      'A prerequisite failed, the evidence did not show the source down, or the input was bad: nothing was touched.',
      { rules: [6, 7], check: 'Read the error: it says what was seen and what to do.' },
    ),
    needsCleanup: outcomeState(
      'needsCleanup',
      'The failover stopped halfway; `left` says what the nodes look like.',
      {
        check:
          'Read the error and `left`. Before the commit the instance is still the source’s: a failover run again picks it up. After it the config names the target: `failover --cleanup` brings the instance up there (a failover run again would move it back).',
      },
    ),
  },
});

/** The target's disks before a failover with the source alive: UpToDate, and in sync unless told otherwise. */
function diskProblem(context: ProtocolContext, status: Record<string, DiskStatus[]>) {
  const target = status[context.target] ?? [];
  if (onSource(context) === null && target.length === 0) return `Cannot read the disks on ${context.target}`;
  const stale = checkTargetUpToDate(target, context.target);
  if (stale !== null) return stale;
  const apart = target.filter((d) => d.connection !== 'Connected' || d.peerDiskState !== 'UpToDate');
  if (apart.length === 0) return null;
  const what = `Disk ${apart.map((d) => `${d.resource} is ${d.connection}, peer ${d.peerDiskState}`).join(', ')} on ${context.target}: not in sync with ${context.source}`;
  // Ganeti's ignore_consistency is for a degraded target of a dead source: here the source answers,
  // and promoting a target that is not in sync with it (rule 4) would throw away what it wrote.
  if (context.request.cleanup) {
    return `${what}, which answers again: take it back first with 'drbd-migrate rejoin ${context.source}' (it resyncs from whichever node holds the newer data and says which), then run the repair again`;
  }
  return context.request.ignoreConsistency
    ? `${what}, which answers: --ignore-consistency is only for a source that is down (what ${context.source} wrote since would be lost); wait for the resync, or migrate ${context.instance}`
    : `${what}; wait for the resync (--ignore-consistency is only for a source that is down)`;
}
