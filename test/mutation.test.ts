import { describe, expect, it } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import {
  changeSecondaryMachine,
  cleanupMachine,
  failoverMachine,
  migrationMachine,
  protocol,
} from '../machines/index.js';
import { machinePaths, replayPath, simWorld } from '../src/testing/index.js';

/**
 * A deliberately broken copy of the migration machine: a failed pre-migration skips the abort and the
 * revert and reports `reverted` at once, leaving the disks dual-primary. The generated suite must
 * report the broken rule.
 */
function brokenMachine(): AnyStateMachine {
  // biome-ignore lint/suspicious/noExplicitAny: a test reaches into the config to mutate one edge
  const config = migrationMachine.config as any;
  const migrating = config.states.migrating;
  const accepting = migrating.states.accepting;
  return protocol.createMachine({
    ...config,
    states: {
      ...config.states,
      migrating: {
        ...migrating,
        states: {
          ...migrating.states,
          accepting: {
            ...accepting,
            invoke: { ...accepting.invoke, onError: { target: '#migration.reverted' } },
          },
        },
      },
    },
  });
}

describe('a broken machine is caught by the generated suite', () => {
  it('reports the revert the mutant skipped', async () => {
    const mutant = brokenMachine();
    const { paths } = machinePaths({ machine: 'migration', logic: mutant });
    const through = paths.filter(
      (p) => p.description.endsWith('acceptInstance ✗') && p.target === 'reverted',
    );
    expect(through.length).toBeGreaterThan(0);
    const problems = (
      await Promise.all(through.map((p) => replayPath(p, (r) => simWorld(r), { logic: mutant })))
    ).flatMap((r) => r.problems);
    expect(problems).toContain('reverted but web1-disk0 is Primary on node-b, should be Secondary');
    expect(problems).toContain('reverted but web1-disk0 still allows two primaries on node-a');
    // and the shipped machine, on the same paths, has none
    const sound = await Promise.all(
      machinePaths({ machine: 'migration' })
        .paths.filter((p) => p.description.endsWith('acceptInstance ✗'))
        .map((p) => replayPath(p, (r) => simWorld(r))),
    );
    expect(sound.flatMap((r) => r.problems)).toEqual([]);
  });
});

/**
 * A failover that starts the instance on the target before its commit (Ganeti commits first): when
 * the config cannot be written, the instance runs where the config does not name it. Rule 3 is
 * checked between steps, not only at the config write and the end, so the suite sees it.
 */
function startsBeforeCommit(): AnyStateMachine {
  // biome-ignore lint/suspicious/noExplicitAny: a test reaches into the config to reorder steps
  const config = failoverMachine.config as any;
  const s = config.states;
  const to = (state: { invoke: object }, target: string) => ({
    ...state,
    invoke: { ...state.invoke, onDone: target },
  });
  return protocol.createMachine({
    ...config,
    states: {
      ...s,
      deactivatingSourceDisks: to(s.deactivatingSourceDisks, 'activatingDisks'),
      startingInstance: to(s.startingInstance, 'committing'),
      committed: { ...s.committed, always: [{ target: 'failedOver' }] },
    },
  });
}

describe('a failover that starts before it commits is caught', () => {
  it('reports the start on a node the config does not name', async () => {
    const mutant = startsBeforeCommit();
    const { paths } = machinePaths({ machine: 'failover', logic: mutant });
    const failing = paths.filter((p) => p.description.includes('setPrimaryNode ✗'));
    expect(failing.length).toBeGreaterThan(0);
    const problems = (
      await Promise.all(failing.map((p) => replayPath(p, (r) => simWorld(r), { logic: mutant })))
    ).flatMap((r) => r.problems);
    expect(problems).toContainEqual(
      expect.stringMatching(
        /^rule 3: the instance was started on node-b in startingInstance, outside the handover, while the config names node-a/,
      ),
    );
    // and the shipped machine, on its own such paths, has none
    const sound = await Promise.all(
      machinePaths({ machine: 'failover' })
        .paths.filter((p) => p.description.includes('setPrimaryNode ✗'))
        .map((p) => replayPath(p, (r) => simWorld(r))),
    );
    expect(sound.flatMap((r) => r.problems)).toEqual([]);
  });
});

/**
 * A failover that takes the target's quorum for the whole proof and starts the instance at once:
 * the cut-off source cannot write, but its guest still runs until its quorum-lost handler stops it.
 */
function skipsTheSelfFence(): AnyStateMachine {
  // biome-ignore lint/suspicious/noExplicitAny: a test reaches into the config to mutate one edge
  const config = failoverMachine.config as any;
  const prereqs = config.states.checkingPrereqs;
  const waiting = prereqs.states.awaitingSelfFence;
  return protocol.createMachine({
    ...config,
    states: {
      ...config.states,
      checkingPrereqs: {
        ...prereqs,
        states: {
          ...prereqs.states,
          awaitingSelfFence: { ...waiting, invoke: undefined, always: [{ target: '#failover.committing' }] },
        },
      },
    },
  });
}

describe('a failover that does not wait out the self-fence bound is caught', () => {
  it('reports the instance running on both nodes', async () => {
    const mutant = skipsTheSelfFence();
    const { paths } = machinePaths({ machine: 'failover', logic: mutant });
    // A replay runs on past its path's end: every path through the isolated source reaches the start.
    const isolated = paths.filter((p) => p.description.includes('✓quorumHeld'));
    expect(isolated.length).toBeGreaterThan(0);
    const problems = (
      await Promise.all(isolated.map((p) => replayPath(p, (r) => simWorld(r), { logic: mutant })))
    ).flatMap((r) => r.problems);
    expect(problems).toContain('rule 1: the instance runs on node-a and node-b');
    const sound = await Promise.all(
      machinePaths({ machine: 'failover' })
        .paths.filter((p) => p.description.includes('✓quorumHeld'))
        .map((p) => replayPath(p, (r) => simWorld(r))),
    );
    expect(sound.flatMap((r) => r.problems)).toEqual([]);
  });
});

describe("a backend whose attachNet ignores discardOn is caught by the contract kit's worlds", () => {
  it('reports the rejoin that the split brain leaves StandAlone', async () => {
    const { paths } = machinePaths({ machine: 'rejoin' });
    const ignoresDiscard = (recipe: Parameters<typeof simWorld>[0]) => {
      const world = simWorld(recipe);
      const attachNet = world.effects.attachNet;
      world.effects = {
        ...world.effects,
        attachNet: ({ discardOn: _, ...input }, signal, hurry) => attachNet(input, signal, hurry),
      };
      return world;
    };
    const toEnd = paths.filter((p) => p.target === 'rejoined');
    expect(toEnd.length).toBeGreaterThan(0);
    const results = await Promise.all(toEnd.map((p) => replayPath(p, ignoresDiscard)));
    expect(results.some((r) => r.problems.length > 0)).toBe(true);
    expect(results.flatMap((r) => r.problems)).toContainEqual(
      expect.stringMatching(/split brain|never reached rejoined/),
    );
  });
});

/**
 * A cleanup that cannot list the instances and takes the config's word for where it runs: it
 * repairs the disks around the primary and says `cleaned`. In a world where the instance is stopped
 * or paused that is a lie; the generated suite replays a failed first look in those worlds too.
 */
function assumesWhereTheConfigSays(): AnyStateMachine {
  // biome-ignore lint/suspicious/noExplicitAny: a test reaches into the config to mutate one edge
  const config = cleanupMachine.config as any;
  const locating = config.states.locating;
  return protocol.createMachine({
    ...config,
    states: {
      ...config.states,
      locating: {
        ...locating,
        invoke: { ...locating.invoke, onError: { target: 'singleMaster', actions: 'demoteTarget' } },
      },
    },
  });
}

describe('a cleanup that assumes the instance runs where the config says is caught', () => {
  it('reports the cleaned outcome in a world where the instance is stopped or paused', async () => {
    const mutant = assumesWhereTheConfigSays();
    const { paths } = machinePaths({ machine: 'cleanup', logic: mutant });
    const blind = paths.filter((p) =>
      /^\[(stopped|paused on its primary)\] .*instanceList ✗/.test(p.description),
    );
    expect(blind.length).toBeGreaterThan(0);
    const problems = (
      await Promise.all(blind.map((p) => replayPath(p, (r) => simWorld(r), { logic: mutant })))
    ).flatMap((r) => r.problems);
    expect(problems).toContainEqual(
      expect.stringMatching(/^cleaned but the instance should run on node-a only, but is nowhere/),
    );
    expect(problems).toContainEqual(
      expect.stringMatching(/^cleaned but the instance should run on node-a only, but is paused on node-a/),
    );
    // and the shipped machine, on the same worlds, has none
    const sound = await Promise.all(
      machinePaths({ machine: 'cleanup' })
        .paths.filter((p) => /^\[(stopped|paused on its primary)\] /.test(p.description))
        .map((p) => replayPath(p, (r) => simWorld(r))),
    );
    expect(sound.flatMap((r) => r.problems)).toEqual([]);
  });
});

/**
 * Plausible bugs in the replace of a secondary: the old copies removed as soon as the new node is
 * attached (before its resync ends); an undo that does not wait for the old secondary to catch up;
 * on DRBD 9 a commit (and the old peer's removal) before the new peer's resync, a new peer the
 * tiebreaker never meets, an old one it keeps; an undo that forgets what it made on the new node. Each is caught by the generated suite's oracle (rule 8's count of
 * UpToDate copies, the simulator's own rule-8 check of a peer removed, the disks at rest, the
 * tiebreaker's peers, copies left behind).
 */
type Kind = 'threeCopies' | 'thirdCopyMoves';
function replaceMutant(change: (states: Record<string, { invoke?: object }>) => object): AnyStateMachine {
  // biome-ignore lint/suspicious/noExplicitAny: a test reaches into the config to mutate one edge
  const config = changeSecondaryMachine.config as any;
  return protocol.createMachine({ ...config, states: { ...config.states, ...change(config.states) } });
}
const onDone = (state: { invoke?: object } | undefined, target: string) => ({
  ...state,
  invoke: { ...state?.invoke, onDone: target },
});

describe('a broken replace of a secondary is caught by the generated suite', () => {
  // The fourth element of a mutant's entry says which paths it is replayed on: a three-copy mutant's on
  // those of a secondary's replace whose config names a third copy, a third copy's move on those of
  // replace-third-copy, the others on the rest.
  const mutants: [string, AnyStateMachine, RegExp, Kind?][] = [
    [
      'removes the old copies before the resync ends',
      replaceMutant((s) => ({ attachingNew: onDone(s.attachingNew, 'removingFormerDisks') })),
      /^(rule 8: replaced left disk 0 with 1 UpToDate copies, it found 2|replaced but web1-disk0 is .*Inconsistent)/,
    ],
    [
      'undoes without waiting for the old secondary to catch up',
      replaceMutant((s) => ({ reattachingFormer: onDone(s.reattachingFormer, 'removingNewDisks') })),
      /^rule 8: reverted left disk 0 with 1 UpToDate copies, it found 2/,
    ],
    [
      // DRBD 9: the old secondary removed as a peer while the new one is still resyncing.
      'commits on DRBD 9 as soon as the new peer is attached, before its resync',
      replaceMutant((s) => ({ joiningNew: onDone(s.joiningNew, 'committing') })),
      /^rule 8: web1-disk0: node-b, UpToDate, removed as a peer of node-a while node-c was/,
    ],
    [
      // DRBD 9 with a tiebreaker: the new copy counts in no majority; a cut-off primary then
      // leaves no node with quorum.
      'never makes the new node a peer of the tiebreaker',
      replaceMutant((s) => ({ joiningNew: onDone(s.joiningNew, 'resyncing') })),
      /^replaced but web1-disk0's tiebreaker node-d has node-a as its peers, not node-a and node-c/,
    ],
    [
      'leaves the old secondary a peer of the tiebreaker',
      replaceMutant((s) => ({ removingFormerPeer: onDone(s.removingFormerPeer, 'removingFormerDisks') })),
      /^replaced but web1-disk0's tiebreaker node-d has node-a, node-b, node-c as its peers/,
    ],
    [
      // Three copies: the old secondary removed from the third copy before the new copy is in sync
      // with it (the wait on their link skipped).
      'commits a three-copy replace before the new copy is in sync with the third',
      replaceMutant((s) => ({
        resyncing: { ...s.resyncing, onDone: 'checkingNewCopy' },
        newCopyChecked: { ...s.newCopyChecked, always: [{ target: 'newCopyInSync' }] },
      })),
      /^rule 8: web1-disk0: node-b, UpToDate, removed as a peer of node-d while node-c was/,
      'threeCopies',
    ],
    [
      'leaves the old secondary a peer of the third copy',
      replaceMutant((s) => ({
        removingFormerPeer: {
          ...s.removingFormerPeer,
          invoke: { ...s.removingFormerPeer?.invoke, onDone: 'removingFormerDisks' },
        },
      })),
      /^replaced but web1-disk0 on node-d has node-b as a peer, which holds no copy the config names/,
      'threeCopies',
    ],
    [
      // replace-third-copy: the commit written as a secondary's (the config's choice of write lost).
      'writes a third copy’s move as a new secondary',
      replaceMutant((s) => {
        const committing = s.committing as { states: Record<string, object> };
        return {
          committing: {
            ...committing,
            states: { ...committing.states, choosing: { always: [{ target: 'writing' }] } },
          },
        };
      }),
      /^replaced the third copy, but the secondary changed from node-b to node-c/,
      'thirdCopyMoves',
    ],
    [
      'undoes and leaves what it made on the new node',
      replaceMutant((s) => ({ catchingUp: { ...s.catchingUp, onDone: 'reverted' } })),
      /^reverted but a copy is left behind on node-c: web1-disk0_data/,
    ],
  ];
  // The generated paths of the replace replayed per mutant, by their kind (their variants and input
  // say so).
  const kindOf = (description: string): Kind | undefined =>
    description.includes('third copy]')
      ? 'thirdCopyMoves'
      : description.includes('ThirdCopy')
        ? 'threeCopies'
        : undefined;
  it.each(mutants)(
    '%s',
    async (_, mutant, expected, kind) => {
      const { paths } = machinePaths({ machine: 'changeSecondary', logic: mutant });
      const mine = paths.filter((p) => kindOf(p.description) === kind);
      const problems = (
        await Promise.all(mine.map((p) => replayPath(p, (r) => simWorld(r), { logic: mutant })))
      ).flatMap((r) => r.problems);
      expect(problems).toContainEqual(expect.stringMatching(expected));
    },
    120_000,
  );
});
