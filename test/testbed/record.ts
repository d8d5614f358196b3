import type { ClusterFile } from '../../src/cluster/index.js';
import { type NodeShell, SshNode } from '../../src/ssh/index.js';
import { shellLine } from '../../src/ssh/shell.js';

/** What a backend sent to the nodes: shell lines, the sockets it opened, the QMP commands it wrote. */
export interface Recorded {
  sh: string[];
  sockets: string[];
  qmp: { node: string; execute: string; arguments?: unknown }[];
  /** The effect in flight, if the recorder is told (each entry is prefixed with it). */
  effect?: string;
}

export const recording = (): Recorded => ({ sh: [], sockets: [], qmp: [] });

/** Real SSH node connections that record what goes through them. */
export const recordingShell =
  (seen: Recorded) =>
  (n: ClusterFile['nodes'][number]): NodeShell => {
    const shell = new SshNode(n);
    return {
      node: shell.node,
      exec: (argv, o) => {
        seen.sh.push(`${seen.effect ?? ''} ${n.name}$ ${shellLine(argv)}`.trim());
        return shell.exec(argv, o);
      },
      openUnix: async (path, o) => {
        seen.sockets.push(`${n.name} ${path}`);
        const stream = await shell.openUnix(path, o);
        const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
        stream.write = ((chunk: unknown, ...rest: unknown[]) => {
          const command = JSON.parse(String(chunk)) as { execute: string; arguments?: unknown };
          seen.qmp.push({ node: `${seen.effect ?? ''} ${n.name}`.trim(), ...command });
          return write(chunk, ...rest);
        }) as typeof stream.write;
        return stream;
      },
      close: () => shell.close(),
    };
  };

/**
 * A long poll's line (DRBD's wait, then the read) as the read alone: whether a poll waits, and how
 * long, depends on what the world does meanwhile (a resync after the reconnect or none), not on the
 * plan.
 */
const asRead = (line: string) =>
  line.replace(/sh -c '"\$@" >\/dev\/null 2>&1; exec (.*)' wait-then-read .*$/, '$1');

/**
 * A --dry-run's printed plan and a recorded real run, effect by effect ("acceptInstance node-b$ …",
 * "migrateInstance node-a migrate"), as two comparable pairs of sets. Reads (query-*) depend on what
 * the backend finds (nothing listens where no QEMU runs), so the plan lists them as possible; they
 * are left out, and a long poll counts as its read: everything that acts must match exactly.
 */
export function planAgainstRun(lines: string[], seen: Recorded) {
  const acts = (name: string) => name !== 'qmp_capabilities' && !name.startsWith('query-');
  const plan = { sh: new Set<string>(), qmp: new Set<string>() };
  let effect = '';
  for (const l of lines) {
    const header = /^([a-zA-Z]+) on /.exec(l);
    if (header !== null) effect = header[1]!;
    const m = /^ {2}(\S+)(\$| qmp>) (.*)$/.exec(l);
    if (m === null) continue;
    if (m[2] === '$') plan.sh.add(asRead(`${effect} ${m[1]}$ ${m[3]}`));
    else {
      const execute = (JSON.parse(m[3]!.slice(m[3]!.indexOf(' ') + 1)) as { execute: string }).execute;
      if (acts(execute)) plan.qmp.add(`${effect} ${m[1]} ${execute}`);
    }
  }
  const real = {
    sh: new Set(seen.sh.map(asRead)),
    qmp: new Set(seen.qmp.filter((c) => acts(c.execute)).map((c) => `${c.node} ${c.execute}`)),
  };
  return {
    plan: { sh: [...plan.sh].sort(), qmp: [...plan.qmp].sort() },
    real: { sh: [...real.sh].sort(), qmp: [...real.qmp].sort() },
  };
}
