import type { ProtocolOutput } from '../../machines/index.js';
import type { WorldView } from './world.js';

/** Safety rules 1 and 2 at one moment: one running copy; two Primaries only over a dual-master link. */
export function safetyProblems(view: WorldView): string[] {
  const problems: string[] = [];
  const running = Object.entries(view.instance)
    .filter(([, s]) => s === 'running')
    .map(([n]) => n);
  if (running.length > 1) problems.push(`rule 1: the instance runs on ${running.join(' and ')}`);
  const nodes = Object.keys(view.disks);
  const count = Math.max(0, ...nodes.map((n) => view.disks[n]?.length ?? 0));
  for (let i = 0; i < count; i++) {
    const sides = nodes
      .map((n) => view.disks[n]?.[i])
      .filter((d): d is NonNullable<typeof d> => d !== undefined && d.role === 'Primary');
    if (sides.length >= 2) {
      if (!sides.every((d) => d.allowTwoPrimaries && d.connection === 'Connected')) {
        problems.push(
          `rule 2: ${sides[0]?.resource} is Primary on both nodes without a dual-master connection`,
        );
      }
    }
  }
  return problems;
}

/** An instance at rest: running only where the config says, every disk single-master and in sync. */
export function restProblems(view: WorldView): string[] {
  const problems: string[] = [];
  const present = Object.entries(view.instance);
  if (present.length !== 1 || present[0]?.[0] !== view.configPrimary || present[0]?.[1] !== 'running') {
    problems.push(
      `the instance should run on ${view.configPrimary} only, but is ${present.map(([n, s]) => `${s} on ${n}`).join(', ') || 'nowhere'}`,
    );
  }
  const down = new Set(view.down ?? []);
  for (const [node, disks] of Object.entries(view.disks)) {
    // A node that is down holds nothing; its peer runs degraded until it comes back (rejoin). A node
    // outside the config's pair is judged by what it leaves behind (below).
    if (down.has(node) || (node !== view.configPrimary && node !== view.configSecondary)) continue;
    const degraded = Object.keys(view.disks).some((n) => n !== node && down.has(n));
    const role = node === view.configPrimary ? 'Primary' : 'Secondary';
    for (const d of disks) {
      if (d.role !== role) problems.push(`${d.resource} is ${d.role} on ${node}, should be ${role}`);
      if (d.allowTwoPrimaries) problems.push(`${d.resource} still allows two primaries on ${node}`);
      if (degraded) {
        if (d.diskState !== 'UpToDate') problems.push(`${d.resource} is ${d.diskState} on ${node}`);
        continue;
      }
      if (d.connection !== 'Connected' || d.replication !== 'Established') {
        problems.push(`${d.resource} is ${d.connection}/${d.replication} on ${node}`);
      }
      if (d.diskState !== 'UpToDate' || d.peerDiskState !== 'UpToDate') {
        problems.push(`${d.resource} is ${d.diskState}/${d.peerDiskState} on ${node}`);
      }
    }
  }
  problems.push(...(view.tiebreakerWiring ?? []));
  problems.push(...(view.strayPeers ?? []));
  // Copies left on nodes the instance no longer uses; a replaced secondary the config still names
  // keeps its own until it answers again (the run said so).
  for (const l of view.leftovers ?? []) {
    const node = l.split(':')[0];
    if (node !== view.configFormerSecondary && node !== view.configFormerThirdCopy)
      problems.push(`a copy is left behind on ${l}`);
  }
  // Shared storage at rest: held exclusively by the node the instance runs on, closed elsewhere.
  for (const [node, disks] of Object.entries(view.shared ?? {})) {
    const want = node === view.configPrimary ? 'exclusive' : null;
    disks.forEach((open, i) => {
      if (open !== want) {
        problems.push(`shared disk ${i} is ${open ?? 'closed'} on ${node}, should be ${want ?? 'closed'}`);
      }
    });
  }
  return problems;
}

/**
 * A node taken back: the secondary holds nothing of the instance, its DRBD disks are Secondary and
 * in sync with the primary over a single-master link, its shared disks closed. (Whether the instance
 * runs is not the rejoin's business.)
 */
export function rejoinedProblems(view: WorldView, rejoined?: string): string[] {
  const node = rejoined ?? view.configSecondary;
  if (node === null) return ['the instance has no secondary'];
  const problems: string[] = [];
  if (view.instance[node] !== undefined) problems.push(`the instance is ${view.instance[node]} on ${node}`);
  for (const d of view.disks[node] ?? []) {
    if (d.role !== 'Secondary') problems.push(`${d.resource} is ${d.role} on ${node}`);
    if (d.allowTwoPrimaries) problems.push(`${d.resource} still allows two primaries on ${node}`);
    if (d.connection !== 'Connected' || d.replication !== 'Established')
      problems.push(`${d.resource} is ${d.connection}/${d.replication} on ${node}`);
    if (d.diskState !== 'UpToDate' || d.peerDiskState !== 'UpToDate')
      problems.push(`${d.resource} is ${d.diskState}/${d.peerDiskState} on ${node}`);
  }
  (view.shared?.[node] ?? []).forEach((open, i) => {
    if (open !== null) problems.push(`shared disk ${i} is ${open} on ${node}, should be closed`);
  });
  return problems;
}

/**
 * What a run that touched nothing leaves as it found, on the nodes it could reach: one that is down or
 * cut off answers no call, and changes by itself (a quorum-lost handler stops its guest).
 */
const comparable = (v: WorldView, gone: ReadonlySet<string>) =>
  JSON.stringify({
    instance: Object.fromEntries(Object.entries(v.instance).filter(([n]) => !gone.has(n))),
    config: [v.configPrimary, v.configSecondary],
    disks: Object.fromEntries(
      Object.entries(v.disks)
        .filter(([n]) => !gone.has(n))
        .map(([n, ds]) => [
          n,
          ds.map((d) => [d.role, d.connection, d.diskState, d.peerDiskState, d.allowTwoPrimaries]),
        ]),
    ),
    shared: v.shared ?? null,
    tiebreakerWiring: v.tiebreakerWiring ?? null,
  });

/**
 * The output names the node the config names at the end, or null where it could not know (a run that
 * stopped before reading the config, or a failure that could not read it back); null never goes with
 * success.
 */
export function primaryNodeProblems(out: ProtocolOutput, after: WorldView): string[] {
  if (out.primaryNode === after.configPrimary) return [];
  if (out.primaryNode === null && !['migrated', 'cleaned', 'failedOver', 'rejoined'].includes(out.outcome))
    return [];
  return [`${out.outcome} says the config names ${out.primaryNode}, but it names ${after.configPrimary}`];
}

/** An instance the config wants down: it runs nowhere, and none of its disks is Primary. */
export function stoppedProblems(view: WorldView): string[] {
  const problems = Object.entries(view.instance).map(([node, state]) => `it is ${state} on ${node}`);
  for (const [node, disks] of Object.entries(view.disks)) {
    for (const d of disks) if (d.role === 'Primary') problems.push(`${d.resource} is Primary on ${node}`);
  }
  return problems;
}

/** Does the outcome tell the truth about the world it left? */
export function outcomeProblems(out: ProtocolOutput, before: WorldView, after: WorldView): string[] {
  return [
    ...primaryNodeProblems(out, after),
    ...outcomeStateProblems(out, before, after),
    ...redundancyProblems(out, before, after),
  ];
}

/**
 * Rule 8: a run that ends well (done, undone, refused) leaves every disk with at least as many
 * UpToDate copies as it found. A run that ends asking for a person says what is left instead.
 */
export function redundancyProblems(out: ProtocolOutput, before: WorldView, after: WorldView): string[] {
  if (out.outcome === 'needsCleanup' || out.outcome === 'failed') return [];
  // A refusal touched nothing (outcomeStateProblems holds it to that): where a node of the instance is
  // down or cut off, or their link is, what the world did meanwhile (a cut-off primary writing on
  // alone) is not the run's.
  const gone = (before.down?.length ?? 0) + (after.down?.length ?? 0) > 0 || after.linkCut === true;
  if (out.outcome === 'rejected' && gone) return [];
  if (before.copies === undefined || after.copies === undefined) return [];
  return before.copies.flatMap((n, i) => {
    const now = after.copies![i] ?? 0;
    return now < n
      ? [`rule 8: ${out.outcome} left disk ${i} with ${now} UpToDate copies, it found ${n}`]
      : [];
  });
}

/**
 * A replace moved exactly the copy it says (the secondary, or the third), to the node it says; the
 * other stays; old copies stay only where the run said it could not remove them.
 */
function replacedCopyProblems(out: ProtocolOutput, before: WorldView, after: WorldView): string[] {
  const third = out.thirdCopy !== undefined;
  const [name, was, now, said, kept, keptWas, keptNow, former] = third
    ? [
        'third copy',
        before.configThirdCopy,
        after.configThirdCopy,
        out.thirdCopy,
        'secondary',
        before.configSecondary,
        after.configSecondary,
        after.configFormerThirdCopy,
      ]
    : [
        'secondary',
        before.configSecondary,
        after.configSecondary,
        out.secondaryNode,
        'third copy',
        before.configThirdCopy,
        after.configThirdCopy,
        after.configFormerSecondary,
      ];
  return [
    ...(now !== was && now === said
      ? []
      : [`replaced but the config names ${now} as the ${name} (the output says ${said})`]),
    ...(keptNow === keptWas
      ? []
      : [`replaced the ${name}, but the ${kept} changed from ${keptWas} to ${keptNow}`]),
    ...(former == null || out.warnings.some((w) => w.includes(`${former}`) && w.includes('config'))
      ? []
      : [`replaced but the config still names ${former} as holding old copies, unsaid`]),
  ];
}

function outcomeStateProblems(out: ProtocolOutput, before: WorldView, after: WorldView): string[] {
  const at = (what: string, list: string[]) => list.map((p) => `${out.outcome} but ${p}${what}`);
  switch (out.outcome) {
    case 'migrated':
      return [
        ...at('', restProblems(after)),
        ...(after.configPrimary === before.configSecondary
          ? []
          : [`migrated but the config names ${after.configPrimary}`]),
      ];
    case 'replaced':
      return [
        ...at('', restProblems(after)),
        ...(after.configPrimary === before.configPrimary
          ? []
          : [`replaced but the primary moved to ${after.configPrimary}`]),
        ...replacedCopyProblems(out, before, after),
      ];
    case 'reverted':
      return [
        ...at('', restProblems(after)),
        ...(after.configPrimary === before.configPrimary
          ? []
          : [`reverted but the config names ${after.configPrimary}`]),
        ...(after.configSecondary === before.configSecondary
          ? []
          : [`reverted but the secondary is now ${after.configSecondary}`]),
        ...(after.configThirdCopy === before.configThirdCopy
          ? []
          : [`reverted but the third copy is now ${after.configThirdCopy}`]),
        ...(out.error ? [] : ['reverted without saying why']),
      ];
    case 'failedOver':
      return [
        // A stopped instance stays stopped on its new primary (Ganeti starts it only if it is to run).
        ...at('', after.configAdminState === 'down' ? stoppedProblems(after) : restProblems(after)),
        ...(after.configPrimary === before.configSecondary
          ? []
          : [`failedOver but the config names ${after.configPrimary}`]),
      ];
    case 'rejoined':
      return [
        ...at('', rejoinedProblems(after, out.rejoined)),
        ...(after.configPrimary === before.configPrimary
          ? []
          : [`rejoined but the config names ${after.configPrimary}`]),
      ];
    case 'cleaned':
      return [
        ...at('', restProblems(after)),
        ...(out.primaryNode === after.configPrimary
          ? []
          : [`cleaned but says ${out.primaryNode}, config names ${after.configPrimary}`]),
      ];
    case 'rejected': {
      const gone = new Set([...(before.down ?? []), ...(after.down ?? [])]);
      return comparable(before, gone) === comparable(after, gone) ? [] : ['rejected but the world changed'];
    }
    case 'needsCleanup':
    case 'failed':
      return out.error && (out.left?.length ?? 0) > 0
        ? leftProblems(out, after)
        : [`${out.outcome} without saying what happened and what is left`];
  }
}

/**
 * `left` must say what the nodes look like: where the instance is (and in which state), and each
 * disk's role and connection, as the world has them. A line that says it could not read a node is
 * not checked (it claims nothing).
 */
export function leftProblems(out: ProtocolOutput, after: WorldView): string[] {
  const problems: string[] = [];
  const said = (line: string, what: string) => problems.push(`${out.outcome} says "${line}" but ${what}`);
  const where = Object.entries(after.instance)
    .map(([n, st]) => `${n} (${st})`)
    .sort();
  for (const line of out.left ?? []) {
    const nowhere = /^instance \S+ runs nowhere$/.test(line);
    // What the nodes that answered say; a node that did not answer is not claimed of.
    const silent = /; (.*) did not answer$/.exec(line)?.[1]?.split(', ') ?? [];
    const seen = where.filter((w) => !silent.includes(w.split(' ')[0]!));
    const none = /^instance \S+ runs on none of (.*?)(; .* did not answer)?$/.exec(line);
    const on = /^instance \S+ on (.*?)(; .* did not answer)?$/.exec(line);
    if (nowhere && where.length > 0) said(line, `it is on ${where.join(', ')}`);
    if (none !== null && seen.length > 0) said(line, `it is on ${seen.join(', ')}`);
    if (on !== null) {
      const listed = on[1]!.split(', ').sort();
      if (listed.join(', ') !== seen.join(', ')) said(line, `it is on ${seen.join(', ') || 'no node'}`);
    }
    const disk = /^(\S+)(?: towards (\S+))?: (\S+) (Primary|Secondary|Unknown) (\S+) /.exec(line);
    if (disk !== null) {
      const [, node, peer, resource, role, connection] = disk;
      const view = peer === undefined ? after.disks[node!] : after.disksTowards?.[node!]?.[peer];
      const d = view?.find((x) => x.resource === resource);
      const at = peer === undefined ? node : `${node} towards ${peer}`;
      if (d === undefined) said(line, `${at} has no ${resource}`);
      else if (d.role !== role || d.connection !== connection)
        said(line, `${resource} is ${d.role} ${d.connection} on ${at}`);
      else if (line.endsWith(' allow-two-primaries') !== d.allowTwoPrimaries)
        said(line, `${resource} ${d.allowTwoPrimaries ? 'allows' : 'does not allow'} two primaries on ${at}`);
    }
  }
  return problems;
}
