import type { ProtocolOutput } from '../../machines/index.js';
import { linkConnected, linkFor, localOf, otherEnd, type World } from '../sim/index.js';

/** The simulated world as the CLI prints it (and as `{"type":"world"}` carries it). */
export function describeWorldState(world: World) {
  return {
    time: world.time,
    nodes: Object.fromEntries(
      Object.keys(world.nodes).map((node) => [
        node,
        {
          // A node that is down answers nothing and holds nothing: its disks are not drawn as present.
          down: world.nodes[node]?.down === true,
          unreachable: world.nodes[node]?.unreachable === true,
          instances: Object.fromEntries(
            Object.entries(world.vms[node] ?? {}).map(([name, vm]) => [name, vm.state]),
          ),
          drbd: Object.fromEntries(
            Object.values(world.resources)
              // A device outside its resource's link (a replace's new or old copy) is shown too.
              .filter((r) => r.local[node] !== undefined)
              .map((r) => {
                const l = localOf(r, node);
                const link = linkFor(r, node);
                const peer = link === undefined ? undefined : r.local[otherEnd(link, node)];
                return [
                  r.name,
                  {
                    role: l.role,
                    connection: link?.connection[node] ?? 'StandAlone',
                    disk: l.diskState,
                    peerDisk:
                      link !== undefined && linkConnected(link)
                        ? (peer?.diskState ?? 'DUnknown')
                        : 'DUnknown',
                    allowTwoPrimaries: link?.net[node]?.allowTwoPrimaries ?? false,
                  },
                ];
              }),
          ),
        },
      ]),
    ),
    config: Object.fromEntries(
      Object.values(world.config.instances).map((i) => [
        i.name,
        { primary: i.primaryNode, secondary: i.secondaryNode },
      ]),
    ),
    violations: world.violations,
  };
}

export function worldLines(world: World): string[] {
  const w = describeWorldState(world);
  const lines: string[] = [];
  for (const [node, n] of Object.entries(w.nodes)) {
    if (n.down) {
      lines.push(`${node}: DOWN (powered off: nothing runs there, its disks are gone until it boots)`);
      continue;
    }
    const instances = Object.entries(n.instances).map(([name, state]) => `${name} (${state})`);
    const cutOff = n.unreachable ? ' (its management network is cut: it answers nothing)' : '';
    lines.push(`${node}: ${instances.length === 0 ? 'no instances' : instances.join(', ')}${cutOff}`);
    for (const [res, d] of Object.entries(n.drbd)) {
      lines.push(
        `  ${res}: ${d.role} ${d.connection} ${d.disk}/${d.peerDisk}${d.allowTwoPrimaries ? ' allow-two-primaries' : ''}`,
      );
    }
  }
  for (const [name, c] of Object.entries(w.config))
    lines.push(`config: ${name} primary ${c.primary}, secondary ${c.secondary}`);
  lines.push(
    w.violations.length === 0 ? 'safety rules: all held' : `safety rules BROKEN: ${w.violations.join('; ')}`,
  );
  return lines;
}

export const EXIT: Record<ProtocolOutput['outcome'], number> = {
  migrated: 0,
  failedOver: 0,
  rejoined: 0,
  replaced: 0,
  cleaned: 0,
  reverted: 1,
  rejected: 2,
  needsCleanup: 3,
  failed: 3,
};

export function resultLines(out: ProtocolOutput, cleanup: string | null): string[] {
  const secondary =
    out.secondaryNode === undefined ? '' : `, secondary on ${out.secondaryNode ?? '(unknown)'}`;
  const lines = [
    `${out.outcome}: ${out.instance} is primary on ${out.primaryNode ?? '(unknown)'}${secondary}`,
  ];
  if (out.error !== undefined) lines.push(`error: ${out.error}`);
  for (const l of out.left ?? []) lines.push(`left: ${l}`);
  const next = nextStep(out, cleanup);
  if (next !== null) lines.push(`next: ${next}`);
  return lines;
}

/** What the operator does next, naming the file the run acted on. */
export function nextStep(out: ProtocolOutput, cleanup: string | null): string | null {
  switch (out.outcome) {
    case 'needsCleanup':
    case 'failed':
      return cleanup === null
        ? 'this run kept no cluster to repair; run the demo again with --world FILE to keep one for the cleanup'
        : `inspect the nodes, then run '${cleanup}'`;
    case 'reverted':
      return out.secondaryNode !== undefined
        ? 'read the error; the instance keeps its secondary, in sync, and the replace can be retried'
        : 'read the error; the instance is safe on the source and the migration can be retried';
    case 'rejected':
      return 'fix the cause the error names; nothing was touched';
    default:
      return null;
  }
}
