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

/**
 * DRBD calls its usermode helper (drbdadm by default) before a resync; drbdadm fails for a resource
 * its configuration does not name on this node, and DRBD then drops the connection (seen on real 8.4:
 * a new secondary made by drbdsetup alone never synced). Ganeti sets the helper to /bin/true. Exit 0:
 * a helper that always agrees, or a configuration naming the resource; exit 3 printing the helper.
 */
export const resyncHelperCommand = (resource: string) => [
  'sh',
  '-c',
  'h=$(cat /sys/module/drbd/parameters/usermode_helper 2>/dev/null); case "$h" in */true) exit 0 ;; esac; drbdadm sh-resources 2>/dev/null | tr " " "\\n" | grep -qx -- "$1" && exit 0; echo "$h"; exit 3',
  'resync-helper',
  resource,
];
export const RESYNC_HELPER_REFUSED = 3;

export function resyncHelperProblem(node: string, resource: string, helper: string): string {
  return `${node}: DRBD's usermode helper is ${helper || 'unset'} and no DRBD configuration there names ${resource}: the helper would refuse its resync and DRBD drop the link; set the drbd module's usermode_helper to /bin/true (as Ganeti requires) or add ${resource} to the node's DRBD configuration`;
}
