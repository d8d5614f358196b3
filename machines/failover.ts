import { not } from 'xstate';
import { checkFailoverConfig, checkPeerLost, checkTargetUpToDate, locate } from './checks.js';
import type { DiskStatus } from './contract.js';
import { meta } from './describe.js';
import { errorText } from './effects.js';
import { commitPrimary, effectStep, judgedRead, loadingConfig, outcomeState, survey } from './flows.js';
import {
  askBoth,
  bothNodes,
  initialContext,
  outputOf,
  type ProtocolContext,
  probeTimeout,
  protocol,
  step,
} from './protocol.js';

/**
 * Ganeti's _ExecFailover for DRBD instances: stop the instance on its primary, demote the disks
 * there, commit the secondary as the new primary, promote its disks, start the instance there.
 *
 * A dead source is a decision, not a guess (safety rule 7): with `sourceIsDown` the operator says the
 * node is down, and the machine still looks. A source that answers and runs the instance, or a
 * target whose DRBD is still connected to it, refuses the run before anything is touched. Without
 * the claim, a source that does not answer refuses it too, saying how to proceed.
 */

const refuse = (message: (c: ProtocolContext, detail: string) => string) => ({
  target: '#failover.rejected',
  actions: {
    type: 'fail' as const,
    params: ({ context, event }: { context: ProtocolContext; event: { error?: unknown } }) => ({
      message: message(context, event.error === undefined ? '' : errorText(event.error)),
    }),
  },
});

/** Where the instance is on the source, as the last look saw it. */
const onSource = (c: ProtocolContext) =>
  c.found.locations === null ? null : locate(c.found.locations, c.instance, c.source);

export const failoverMachine = protocol.createMachine({
  id: 'failover',
  context: ({ input }) => initialContext(input),
  output: ({ context }) => outputOf(context),
  initial: 'checkingPrereqs',
  // Once the instance is being stopped, stopping halfway would leave it down: it finishes.
  on: { ABORT: { actions: 'refuseAbort' } },
  states: {
    checkingPrereqs: {
      description:
        'Read-only checks: the config, whether the source is down or running the instance, the target’s disks.',
      meta: meta({
        rules: [6, 7],
        check: 'Nothing was changed; fix the cause the error names and run again.',
      }),
      on: {
        ABORT: {
          target: '#failover.rejected',
          actions: { type: 'fail', params: { message: 'Aborted by the operator; nothing was touched' } },
        },
      },
      initial: 'loadingConfig',
      states: {
        loadingConfig: loadingConfig({
          check: (config, context) => checkFailoverConfig(config, context.request),
          next: 'probingSource',
          rejected: '#failover.rejected',
          says: (context) => `Failover instance ${context.instance}`,
        }),
        probingSource: {
          description:
            'Does the source answer, and does it run the instance? The evidence for or against “down”.',
          meta: meta({ rules: [7] }),
          invoke: {
            id: 'probeNode',
            src: 'probeNode',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.source,
              timeoutMs: probeTimeout(context),
            }),
            onDone: [
              {
                // Said to be down, but it answers and has the instance: two writers if we went on.
                guard: { type: 'claimedDownButPresentIn', params: ({ event }) => ({ probe: event.output }) },
                target: '#failover.rejected',
                actions: {
                  type: 'fail',
                  params: ({ context, event }) => ({
                    message: `${context.source} is said to be down, but it answers and ${context.instance} is ${event.output.state} there: refusing to start it on ${context.target} as well; migrate it, or fail it over without --source-is-down (which shuts it down first)`,
                  }),
                },
              },
              {
                guard: { type: 'unreachableIn', params: ({ event }) => ({ probe: event.output }) },
                target: 'judgingSilence',
                actions: { type: 'recordProbe', params: ({ event }) => ({ probe: event.output }) },
              },
              {
                target: 'locating',
                actions: { type: 'recordProbe', params: ({ event }) => ({ probe: event.output }) },
              },
            ],
            onError: refuse((c, e) => `Cannot probe node ${c.source}: ${e}`),
          },
        },
        judgingSilence: {
          description:
            'The source does not answer: only with the operator’s word that it is down does the failover go on; DRBD’s view is the further evidence where there is DRBD.',
          meta: meta({ rules: [7] }),
          always: [
            {
              guard: not('sourceIsDownClaimed'),
              target: '#failover.rejected',
              actions: {
                type: 'fail',
                params: ({ context }) => ({
                  message: `${context.source} does not answer: if it is powered off, say so with --source-is-down (a failover starts ${context.instance} on ${context.target} only with that word and the evidence that ${context.source} is down)`,
                }),
              },
            },
            {
              // Shared storage has no replication link to testify: silence is no proof (a node cut off
              // from the management network still runs the guest and writes the shared device).
              guard: 'sharedStorage',
              target: '#failover.rejected',
              actions: {
                type: 'fail',
                params: ({ context }) => ({
                  message: `${context.source} does not answer, but with shared storage nothing else can confirm it is down (a node cut off from this network may still run ${context.instance} and write its disks): power it off and make sure (fence it), then fail over without --source-is-down once it answers, or start ${context.instance} on ${context.target} by hand`,
                }),
              },
            },
            { target: 'checkingPeer' },
          ],
        },
        checkingPeer: {
          description:
            'The source does not answer: with the operator’s word that it is down, the target’s DRBD must agree (no connection to it) and hold UpToDate data.',
          meta: meta({ rules: [4, 7] }),
          entry: {
            type: 'feedback',
            params: ({ context }) => ({
              message: `* node ${context.source} does not answer; checking what ${context.target} sees`,
            }),
          },
          invoke: {
            id: 'nodeDiskStatus',
            src: 'nodeDiskStatus',
            input: ({ context }) => ({
              instance: context.instance,
              node: context.target,
              disks: context.disks,
              timeoutMs: step(context),
            }),
            onDone: [
              {
                guard: {
                  type: 'rejects',
                  params: ({ context, event }) => ({
                    problem: checkPeerLost(event.output, context.instance, context.source, context.target),
                  }),
                },
                target: '#failover.rejected',
                actions: {
                  type: 'fail',
                  params: ({ context, event }) => ({
                    message: checkPeerLost(event.output, context.instance, context.source, context.target)!,
                  }),
                },
              },
              {
                target: '#failover.committing',
                actions: {
                  type: 'warn',
                  params: ({ context }) => ({
                    message: `${context.source} is down (it does not answer and ${context.target} lost its DRBD connection to it): failing over without stopping the instance there`,
                  }),
                },
              },
            ],
            onError: refuse((c, e) => `Cannot read the disks on ${c.target}: ${e}`),
          },
        },
        locating: {
          description: 'The source answers and does not run the instance: where is it? Not on the target.',
          invoke: {
            id: 'instanceList',
            src: 'instanceList',
            input: askBoth,
            onDone: {
              target: 'storageKind',
              actions: { type: 'recordLocations', params: ({ event }) => ({ lists: event.output }) },
            },
            onError: refuse((_, e) => `Can't contact nodes: ${e}`),
          },
        },
        storageKind: {
          description: 'DRBD disks are checked on the target; shared storage has nothing to replicate.',
          always: [{ guard: 'sharedStorage', target: 'checkingMemory' }, { target: 'checkingDisks' }],
        },
        checkingDisks: judgedRead({
          src: 'diskStatus',
          description:
            'The target’s disks must be UpToDate (and in sync with the source, unless told to ignore it).',
          input: ({ context }) => ({
            instance: context.instance,
            nodes: bothNodes(context),
            disks: context.disks,
          }),
          problem: diskProblem,
          next: 'checkingMemory',
          rejectTo: '#failover.rejected',
          failTo: '#failover.rejected',
          failure: (_, e) => `Cannot check disk consistency: ${e}`,
          says: () => '* checking disk consistency on the target',
          rules: [4],
        }),
        checkingMemory: judgedRead({
          src: 'nodeInfo',
          description: 'The target must have room for the instance: it starts there with all of its memory.',
          input: ({ context }) => ({ instance: context.instance, nodes: bothNodes(context) }),
          problem: (c, nodes) => {
            const free = Math.floor(nodes[c.target]?.memoryFreeMiB ?? 0);
            const need = c.config?.memoryMiB ?? 0;
            return free >= need
              ? null
              : `Not enough memory on node ${c.target} for failing over instance ${c.instance}: needed ${need} MiB, available ${free} MiB`;
          },
          next: '#failover.shuttingDown',
          rejectTo: '#failover.rejected',
          failTo: '#failover.rejected',
          failure: (_, e) => `Unable to retrieve node information: ${e}`,
        }),
      },
    },
    shuttingDown: {
      ...effectStep({
        src: 'shutdownInstance',
        description: 'Stopping the instance on the source (it is not running there; this makes sure).',
        input: ({ context }) => ({ instance: context.instance, node: context.source }),
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
        input: ({ context }) => ({ instance: context.instance, node: context.source, disks: context.disks }),
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
        input: ({ context }) => ({
          instance: context.instance,
          node: context.target,
          disks: context.disks,
          exclusive: true,
        }),
        next: 'startingInstance',
        failTo: '#failover.surveying',
        failure: (c, e) =>
          `Can't activate the instance's disks on ${c.target}: ${e}; the config names ${c.target} and the instance is stopped: make its disks Primary and start it there by hand (a failover run again would move it back)`,
        says: (c) => `* activating the instance's disks on target node ${c.target}`,
        rules: [4, 7],
      }),
    },
    startingInstance: {
      ...effectStep({
        src: 'startInstance',
        description: 'Starting the instance on the target from its disks.',
        input: ({ context }) => ({ instance: context.instance, node: context.target }),
        next: 'failedOver',
        failTo: '#failover.surveying',
        failure: (c, e) =>
          `Could not start instance ${c.instance} on node ${c.target}: ${e}; its disks are active there and the config names it: start it there by hand once the cause is fixed (a failover run again would move it back)`,
        says: (c) => `* starting the instance on the target node ${c.target}`,
        rules: [1],
      }),
    },
    surveying: {
      description: 'Giving up: reading both nodes so that the outcome says what is really left.',
      tags: ['failure'],
      ...survey({ next: '#failover.needsCleanup' }),
    },
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
          'Read the error and `left`. Before the commit the instance is still the source’s: a failover run again picks it up. After it the config names the target: make its disks Primary and start the instance there by hand; a failover run again would move it back.',
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
  if (context.request.ignoreConsistency) return null;
  const apart = target.filter((d) => d.connection !== 'Connected' || d.peerDiskState !== 'UpToDate');
  return apart.length === 0
    ? null
    : `Disk ${apart.map((d) => `${d.resource} is ${d.connection}, peer ${d.peerDiskState}`).join(', ')} on ${context.target}: not in sync with ${context.source}; wait for the resync, or fail over with --ignore-consistency`;
}
