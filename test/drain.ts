import {
  type EvacuationOutput,
  type InstanceRequest,
  restStateProblems,
  type World,
  type WorldSpec,
} from '../src/index.js';

/** What the drain tests share: small worlds to drain, a watch on the limits, and the truth of a summary. */

export type Spec = NonNullable<WorldSpec['instances']>[number];

export function cluster(instances: Spec[], nodes = ['node-a', 'node-b', 'node-c', 'node-d']): WorldSpec {
  return {
    nodes: Object.fromEntries(nodes.map((n) => [n, { memoryMiB: 1e9 }])),
    instances,
    settings: { stepMs: 50 },
  };
}

export const vm = (
  name: string,
  primary: string,
  secondary: string | null,
  extra: Partial<Spec> = {},
): Spec => ({
  name,
  primary,
  secondary,
  memoryMiB: 512,
  disksMiB: [256],
  ...extra,
});

/** Runs in flight per node, checked at every start against the limits. */
export function limitWatch(limits: { concurrency: number; perNode: number }) {
  const load = new Map<string, number>();
  let running = 0;
  const problems: string[] = [];
  const order: string[] = [];
  return {
    problems,
    order,
    onRun: (n: { phase: 'start' | 'end'; request: InstanceRequest }) => {
      const d = n.phase === 'start' ? 1 : -1;
      running += d;
      if (n.phase === 'start') order.push(n.request.instance);
      for (const node of new Set([n.request.source, n.request.target]))
        load.set(node, (load.get(node) ?? 0) + d);
      if (running > limits.concurrency)
        problems.push(`${running} runs at once (limit ${limits.concurrency})`);
      for (const [node, l] of load)
        if (l > limits.perNode) problems.push(`${l} runs on ${node} at once (limit ${limits.perNode})`);
    },
  };
}

/** The outcome must tell the truth about the world, instance by instance. */
export function summaryProblems(out: EvacuationOutput, before: World, world: World): string[] {
  const problems = [...world.violations];
  for (const r of out.results) {
    const was = before.config.instances[r.instance]!;
    const now = world.config.instances[r.instance]!;
    const at = (what: string) => `${r.instance} (${r.outcome}): ${what}`;
    switch (r.outcome) {
      case 'migrated':
      case 'failedOver':
        if (now.primaryNode !== was.secondaryNode) problems.push(at(`config names ${now.primaryNode}`));
        if (now.adminState === 'up') problems.push(...restStateProblems(world, r.instance).map(at));
        break;
      // rejected: a prerequisite failed and nothing was touched.
      case 'rejected':
      case 'reverted':
      case 'skipped':
      case 'notStarted':
        if (now.primaryNode !== was.primaryNode) problems.push(at(`config names ${now.primaryNode}`));
        if (now.adminState === 'up' && was.secondaryNode !== null && ['drbd'].includes(was.diskTemplate))
          problems.push(...restStateProblems(world, r.instance).map(at));
        break;
      default:
        problems.push(at(`ended ${r.outcome}: ${r.error ?? ''}`));
    }
  }
  return problems;
}
