import type { AnyMachineSnapshot } from 'xstate';
import type { DiskStatus, EffectName, Limits, ProtocolContext, ProtocolInput } from '../../machines/index.js';
import { DEMO_SPEC, type Perturbation, type WorldSpec } from '../sim/index.js';

/**
 * The answers an effect can give that send a machine down different branches, each with the recipe
 * that makes a world really give it. Path generation uses the answers; replay uses the recipes.
 */

/**
 * Where a run starts: a healthy cluster, a migration dropped at some point (for a cleanup), or the
 * primary died and was failed over from, then booted again (for a rejoin).
 */
export type StartPoint =
  | 'healthy'
  | 'crashMidCopy'
  | 'crashAfterCopy'
  | 'crashBeforeCommit'
  | 'afterFailover'
  /** Three copies: the third copy's node lost power and booted again (a rejoin of it is its world). */
  | 'thirdCopyRestarted'
  /** The instance stands paused on its primary (a copy aborted without 'cont'): a cleanup's world. */
  | 'pausedOnSource'
  /** A replace of web1's secondary (node-b by node-c) dropped right after its commit: its repair's world. */
  | 'replaceCommitted';

/** What a world needs so that a path's answers come true in it. Later recipes in a path win. */
export interface Recipe {
  spec?: WorldSpec;
  limits?: Partial<Limits>;
  input?: Partial<ProtocolInput>;
  start?: StartPoint;
}

export interface Variant {
  name: string;
  output: (c: ProtocolContext) => unknown;
  /** Only offered where it can happen. */
  applies?: (s: AnyMachineSnapshot) => boolean;
  recipe?: Recipe;
  /** Something that happens to the world just before this call. */
  perturb?: Perturbation;
}

const twoDisks = [
  { index: 0, resource: 'web1-disk0', minor: 0, sizeMiB: 10240 },
  { index: 1, resource: 'web1-disk1', minor: 1, sizeMiB: 4096 },
];

const config = (c: ProtocolContext) => ({
  name: c.instance,
  primaryNode: 'node-a',
  secondaryNode: 'node-b',
  diskTemplate: 'drbd',
  disks: twoDisks,
  memoryMiB: 2048,
  minMemoryMiB: 1024,
  migrationMode: 'live',
  adminState: 'up',
  formerSecondary: null,
  formerThirdCopy: null,
});

/** Three nodes: a replace gives web1 (node-a, node-b) a new secondary, node-c. */
export const THREE_NODES = { 'node-a': {}, 'node-b': {}, 'node-c': {} };
const replacing = (s: AnyMachineSnapshot) => s.machine.id === 'changeSecondary';
/** A replace of the third copy (replace-third-copy), not of the secondary. */
const movesThird = (s: AnyMachineSnapshot) =>
  replacing(s) && (s.context as ProtocolContext).request.replaceCopy === 'thirdCopy';
const movesSecondary = (s: AnyMachineSnapshot) => replacing(s) && !movesThird(s);
/** The copy a replace keeps beside the primary's and the moving one: the third, or the secondary. */
const otherCopyOf = (c: ProtocolContext) =>
  (c.request.replaceCopy === 'thirdCopy' ? c.config?.secondaryNode : c.config?.thirdCopy) ?? '';

const perNode = <T>(c: ProtocolContext, f: (node: string) => T) => ({
  [c.source]: f(c.source),
  [c.target]: f(c.target),
});

const disk = (
  d: (typeof twoDisks)[number],
  role: 'Primary' | 'Secondary',
  extra: Partial<DiskStatus> = {},
): DiskStatus => ({
  resource: d.resource,
  minor: d.minor,
  role,
  peerRole: role === 'Primary' ? 'Secondary' : 'Primary',
  connection: 'Connected',
  replication: 'Established',
  diskState: 'UpToDate',
  peerDiskState: 'UpToDate',
  allowTwoPrimaries: false,
  syncPercent: null,
  outOfSyncKiB: 0,
  quorum: 'off',
  mayPromote: null,
  autoPromote: false,
  quorumLostHandler: null,
  ...extra,
});

const disks = (c: ProtocolContext, extra: (node: string) => Partial<DiskStatus> = () => ({})) =>
  perNode(c, (n) =>
    c.disks.map((_, i) =>
      disk(twoDisks[i] ?? twoDisks[0]!, n === c.source ? 'Primary' : 'Secondary', extra(n)),
    ),
  );

const runs = (c: ProtocolContext, where: Record<string, string | null>) =>
  perNode(c, (n) => (where[n] ? [{ name: c.instance, state: where[n] }] : []));

const inState =
  (...states: string[]) =>
  (s: AnyMachineSnapshot) =>
    states.some((x) => s.matches(x as never));
const rejoinLooking = (s: AnyMachineSnapshot) =>
  s.machine.id === 'rejoin' && s.matches('lookingAtDisks' as never);
/** A rejoin of the node that holds the third copy. */
const rejoiningThirdCopy = (s: AnyMachineSnapshot) =>
  s.machine.id === 'rejoin' &&
  (s.context as ProtocolContext).target === ((s.context as ProtocolContext).config?.thirdCopy ?? null);
/** The config read names a third copy: its worlds start after a failover, never healthy. */
const threeCopies = (s: AnyMachineSnapshot) =>
  ((s.context as ProtocolContext).config?.thirdCopy ?? null) !== null;
const not =
  (f: (s: AnyMachineSnapshot) => boolean) =>
  (s: AnyMachineSnapshot): boolean =>
    !f(s);
const locatingInCleanup = inState('locating');
const abortFailed = (s: AnyMachineSnapshot) =>
  (s.context as ProtocolContext).result.warnings.some((w) =>
    w.startsWith('Aborting migration failed on target'),
  );

/** What the last look found on the target. */
const seen = (s: AnyMachineSnapshot, state: string) => {
  const c = s.context as ProtocolContext;
  return c.found.locations?.[c.target]?.some((i) => i.state === state) === true;
};

const seenOnSource = (s: AnyMachineSnapshot, state: string) => {
  const c = s.context as ProtocolContext;
  return c.found.locations?.[c.source]?.some((i) => i.state === state) === true;
};

const syncAt = (done: boolean, at: number) => (c: ProtocolContext) => ({
  nodes: perNode(c, () => (done ? { done: true, percent: null } : { done: false, percent: 50 })),
  at,
});

const memory = (status: string, at: number) => () => ({
  status,
  transferredMiB: status === 'completed' ? 100 : 10,
  totalMiB: 100,
  remainingMiB: status === 'completed' ? 0 : 90,
  at,
});

/** Far past any deadline: the watch's next look finds the wait overdue. */
const LATE = 1e12;

const convergesAlone = (s: AnyMachineSnapshot) => {
  const c = s.context as ProtocolContext;
  return c.handover.converge.pass === null || c.handover.converge.postcopyStarted;
};

/** Giving up: every machine's survey reads each node for the record, whatever it answers. */
const surveying = inState('surveying');
const failingOver = (s: AnyMachineSnapshot) => s.machine.id === 'failover' && !surveying(s);
const rejoining = (s: AnyMachineSnapshot) => s.machine.id === 'rejoin' && !surveying(s);
/** What the failover's probe of the source answered. */
const probed = (s: AnyMachineSnapshot, error: string) =>
  (s.context as ProtocolContext).found.probe?.error === error;

/** A node's own view of its disks when its peer is gone (or, with `extra`, otherwise). */
const aloneDisks = (c: ProtocolContext, role: 'Primary' | 'Secondary', extra: Partial<DiskStatus>) =>
  c.disks.map((_, i) =>
    disk(twoDisks[i] ?? twoDisks[0]!, role, {
      connection: 'Connecting',
      replication: 'Off',
      peerRole: 'Unknown',
      peerDiskState: 'DUnknown',
      ...extra,
    }),
  );
const targetDisks = (c: ProtocolContext, extra: Partial<DiskStatus>) => aloneDisks(c, 'Secondary', extra);

const checkingPeer = inState('checkingPrereqs.checkingPeer');
const checkingQuorum = inState('checkingPrereqs.checkingQuorum');
/** The config read gives a self-fence bound (the 'quorate' answer). */
const quorate = (s: AnyMachineSnapshot) =>
  ((s.context as ProtocolContext).config?.selfFenceMs ?? null) !== null;
const SELF_FENCE_MS = 30_000;
/** The demo's instances on DRBD 9 resources with quorum (a tiebreaker) and a self-fence bound. */
const QUORATE = (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, quorum: true, selfFenceMs: SELF_FENCE_MS }));

/** The demo's instances on DRBD 9 resources without quorum (a replace's make-before-break). */
const DRBD9 = (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, drbd: '9' as const }));

/** The node the tiebreaker variant's config names as its resources' tiebreaker (diskless). */
const TIEBREAKER = 'node-d';
/** The demo's instances on DRBD 9 resources with quorum and a tiebreaker the config names. */
const TIEBROKEN = DRBD9.map((i) => ({ ...i, quorum: true, tiebreaker: TIEBREAKER }));
const checkingTiebreaker = inState('checkingPrereqs.checkingTiebreaker');
/** A replace's read of the third copy before anything is made, and its check of the new link after the resync. */
const checkingOtherCopy = inState('checkingPrereqs.checkingOtherCopy');
const checkingOtherCopyLink = inState('checkingOtherCopyLink');
/** The reads of a replace's primary: not the tiebreaker's nor the third copy's. */
const readingReplacePrimary = (s: AnyMachineSnapshot) =>
  replacing(s) && !surveying(s) && !checkingTiebreaker(s) && !checkingOtherCopy(s);

/** The demo's instances with a third diskful copy on node-c (DRBD 9). */
const THIRD_COPY = 'node-c';
const THREE_COPIES = DRBD9.map((i) => ({ ...i, thirdCopy: THIRD_COPY }));
/** A replace's three copies: node-c is its new secondary, so the third is on node-d. */
const REPLACED_THIRD = 'node-d';
const THIRD_ON_D = DRBD9.map((i) => ({ ...i, thirdCopy: REPLACED_THIRD }));

/** The read-back after a failed commit write. */
const confirmingCommit = inState('committing.confirming');

export const VARIANTS: Partial<Record<EffectName, Variant[]>> = {
  getInstance: [
    { name: 'drbd', output: config, applies: not(confirmingCommit) },
    {
      // The write did not take: the config still names the source.
      name: 'notTaken',
      output: (c) => ({ ...c.config, primaryNode: c.source, secondaryNode: c.target }),
      applies: (s) => confirmingCommit(s) && !replacing(s),
    },
    {
      // The write took, only its answer was lost.
      name: 'taken',
      output: (c) => ({ ...c.config, primaryNode: c.target, secondaryNode: c.source }),
      applies: (s) => confirmingCommit(s) && !replacing(s),
      perturb: 'commitLands',
    },
    {
      // A replace: the write did not take; the config still names the old secondary.
      name: 'secondaryNotTaken',
      output: (c) => ({ ...c.config, secondaryNode: c.replace.former, formerSecondary: null }),
      applies: (s) => confirmingCommit(s) && movesSecondary(s),
    },
    {
      // A replace: the write took, only its answer was lost.
      name: 'secondaryTaken',
      output: (c) => ({ ...c.config, secondaryNode: c.target, formerSecondary: c.replace.former }),
      applies: (s) => confirmingCommit(s) && movesSecondary(s),
      perturb: 'replaceCommitLands',
    },
    {
      // A replace of the third copy: the write did not take; the config still names the old third.
      name: 'thirdCopyNotTaken',
      output: (c) => ({ ...c.config, thirdCopy: c.replace.former, formerThirdCopy: null }),
      applies: (s) => confirmingCommit(s) && movesThird(s),
    },
    {
      // A replace of the third copy: the write took, only its answer was lost.
      name: 'thirdCopyTaken',
      output: (c) => ({ ...c.config, thirdCopy: c.target, formerThirdCopy: c.replace.former }),
      applies: (s) => confirmingCommit(s) && movesThird(s),
      perturb: 'thirdCopyCommitLands',
    },
    {
      // A replace's repair: one passed its commit (node-c named, node-b's copies still to remove).
      name: 'replaceCommitted',
      output: (c) => ({ ...config(c), secondaryNode: 'node-c', formerSecondary: 'node-b' }),
      applies: (s) =>
        movesSecondary(s) && (s.context as ProtocolContext).request.cleanup && !confirmingCommit(s),
      recipe: { start: 'replaceCommitted' },
    },
    {
      // A replace on DRBD 9: the new node joins as a further peer before the old one leaves.
      name: 'drbd9',
      output: (c) => ({ ...config(c), drbdVersion: '9' }),
      applies: (s) => movesSecondary(s) && !confirmingCommit(s),
      recipe: { spec: { instances: DRBD9 } },
    },
    {
      // The same replace's repair after its DRBD 9 commit: node-c UpToDate and named, node-b still a peer.
      name: 'replaceCommitted9',
      output: (c) => ({ ...config(c), drbdVersion: '9', secondaryNode: 'node-c', formerSecondary: 'node-b' }),
      applies: (s) =>
        movesSecondary(s) && (s.context as ProtocolContext).request.cleanup && !confirmingCommit(s),
      recipe: { spec: { instances: DRBD9 }, start: 'replaceCommitted' },
    },
    {
      // A replace on DRBD 9 with quorum whose tiebreaker (node-d) the config names: the new node
      // joins it too, the old one leaves it.
      name: 'drbd9Tiebreaker',
      output: (c) => ({ ...config(c), drbdVersion: '9', tiebreaker: TIEBREAKER }),
      applies: (s) => movesSecondary(s) && !confirmingCommit(s),
      recipe: { spec: { nodes: { ...THREE_NODES, [TIEBREAKER]: {} }, instances: TIEBROKEN } },
    },
    {
      // Its repair after the commit: node-c named and joined to both, node-b still their peer.
      name: 'replaceCommitted9Tiebreaker',
      output: (c) => ({
        ...config(c),
        drbdVersion: '9',
        tiebreaker: TIEBREAKER,
        secondaryNode: 'node-c',
        formerSecondary: 'node-b',
      }),
      applies: (s) =>
        movesSecondary(s) && (s.context as ProtocolContext).request.cleanup && !confirmingCommit(s),
      recipe: {
        spec: { nodes: { ...THREE_NODES, [TIEBREAKER]: {} }, instances: TIEBROKEN },
        start: 'replaceCommitted',
      },
    },
    {
      // A replace of a three-copy instance's secondary (DRBD 9): the new node, node-c, joins the
      // third copy (node-d) too and is in sync with it before the commit; the old one leaves it after.
      name: 'drbd9ThirdCopy',
      output: (c) => ({ ...config(c), drbdVersion: '9', thirdCopy: REPLACED_THIRD }),
      applies: (s) => replacing(s) && !confirmingCommit(s),
      recipe: { spec: { nodes: { ...THREE_NODES, [REPLACED_THIRD]: {} }, instances: THIRD_ON_D } },
    },
    {
      // Its repair after the commit: node-c named and joined to both copies, node-b still their peer.
      name: 'replaceCommitted9ThirdCopy',
      output: (c) => ({
        ...config(c),
        drbdVersion: '9',
        thirdCopy: REPLACED_THIRD,
        secondaryNode: 'node-c',
        formerSecondary: 'node-b',
      }),
      applies: (s) =>
        movesSecondary(s) && (s.context as ProtocolContext).request.cleanup && !confirmingCommit(s),
      recipe: {
        spec: { nodes: { ...THREE_NODES, [REPLACED_THIRD]: {} }, instances: THIRD_ON_D },
        start: 'replaceCommitted',
      },
    },
    {
      // replace-third-copy's repair after its commit: node-c named the third copy and joined to both,
      // node-d (the old third) still their peer.
      name: 'thirdCopyMoved',
      output: (c) => ({
        ...config(c),
        drbdVersion: '9',
        thirdCopy: 'node-c',
        formerThirdCopy: REPLACED_THIRD,
      }),
      applies: (s) => movesThird(s) && (s.context as ProtocolContext).request.cleanup && !confirmingCommit(s),
      recipe: {
        spec: { nodes: { ...THREE_NODES, [REPLACED_THIRD]: {} }, instances: THIRD_ON_D },
        start: 'replaceCommitted',
      },
    },
    {
      // Both: a third copy (node-e) and a tiebreaker (node-d); the new node joins, the old leaves, each.
      name: 'drbd9ThirdCopyTiebreaker',
      output: (c) => ({ ...config(c), drbdVersion: '9', thirdCopy: 'node-e', tiebreaker: TIEBREAKER }),
      applies: (s) => replacing(s) && !confirmingCommit(s),
      recipe: {
        spec: {
          nodes: { ...THREE_NODES, [TIEBREAKER]: {}, 'node-e': {} },
          instances: TIEBROKEN.map((i) => ({ ...i, thirdCopy: 'node-e' })),
        },
      },
    },
    {
      // Three copies (DRBD 9): a cleanup looks at the third, node-c, before it locates the instance.
      name: 'thirdCopy',
      output: (c) => ({ ...config(c), drbdVersion: '9', thirdCopy: THIRD_COPY }),
      applies: (s) => s.machine.id === 'cleanup' && !confirmingCommit(s),
      recipe: { spec: { nodes: THREE_NODES, instances: THREE_COPIES } },
    },
    {
      // Three copies, the third copy's node back after a power loss: it is the one rejoined.
      name: 'thirdCopyReturns',
      output: (c) => ({ ...config(c), drbdVersion: '9', thirdCopy: THIRD_COPY }),
      applies: (s) =>
        s.machine.id === 'rejoin' && (s.context as ProtocolContext).request.targetNode === THIRD_COPY,
      recipe: { spec: { nodes: THREE_NODES, instances: THREE_COPIES }, start: 'thirdCopyRestarted' },
    },
    {
      // Three copies after a failover: the rejoin reconnects the returning node to the third too.
      name: 'thirdCopyRejoin',
      output: (c) => ({ ...config(c), drbdVersion: '9', thirdCopy: THIRD_COPY }),
      applies: (s) => s.machine.id === 'rejoin' && (s.context as ProtocolContext).request.targetNode === null,
      recipe: { spec: { nodes: THREE_NODES, instances: THREE_COPIES }, start: 'afterFailover' },
    },
    {
      name: 'blockdev',
      applies: not(confirmingCommit),
      output: (c) => ({ ...config(c), diskTemplate: 'blockdev' }),
      recipe: {
        spec: {
          instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, diskTemplate: 'blockdev' as const })),
        },
      },
    },
    {
      // Failover on DRBD 9 with quorum and a self-fence bound: the target's kernel can prove a
      // silent source cannot write.
      name: 'quorate',
      applies: (s) => failingOver(s) && !confirmingCommit(s),
      output: (c) => ({ ...config(c), selfFenceMs: SELF_FENCE_MS }),
      recipe: { spec: { instances: QUORATE } },
    },
    {
      // Failover: stopped by the operator; it stays stopped on its new primary.
      name: 'stoppedByAdmin',
      applies: (s) => failingOver(s) && !confirmingCommit(s),
      output: (c) => ({ ...config(c), adminState: 'down' }),
      recipe: {
        spec: { instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, adminState: 'down' as const })) },
      },
    },
    {
      name: 'plain',
      applies: not(confirmingCommit),
      output: (c) => ({ ...config(c), diskTemplate: 'plain', secondaryNode: null }),
      recipe: {
        spec: { instances: [{ name: 'web1', primary: 'node-a', secondary: null, diskTemplate: 'plain' }] },
      },
    },
  ],
  instanceList: [
    // Not while aborting a copy the cleanup found on both nodes: nothing has been stopped yet there.
    {
      name: 'onSource',
      output: (c) => runs(c, { [c.source]: 'running' }),
      applies: not(inState('abortingFound')),
    },
    {
      name: 'nowhere',
      output: (c) => runs(c, {}),
      applies: (s) =>
        inState('checkingPrereqs.locating')(s) ||
        (locatingInCleanup(s) && !(s.context as ProtocolContext).repair.abortTried),
      recipe: {
        spec: { instances: [{ name: 'web1', primary: 'node-a', secondary: 'node-b', running: false }] },
      },
    },
    {
      name: 'onBothMidCopy',
      output: (c) => runs(c, { [c.source]: 'running', [c.target]: 'inmigrate' }),
      applies: (s) =>
        (inState('abortingFound')(s) && seen(s, 'inmigrate')) ||
        (locatingInCleanup(s) && (!(s.context as ProtocolContext).repair.abortTried || abortFailed(s))),
      recipe: { start: 'crashMidCopy' },
    },
    {
      // The copy went on to complete between the failed poll and this look.
      name: 'handoverCompleted',
      output: (c) => runs(c, { [c.source]: 'postmigrate', [c.target]: 'running' }),
      applies: (s) =>
        inState('aborting.checking')(s) &&
        (s.context as ProtocolContext).handover.memory?.status === 'active',
      perturb: 'copyCompletes',
    },
    {
      // A migration dropped after the copy completed, before finalizing.
      name: 'handoverUnfinalized',
      output: (c) => runs(c, { [c.source]: 'postmigrate', [c.target]: 'running' }),
      applies: (s) =>
        inState('abortingFound.checking')(s) ||
        (locatingInCleanup(s) && !(s.context as ProtocolContext).repair.abortTried),
      recipe: { start: 'crashAfterCopy' },
    },
    {
      // The target would not stop, and its copy went on to complete meanwhile.
      name: 'completedMeanwhile',
      output: (c) => runs(c, { [c.source]: 'postmigrate', [c.target]: 'running' }),
      applies: (s) => {
        const c = s.context as ProtocolContext;
        const copying =
          c.handover.memory?.status === 'active' ||
          (s.machine.id === 'cleanup' &&
            c.found.locations?.[c.target]?.some((i) => i.state === 'inmigrate') === true);
        return inState('aborting.rechecking', 'abortingFound.rechecking')(s) && copying;
      },
      perturb: 'copyCompletes',
    },
    {
      // A copy completed, then the target died before anyone finalized it: only the husk is left.
      name: 'leftoverOnly',
      output: (c) => runs(c, { [c.source]: 'postmigrate' }),
      applies: (s) => locatingInCleanup(s) && !(s.context as ProtocolContext).repair.abortTried,
      recipe: { start: 'crashAfterCopy' },
      perturb: 'targetDies',
    },
    {
      // An aborted copy left the source paused (its resume failed), and nothing on the target.
      name: 'pausedOnSource',
      output: (c) => runs(c, { [c.source]: 'paused' }),
      applies: (s) =>
        inState('confirmingRevert')(s) ||
        locatingInCleanup(s) ||
        (inState('abortingFound')(s) && seenOnSource(s, 'paused')),
      perturb: 'sourcePauses',
    },
    {
      name: 'onTarget',
      output: (c) => runs(c, { [c.target]: 'running' }),
      applies: (s) => locatingInCleanup(s) && !(s.context as ProtocolContext).repair.abortTried,
      recipe: { start: 'crashBeforeCommit' },
    },
  ],
  instanceInfo: [{ name: 'running', output: () => ({ running: true, state: 'running', memoryMiB: 2048 }) }],
  nodeInfo: [
    {
      name: 'roomy',
      output: (c) => perNode(c, () => ({ memoryFreeMiB: 16384, hypervisorVersion: '9.2.0' })),
    },
    {
      name: 'tight',
      output: (c) => ({
        ...perNode(c, () => ({ memoryFreeMiB: 16384, hypervisorVersion: '9.2.0' })),
        [c.target]: { memoryFreeMiB: 1536, hypervisorVersion: '9.2.0' },
      }),
      applies: not(replacing),
      recipe: { spec: { nodes: { 'node-a': {}, 'node-b': { memoryMiB: 1536 } } } },
    },
    {
      name: 'full',
      output: (c) => ({
        ...perNode(c, () => ({ memoryFreeMiB: 16384, hypervisorVersion: '9.2.0' })),
        [c.target]: { memoryFreeMiB: 512, hypervisorVersion: '9.2.0' },
      }),
      applies: not(replacing),
      recipe: { spec: { nodes: { 'node-a': {}, 'node-b': { memoryMiB: 512 } } } },
    },
    {
      // A replace: the new node could not run the instance if the primary failed (N+1).
      name: 'tooSmallForNPlusOne',
      output: (c) => ({ [c.target]: { memoryFreeMiB: 1024, hypervisorVersion: '9.2.0' } }),
      applies: replacing,
      recipe: { spec: { nodes: { ...THREE_NODES, 'node-c': { memoryMiB: 1024 } } } },
    },
  ],
  takeoverLoad: [{ name: 'none', output: () => ({ instances: [], memoryMiB: 0 }) }],
  listNodes: [
    {
      name: 'known',
      output: () => Object.keys(THREE_NODES).map((name) => ({ name, drained: false })),
    },
    {
      name: 'drained',
      output: () => Object.keys(THREE_NODES).map((name) => ({ name, drained: name === 'node-c' })),
      recipe: { spec: { nodes: { ...THREE_NODES, 'node-c': { drained: true } } } },
    },
  ],
  nodeStorage: [
    {
      name: 'roomy',
      output: () => ({ volumeGroup: 'xenvg', sizeMiB: 1 << 20, freeMiB: 1 << 20, volumes: [], minors: [] }),
    },
    {
      name: 'full',
      output: () => ({ volumeGroup: 'xenvg', sizeMiB: 8192, freeMiB: 8192, volumes: [], minors: [] }),
      recipe: { spec: { nodes: { ...THREE_NODES, 'node-c': { diskMiB: 8192 } } } },
    },
  ],
  diskStatus: [
    {
      name: 'consistent',
      output: (c) => disks(c),
      applies: (s) => !inState('dualMaster.verifying')(s) && !rejoinLooking(s) && !checkingOtherCopyLink(s),
    },
    {
      // A replace's new copy and the third, each UpToDate and connected to the other.
      name: 'thirdCopyInSync',
      output: (c) => {
        const third = otherCopyOf(c);
        return { [third]: disks(c)[c.target] ?? [], [c.target]: disks(c)[c.target] ?? [] };
      },
      applies: checkingOtherCopyLink,
    },
    {
      // The new copy's link to the third dropped after the wait: not in sync, the old copies stay.
      name: 'thirdCopyApart',
      output: (c) => {
        const apart = disks(c, () => ({
          connection: 'Connecting',
          replication: 'Off',
          peerDiskState: 'DUnknown',
        }));
        const third = otherCopyOf(c);
        return { [third]: apart[c.target] ?? [], [c.target]: apart[c.target] ?? [] };
      },
      applies: checkingOtherCopyLink,
      perturb: 'linkDown',
    },
    {
      // Rejoin: the node is already the secondary, connected and in sync (a healthy cluster).
      name: 'alreadyRejoined',
      output: (c) => disks(c),
      applies: (s) => rejoinLooking(s) && !threeCopies(s),
      recipe: { start: 'healthy' },
    },
    {
      // Rejoin: the returning node and the survivor apart, as a node that died leaves them.
      name: 'apart',
      output: (c) =>
        disks(c, () => ({ connection: 'StandAlone', replication: 'Off', peerDiskState: 'DUnknown' })),
      applies: rejoinLooking,
    },
    {
      name: 'readyForDualPrimary',
      output: (c) => disks(c, () => ({ allowTwoPrimaries: true })),
      applies: inState('dualMaster.verifying'),
    },
    {
      name: 'degraded',
      output: (c) =>
        disks(c, (n) => (n === c.target ? { diskState: 'Inconsistent', replication: 'SyncTarget' } : {})),
      applies: inState('checkingPrereqs.checkingDisks'),
      recipe: {
        // The demo's instance, its secondary still catching up.
        spec: { instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, outOfSyncMiB: 100 })) },
      },
    },
    {
      name: 'linkDown',
      output: (c) =>
        disks(c, () => ({
          connection: 'Connecting',
          replication: 'Off',
          peerDiskState: 'DUnknown',
          allowTwoPrimaries: true,
        })),
      // Migration: the link drops before promotion; rejoin: before the read-back.
      // (Not a third copy's rejoin: the perturbation cuts the pair's link, not the one it reads.)
      applies: (s) =>
        inState('dualMaster.verifying')(s) ||
        (s.machine.id === 'rejoin' && inState('verifying')(s) && !rejoiningThirdCopy(s)),
      perturb: 'linkDown',
    },
    {
      // Replace: the wait ended, but the new copy's link is down (on real 8.4 a node whose DRBD
      // resync handler refused dropped it): not a copy in sync, the old copies stay.
      name: 'newCopyApart',
      output: (c) =>
        disks(c, (n) => ({
          connection: 'Connecting',
          replication: 'Off',
          ...(n === c.source ? { peerDiskState: 'Inconsistent' } : { diskState: 'Inconsistent' }),
        })),
      applies: inState('checkingNewCopy'),
      perturb: 'linkDown',
    },
  ],
  probeNode: [
    {
      // The survey's look: the node answers (the world says how; only the record depends on it).
      name: 'surveyed',
      output: () => ({ reachable: true, error: null, state: null }),
      applies: surveying,
    },
    {
      // Failover: the source answers and runs the instance (the default world).
      name: 'runs',
      output: () => ({ reachable: true, error: null, state: 'running' }),
      applies: failingOver,
    },
    {
      // Failover: the source answers, the instance is stopped there (the config may still want it up).
      name: 'stoppedThere',
      output: () => ({ reachable: true, error: null, state: null }),
      applies: failingOver,
      // Instances of recipes merge by name: an admin state a config answer set before stays.
      recipe: { spec: { instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, running: false })) } },
    },
    {
      // Failover: the source lost power.
      name: 'down',
      output: () => ({ reachable: false, error: 'down', state: null }),
      applies: failingOver,
      perturb: 'sourceDies',
    },
    {
      // Failover, DRBD 9 with quorum: the source is cut off from everything and runs on, unable to
      // write; its handler stops the guest within the config's bound.
      name: 'isolated',
      output: () => ({ reachable: false, error: 'isolated', state: null }),
      applies: (s) => failingOver(s) && quorate(s),
      perturb: 'sourceIsolated',
    },
    {
      // Failover, DRBD 9 with quorum: the source is cut from the target only (management and their
      // link); the tiebreaker still reaches it, so it writes on with quorum.
      name: 'cutFromTarget',
      output: () => ({ reachable: false, error: 'cut from target', state: null }),
      applies: (s) => failingOver(s) && quorate(s),
      perturb: 'sourceCutFromTarget',
    },
    {
      // Failover: the source's management network is cut; it runs on, DRBD still connected.
      name: 'cutOff',
      output: () => ({ reachable: false, error: 'cut off', state: null }),
      applies: failingOver,
      perturb: 'sourceUnreachable',
    },
    {
      // A replace's undo: the old secondary answers, and is reconnected.
      name: 'formerAnswers',
      output: () => ({ reachable: true, error: null, state: null }),
      applies: (s) => replacing(s) && !surveying(s),
    },
    {
      // A replace's undo: the old secondary lost power; the primary stays without its peer.
      name: 'formerDown',
      output: () => ({ reachable: false, error: 'down', state: null }),
      applies: (s) => replacing(s) && !surveying(s),
      perturb: 'secondaryDies',
    },
    {
      // Rejoin: the returning node is up, nothing of the instance on it.
      name: 'clean',
      output: () => ({ reachable: true, error: null, state: null }),
      applies: rejoining,
    },
    {
      // Rejoin: a paused copy was started on the returning node.
      name: 'staleCopy',
      output: () => ({ reachable: true, error: null, state: 'paused' }),
      // The perturbations put it on the secondary, so only a rejoin of the secondary meets them.
      applies: (s) => rejoining(s) && !rejoiningThirdCopy(s),
      perturb: 'staleCopy',
    },
    {
      // Rejoin: the node to take back is not up.
      name: 'notBack',
      output: () => ({ reachable: false, error: 'down', state: null }),
      applies: (s) => rejoining(s) && !rejoiningThirdCopy(s),
      perturb: 'secondaryDies',
    },
  ],
  nodeDiskStatus: [
    { name: 'surveyed', output: () => [], applies: surveying },
    {
      // A cleanup whose third copy did not answer: the source's side towards it, nothing of a migration.
      name: 'sourceTowardsThirdPlain',
      output: (c) => disks(c)[c.source],
      applies: inState('readingSourceTowardsThird'),
    },
    {
      // A replace: the primary's disks, UpToDate and connected to the secondary.
      name: 'primaryHealthy',
      output: (c) => disks(c)[c.source],
      applies: readingReplacePrimary,
    },
    {
      // A third copy's rejoin: the secondary is in sync with the primary (a healthy cluster whose
      // third copy is rejoined), so the third reconnects to it too.
      name: 'secondaryInSync',
      output: (c) => disks(c, () => ({ role: 'Secondary' }))[c.source],
      applies: inState('readingSecondary'),
    },
    {
      // The secondary is not (after a failover it returned and was not rejoined yet): left alone.
      name: 'secondaryApart',
      output: (c) =>
        disks(c, () => ({
          role: 'Secondary',
          connection: 'StandAlone',
          replication: 'Off',
          peerDiskState: 'DUnknown',
        }))[c.source],
      applies: inState('readingSecondary'),
      perturb: 'linkDown',
    },
    {
      // A replace's third copy: UpToDate, connected to the primary.
      name: 'thirdCopyReady',
      output: (c) => disks(c, () => ({ role: 'Secondary' }))[c.source],
      applies: checkingOtherCopy,
    },
    {
      // The third copy catching up with the primary: refused, nothing made.
      name: 'thirdCopyBehind',
      output: (c) =>
        disks(c, () => ({ role: 'Secondary', diskState: 'Inconsistent', replication: 'SyncTarget' }))[
          c.source
        ],
      applies: (s) => checkingOtherCopy(s) && !movesThird(s),
      perturb: 'thirdCopyBehind',
    },
    {
      // replace-third-copy: the secondary catching up with the primary: refused, nothing made.
      name: 'secondaryBehind',
      output: (c) =>
        disks(c, () => ({ role: 'Secondary', diskState: 'Inconsistent', replication: 'SyncTarget' }))[
          c.source
        ],
      applies: (s) => checkingOtherCopy(s) && movesThird(s),
      perturb: 'secondaryBehind',
    },
    {
      // A replace's tiebreaker: diskless, connected to the primary.
      name: 'tiebreakerReady',
      output: (c) =>
        disks(c, () => ({ role: 'Secondary', diskState: 'Diskless', quorum: 'held', mayPromote: false }))[
          c.source
        ],
      applies: checkingTiebreaker,
    },
    {
      // Its links to the pair are down (it answers its management network): refused.
      name: 'tiebreakerApart',
      output: (c) => aloneDisks(c, 'Secondary', { diskState: 'Diskless', quorum: 'held', mayPromote: false }),
      applies: checkingTiebreaker,
      perturb: 'tiebreakerCut',
    },
    {
      // A replace of a secondary that lost power: the primary alone, UpToDate.
      name: 'secondaryGone',
      output: (c) => aloneDisks(c, 'Primary', {}),
      applies: readingReplacePrimary,
      perturb: 'secondaryDies',
    },
    {
      // A replace from a primary still catching up: refused.
      name: 'primaryDegraded',
      output: (c) => disks(c, () => ({ diskState: 'Inconsistent', replication: 'SyncTarget' }))[c.source],
      applies: readingReplacePrimary,
      perturb: 'primaryDegrades',
    },
    {
      name: 'peerLost',
      output: (c) => targetDisks(c, {}),
      applies: (s) => probed(s, 'down') && checkingPeer(s),
    },
    {
      // The same with quorum: the target holds it, and may promote.
      name: 'peerLostQuorate',
      output: (c) => targetDisks(c, { quorum: 'held', mayPromote: true }),
      applies: (s) => probed(s, 'down') && quorate(s) && !surveying(s),
    },
    {
      // The source cut off from everything: the target holds quorum without it, and may promote.
      name: 'quorumHeld',
      output: (c) => targetDisks(c, { quorum: 'held', mayPromote: true }),
      applies: (s) => probed(s, 'isolated') && !surveying(s),
    },
    {
      // The source cut from the target only: the target holds quorum through the tiebreaker, which
      // still reaches the source, so DRBD says it may not promote.
      name: 'mayNotPromote',
      output: (c) => targetDisks(c, { quorum: 'held', mayPromote: false }),
      applies: (s) => checkingQuorum(s) && probed(s, 'cut from target'),
    },
    {
      // Both cut off (the tiebreaker reaches neither): the target lost quorum too.
      name: 'targetLostQuorum',
      output: (c) => targetDisks(c, { quorum: 'lost', mayPromote: false }),
      applies: (s) => checkingQuorum(s) && probed(s, 'isolated'),
      perturb: 'targetIsolated',
    },
    {
      // A self-fence bound in the config, but resources without quorum: silence proves nothing.
      name: 'noQuorum',
      output: (c) => targetDisks(c, {}),
      applies: (s) => checkingQuorum(s) && (probed(s, 'down') || probed(s, 'isolated')),
      recipe: { spec: { instances: QUORATE.map((i) => ({ ...i, quorum: false })) } },
    },
    {
      // The target was still catching up when its peer died.
      name: 'stale',
      output: (c) => targetDisks(c, { diskState: 'Inconsistent' }),
      applies: (s) => probed(s, 'down') && checkingPeer(s),
      recipe: { spec: { instances: (DEMO_SPEC.instances ?? []).map((i) => ({ ...i, outOfSyncMiB: 100 })) } },
    },
    {
      name: 'stillConnected',
      output: (c) =>
        targetDisks(c, { connection: 'Connected', replication: 'Established', peerDiskState: 'UpToDate' }),
      applies: (s) => probed(s, 'cut off') && !surveying(s),
    },
  ],
  migrationInfo: [{ name: 'info', output: () => ({ memoryMiB: 2048 }) }],
  measureDirtyRate: [
    // The demo's guests are idle.
    { name: 'calm', output: () => ({ dirtyMiBps: 0, calcSeconds: 1, mode: 'page-sampling' }) },
    {
      // It rewrites all of its memory faster than the copy sends it: no stage but the last can help.
      name: 'hopeless',
      output: () => ({ dirtyMiBps: 2048, calcSeconds: 1, mode: 'page-sampling' }),
      recipe: {
        spec: {
          instances: (DEMO_SPEC.instances ?? []).map((i) => ({
            ...i,
            dirtyMiBps: 64 * 1024,
            workingSetMiB: i.memoryMiB ?? 2048,
          })),
        },
      },
    },
  ],
  waitSync: [
    { name: 'synced', output: syncAt(true, 1_000) },
    // A burst of writes to catch up on, so that even a wait with nothing pending sees progress.
    {
      name: 'progress',
      output: syncAt(false, 1_000),
      applies: (s) => !inState('resyncingThird', 'resyncingWithOtherCopy')(s) && !rejoiningThirdCopy(s),
      perturb: 'resyncPending',
    },
    // A rejoin's (or a replace's) wait on the third copy's link: the third has writes to catch up on there.
    {
      name: 'thirdProgress',
      output: syncAt(false, 1_000),
      applies: (s) => inState('resyncingThird', 'resyncingWithOtherCopy')(s) || rejoiningThirdCopy(s),
      perturb: 'thirdCopyBehind',
    },
    {
      name: 'overdue',
      output: syncAt(false, LATE),
      applies: (s) => (s.context as ProtocolContext).watch !== null,
      perturb: 'resyncStall',
      recipe: { limits: { syncNoProgressMs: 60_000 } },
    },
  ],
  migrationStatus: [
    { name: 'copying', output: memory('active', 1_000) },
    // A copy seen not to converge completes only through postcopy (the busy guest outruns the rest).
    { name: 'completed', output: memory('completed', 2_000), applies: convergesAlone },
    { name: 'failed', output: memory('failed', 2_000), perturb: 'targetDies' },
    {
      // The hypervisor's own switch (Ganeti's KVM code switches after two passes by itself).
      name: 'postcopy',
      output: memory('postcopy-active', 2_000),
      applies: (s) => (s.context as ProtocolContext).handover.converge.pass === null,
      recipe: { spec: { settings: { postcopy: true } } },
    },
    {
      name: 'postcopyBroken',
      output: memory('postcopy-paused', 3_000),
      applies: (s) => (s.context as ProtocolContext).handover.pastPointOfNoReturn,
      perturb: 'postcopyBreaks',
    },
    {
      // A new dirty pass as big as the smallest so far: the copy does not converge.
      name: 'stalledPass',
      output: (c) => ({
        status: 'active',
        transferredMiB: 10 * ((c.handover.converge.pass ?? 1) + 1),
        totalMiB: 100,
        remainingMiB: c.handover.converge.smallestPassMiB ?? 50,
        passes: (c.handover.converge.pass ?? 1) + 1,
        throttlePercent: c.handover.converge.throttled ? 99 : null,
        at: 1_000 * ((c.handover.converge.pass ?? 1) + 1),
      }),
      // After a first reading (the first pass), as the simulated guest turns busy mid-copy.
      applies: (s) =>
        !(s.context as ProtocolContext).handover.pastPointOfNoReturn &&
        (s.context as ProtocolContext).handover.memory?.status === 'active',
      perturb: 'busyGuest',
    },
    {
      name: 'overdue',
      output: memory('active', LATE),
      // A busy guest's passes take simulated time of their own: the deadline is tried before them.
      applies: (s) =>
        (s.context as ProtocolContext).watch !== null &&
        !(s.context as ProtocolContext).handover.pastPointOfNoReturn &&
        (s.context as ProtocolContext).handover.converge.pass === null,
      recipe: { limits: { migrationTotalMs: 5_000 } },
    },
  ],
};
