import { linkBetween, linkConnected, linksOf, localOf, otherEnd, resourceOf } from './drbd.js';
import type { World } from './world.js';

/**
 * The safety rules of DEVELOPERS.md as checks on a simulated world. `checkInvariants` holds at every
 * moment; `restStateProblems` describes what is wrong with an instance that should be at rest.
 */

/**
 * Rules 1 and 2 at any moment: one running copy; two Primaries only with two primaries allowed. With
 * `instances`, only theirs are checked: a step acts on one instance, and a world of thousands of
 * instances checked whole after every step would cost the square of its size.
 */
export function checkInvariants(world: World, instances?: readonly string[]): string[] {
  const names = instances ?? Object.keys(world.config.instances);
  const problems: string[] = [];
  const nodes = Object.keys(world.vms);
  for (const instance of names) {
    const config = world.config.instances[instance];
    if (config === undefined) continue;
    const running = nodes.filter((n) => world.vms[n]?.[instance]?.state === 'running');
    if (running.length > 1) problems.push(`rule 1: ${instance} runs on ${running.join(' and ')}`);
    for (const disk of config.disks) {
      const r = world.resources[disk.resource];
      if (r !== undefined) {
        // Each two Primaries must be connected to each other by a link both ends allow two on.
        const primaries = Object.keys(r.local).filter((n) => localOf(r, n).role === 'Primary');
        const dualMaster = (a: string, b: string) => {
          const l = linkBetween(r, a, b);
          return (
            l !== undefined && linkConnected(l) && l.ends.every((n) => l.net[n]?.allowTwoPrimaries === true)
          );
        };
        if (primaries.some((a, i) => primaries.slice(i + 1).some((b) => !dualMaster(a, b)))) {
          problems.push(
            `rule 2: ${r.name} is Primary on ${primaries.join(' and ')} without a dual-master connection`,
          );
        }
        // The migrating connection alone may allow two primaries, never a third copy's others.
        const allowing = r.links.filter((l) => l.ends.some((n) => l.net[n]?.allowTwoPrimaries === true));
        if (allowing.length > 1)
          problems.push(
            `rule 2: ${r.name} allows two primaries on ${allowing.map((l) => l.ends.join('–')).join(' and ')}`,
          );
      }
      const d = world.sharedDisks[disk.resource];
      if (d === undefined) continue;
      for (const node of d.nodes) {
        const vm = world.vms[node]?.[instance];
        if (vm !== undefined && vm.state !== 'shutdown' && d.open[node] === undefined) {
          problems.push(`rule 2: ${d.name} is used by a guest on ${node} without being open there`);
        }
      }
    }
  }
  return problems;
}

/** Appends newly broken rules to the world's record; returns them. */
export function recordInvariants(world: World, instances?: readonly string[]): string[] {
  const fresh = checkInvariants(world, instances).filter((p) => !world.violations.includes(p));
  world.violations.push(...fresh);
  return fresh;
}

export function runningOn(world: World, instance: string): string[] {
  return Object.keys(world.vms).filter((n) => world.vms[n]?.[instance]?.state === 'running');
}

export function presentOn(world: World, instance: string): string[] {
  return Object.keys(world.vms).filter((n) => world.vms[n]?.[instance] !== undefined);
}

/**
 * An instance at rest: it runs on the node the config names and nowhere else, and every disk is
 * single-master (Primary there, Secondary on the peer), two primaries disallowed, connected, in sync.
 */
export function restStateProblems(world: World, instance: string): string[] {
  const config = world.config.instances[instance];
  if (config === undefined) return [`instance ${instance} is not defined`];
  const problems: string[] = [];
  const present = presentOn(world, instance);
  const running = runningOn(world, instance);
  if (running.length !== 1 || running[0] !== config.primaryNode || present.length !== 1) {
    problems.push(
      `${instance} should run on ${config.primaryNode} only, but is ${present.map((n) => `${world.vms[n]?.[instance]?.state} on ${n}`).join(', ') || 'nowhere'}`,
    );
  }
  for (const disk of config.disks) {
    const shared = world.sharedDisks[disk.resource];
    if (shared !== undefined) {
      for (const node of shared.nodes) {
        const want = node === config.primaryNode ? 'exclusive' : undefined;
        if (shared.open[node] !== want) {
          problems.push(
            `${shared.name} is ${shared.open[node] ?? 'closed'} on ${node}, should be ${want ?? 'closed'}`,
          );
        }
      }
      continue;
    }
    const r = resourceOf(world, disk.resource);
    for (const node of new Set(r.links.flatMap((l) => l.ends))) {
      const l = localOf(r, node);
      const role = node === config.primaryNode ? 'Primary' : 'Secondary';
      if (l.role !== role) problems.push(`${r.name} is ${l.role} on ${node}, should be ${role}`);
      if (r.links.some((x) => x.net[node]?.allowTwoPrimaries))
        problems.push(`${r.name} allows two primaries on ${node}`);
      for (const link of linksOf(r, node)) {
        const connection = link.connection[node] ?? 'StandAlone';
        const towards = r.links.length > 1 ? ` towards ${otherEnd(link, node)}` : '';
        if (connection !== 'Connected') problems.push(`${r.name} is ${connection} on ${node}${towards}`);
      }
      if (l.diskState !== 'UpToDate') problems.push(`${r.name} is ${l.diskState} on ${node}`);
    }
    if (r.links.some((x) => x.syncSource !== null)) problems.push(`${r.name} is still resyncing`);
  }
  return problems;
}
