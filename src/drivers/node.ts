import type { DrbdVersion } from './drbd.js';

/**
 * What a node says about itself in one command: its free memory, the hypervisor's version and the
 * loaded DRBD module's version (none where no module is loaded: a node of shared-storage instances).
 */
export const nodeInfoCommand = (hypervisorBinary: string) => [
  'sh',
  '-c',
  'cat /proc/meminfo; "$1" --version; head -n 1 /proc/drbd 2>/dev/null; true',
  'node-info',
  hypervisorBinary,
];

export interface NodeFacts {
  memoryFreeMiB: number;
  hypervisorVersion: string;
  /** The loaded DRBD module's family, or null when none is loaded. */
  drbd: { family: DrbdVersion; version: string } | null;
}

export function parseNodeInfo(node: string, binary: string, stdout: string): NodeFacts {
  const available = /^MemAvailable:\s+(\d+) kB/m.exec(stdout);
  const qemu = /QEMU emulator version (\S+)/.exec(stdout);
  if (available === null || qemu === null) {
    throw new Error(`${node}: cannot read free memory or the QEMU version from ${binary} --version`);
  }
  const drbd = /^version: ((\d+)\.(\d+)\.\S+)/m.exec(stdout);
  return {
    memoryFreeMiB: Number(available[1]) / 1024,
    hypervisorVersion: qemu[1]!,
    drbd: drbd === null ? null : { family: drbd[2] === '8' ? '8.4' : '9', version: drbd[1]! },
  };
}

/**
 * Refuses a node whose loaded DRBD module is not the family the cluster file names: every command
 * the driver would send is the other family's (8.4's drbdsetup and 9's take different arguments).
 */
export function drbdFamilyProblem(node: string, configured: DrbdVersion, facts: NodeFacts): string | null {
  if (facts.drbd === null || facts.drbd.family === configured) return null;
  return (
    `${node}: its kernel runs DRBD ${facts.drbd.version} but the cluster file says drbd: ${configured}; ` +
    `set the node's "drbd" to "${facts.drbd.family}" (nothing was touched)`
  );
}
