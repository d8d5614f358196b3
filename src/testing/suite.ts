import { describe, expect, it } from 'vitest';
import { MACHINE_NAMES, MACHINES, type MachineName, transitionsOf } from '../../machines/index.js';
import { runEvacuation } from '../runner/index.js';
import { restProblems } from './oracle.js';
import { type GeneratedPath, machinePaths } from './paths.js';
import { replayPath } from './replay.js';
import type { MakeWorld } from './world.js';

export interface ContractSuiteOptions {
  /** Shown in test names: "simulated cluster", "my backend". */
  name: string;
  /** A fresh world per path, shaped by the path's recipe. */
  makeWorld: MakeWorld;
  /** Paths the backend cannot realise (say why); they are registered as skipped, never dropped silently. */
  unsupported?: (path: GeneratedPath) => string | null;
  machines?: MachineName[];
  /** Also crash at the end of every path and run cleanup (default true). */
  crash?: boolean;
  /** Replay each path that ends in a failed call again with the failure as a hang and as a lost answer (default true). */
  faultKinds?: boolean;
  /** Also drain the instance's primary node with the evacuation machine (default true). */
  evacuation?: boolean;
}

/** The same path with its last failing call realised another way. */
function asFault(path: GeneratedPath, action: 'hang' | 'lost'): GeneratedPath {
  const plan = path.plan.map((e) => ({ ...e }));
  const last = plan.at(-1);
  if (last !== undefined) last.action = action;
  return { ...path, description: `${path.description} (${action})`, plan };
}

/**
 * Registers vitest tests that replay every generated path of the machines against a backend: the
 * safety rules after every call, the truth of every outcome, every transition covered, and (with
 * crash) cleanup after a crash at every point. Call it at the top level of a test file.
 */
export function createContractSuite(options: ContractSuiteOptions): void {
  for (const machine of options.machines ?? MACHINE_NAMES) {
    const set = machinePaths({ machine });
    const all = transitionsOf(MACHINES[machine]);
    const covered = new Set<string>();
    const name = (p: GeneratedPath) => `${p.description} ⇒ ${p.target}`;
    const register = (title: string, crashAtEnd: boolean, paths = set.paths) =>
      describe(title, () => {
        for (const path of paths) {
          const why = options.unsupported?.(path) ?? null;
          if (why !== null) {
            it.skip(`${name(path)} (not realisable: ${why})`, () => {});
            continue;
          }
          it(name(path), async () => {
            const result = await replayPath(path, options.makeWorld, { crashAtEnd });
            if (!crashAtEnd) for (const k of result.covered) covered.add(k);
            expect(result.problems).toEqual([]);
          });
        }
      });
    register(`${machine}: every generated path on the ${options.name}`, false);
    describe(`${machine}: transition coverage on the ${options.name}`, () => {
      it(`covers all ${all.length} transitions`, () => {
        const missing = all.filter((t) => !covered.has(t.key)).map((t) => t.key);
        console.log(
          `${machine}: ${all.length - missing.length}/${all.length} transitions covered by ${set.paths.length} paths (${set.vertices} vertices, ${set.edges} edges)`,
        );
        expect(missing).toEqual([]);
      });
    });
    if (options.faultKinds ?? true) {
      const failing = set.paths.filter(
        (p) => p.plan.at(-1)?.action === 'error' && p.steps.at(-1)?.event.startsWith('xstate.error'),
      );
      register(
        `${machine}: the failing call hangs instead, on the ${options.name}`,
        false,
        failing.map((p) => asFault(p, 'hang')),
      );
      register(
        `${machine}: the failing call acts but loses its answer, on the ${options.name}`,
        false,
        failing.map((p) => asFault(p, 'lost')),
      );
    }
    if (options.crash ?? true)
      register(`${machine}: crash at the end of every path, then cleanup, on the ${options.name}`, true);
  }
  if (options.evacuation ?? true) {
    describe(`evacuation on the ${options.name}`, () => {
      it('lists the instance as the config gives it, and drains its primary node', async () => {
        const world = await options.makeWorld({});
        try {
          const signal = new AbortController().signal;
          const listed = await world.effects.listInstances({ timeoutMs: 60_000 }, signal);
          const config = await world.effects.getInstance({ instance: 'web1', timeoutMs: 60_000 }, signal);
          expect(listed.find((i) => i.name === 'web1')).toMatchObject({
            primaryNode: config.primaryNode,
            secondaryNode: config.secondaryNode,
          });
          const before = await world.inspect();
          const out = await runEvacuation({ node: before.configPrimary }, world.effects, {
            clock: world.clock,
          });
          expect(out.results.find((r) => r.instance === 'web1')?.outcome).toBe('migrated');
          const after = await world.inspect();
          expect(after.configPrimary).toBe(before.configSecondary);
          expect(restProblems(after)).toEqual([]);
        } finally {
          await world.dispose?.();
        }
      });
    });
  }
}
