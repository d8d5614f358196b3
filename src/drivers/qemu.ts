import { setTimeout as sleep } from 'node:timers/promises';
import { MigrationStatus, RunState } from '../../machines/index.js';
import type { ClusterInstance } from '../cluster/index.js';
import type { NodeShell } from '../ssh/index.js';
import { QmpError, QmpSession, QueryDirtyRate, QueryMigrate, QueryStatus } from './qmp.js';

/**
 * The QEMU driver: start an instance's QEMU from its launch spec, and speak QMP to it through the
 * node's own SSH connection (stream-local forwarding to the QMP socket; no helper on the node).
 * The pidfile and QEMU's stderr sit beside the QMP socket: NAME.qmp, NAME.pid, NAME.log.
 */

type Hypervisor = ClusterInstance['hypervisor'];

const MIB = 1024 * 1024;

export const runtimeFiles = (hv: Hypervisor) => {
  const base = hv.qmpSocket.replace(/\.qmp$/, '');
  return { qmp: hv.qmpSocket, pid: `${base}.pid`, log: `${base}.log` };
};

/**
 * Starts QEMU detached from the SSH session (setsid; stderr kept in NAME.log) and waits, on the node,
 * until its QMP socket listens or the process died. Both node-side waits run under coreutils'
 * `timeout` with the step's deadline, so they end on the node even if the SSH channel's kill is lost.
 * One line each: --dry-run prints them as the node receives them.
 */
const START_SCRIPT = [
  'qmp=$1 pid=$2 log=$3; shift 3',
  'if [ -s "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then echo "already running: pid $(cat "$pid")" >&2; exit 17; fi',
  'rm -f "$qmp" "$pid"',
  'setsid "$@" -qmp "unix:$qmp,server=on,wait=off" -pidfile "$pid" >"$log" 2>&1 </dev/null & child=$!',
  'while [ ! -S "$qmp" ]; do kill -0 $child 2>/dev/null || { cat "$log" >&2; exit 1; }; sleep 0.02; done',
].join('; ');

/**
 * Waits on the node until the process in the pidfile is gone (QEMU closes the disks as it exits). An
 * empty pidfile counts as none: busybox's `kill -0 ""` succeeds (the DRBD VM nodes run busybox sh).
 */
const WAIT_EXIT_SCRIPT = [
  'pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] || exit 0',
  'while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done',
].join('; ');

const bounded = (timeoutMs: number) => [
  'timeout',
  '-s',
  'KILL',
  `${Math.max(1, Math.ceil(timeoutMs / 1000))}`,
];

export function startCommand(hv: Hypervisor, incoming: boolean, timeoutMs: number): string[] {
  const f = runtimeFiles(hv);
  return [
    ...bounded(timeoutMs),
    'sh',
    '-c',
    START_SCRIPT,
    'start-qemu',
    f.qmp,
    f.pid,
    f.log,
    hv.binary,
    ...hv.args,
    ...(incoming ? ['-incoming', 'defer'] : []),
  ];
}

export const waitExitCommand = (hv: Hypervisor, timeoutMs: number) => [
  ...bounded(timeoutMs),
  'sh',
  '-c',
  WAIT_EXIT_SCRIPT,
  'wait-exit',
  runtimeFiles(hv).pid,
];

export type QmpCommand = [command: string, args?: Record<string, unknown>];

/**
 * The QMP commands of setMigrationParameters. QEMU takes capabilities only while no copy runs, so
 * auto-converge is switched on before the copy held at a 1% throttle (QEMU's least), and "throttle"
 * lets it grow from there as QEMU's own defaults would (by 10% a pass, up to 99%).
 */
export function tuningCommands(change: {
  bandwidthMiBps?: number | undefined;
  downtimeMs?: number | undefined;
  prepare?: { autoConverge: boolean; postcopy: boolean } | undefined;
  throttle?: true | undefined;
}): QmpCommand[] {
  const commands: QmpCommand[] = [];
  if (change.prepare !== undefined) {
    commands.push([
      'migrate-set-capabilities',
      {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'auto-converge', state: change.prepare.autoConverge },
          { capability: 'postcopy-ram', state: change.prepare.postcopy },
        ],
      },
    ]);
    if (change.prepare.autoConverge) {
      commands.push([
        'migrate-set-parameters',
        { 'cpu-throttle-initial': 1, 'cpu-throttle-increment': 1, 'max-cpu-throttle': 1 },
      ]);
    }
  }
  const parameters: Record<string, number> = {};
  if (change.bandwidthMiBps !== undefined)
    parameters['max-bandwidth'] = Math.round(change.bandwidthMiBps * MIB);
  if (change.downtimeMs !== undefined) parameters['downtime-limit'] = change.downtimeMs;
  if (change.throttle === true) {
    parameters['cpu-throttle-increment'] = 10;
    parameters['max-cpu-throttle'] = 99;
  }
  if (Object.keys(parameters).length > 0) commands.push(['migrate-set-parameters', parameters]);
  return commands;
}

/** The incoming side of a copy that may switch to postcopy needs postcopy-ram before it listens. */
export const incomingCommands = (postcopy: boolean): QmpCommand[] =>
  postcopy
    ? [['migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram', state: true }] }]]
    : [];

const RUN_STATES = new Set<string>(RunState.options);
/** QEMU has more run states than migration cares about; the rest are "not running here". */
export const runStateOf = (status: string): RunState =>
  RUN_STATES.has(status) ? (status as RunState) : 'paused';

const MIGRATION_STATUSES = new Set<string>(MigrationStatus.shape.status.options);

export function migrationStatusOf(q: QueryMigrate, at: number): MigrationStatus {
  const status = q.status ?? 'none';
  // An unknown status from a newer QEMU is not success: report it as still running ('active'), so
  // the machine's no-progress deadline, not a guess, ends a copy that never finishes.
  return {
    status: (MIGRATION_STATUSES.has(status) ? status : 'active') as MigrationStatus['status'],
    transferredMiB: q.ram?.transferred === undefined ? null : q.ram.transferred / MIB,
    totalMiB: q.ram?.total === undefined ? null : q.ram.total / MIB,
    remainingMiB: q.ram?.remaining === undefined ? null : q.ram.remaining / MIB,
    passes: q.ram?.['dirty-sync-count'] ?? null,
    throttlePercent: q['cpu-throttle-percentage'] ?? null,
    at,
  };
}

/** One QMP session per (node, instance), opened on first use and reopened after QEMU restarts. */
export class QemuNode {
  private session: QmpSession | null = null;
  private opening: Promise<QmpSession> | null = null;

  constructor(
    readonly shell: NodeShell,
    readonly hv: Hypervisor,
  ) {}

  private where() {
    return `${this.shell.node}: QEMU ${this.hv.qmpSocket}`;
  }

  /** The QMP session, or null when no QEMU listens there. */
  async qmp(timeoutMs: number, signal?: AbortSignal): Promise<QmpSession | null> {
    if (this.session !== null && !this.session.closed) return this.session;
    this.opening ??= (async () => {
      const stream = await this.shell.openUnix(this.hv.qmpSocket, { timeoutMs, signal });
      return new QmpSession(stream, this.where()).open();
    })().finally(() => {
      this.opening = null;
    });
    try {
      this.session = await this.opening;
      return this.session;
    } catch (error) {
      if (error instanceof Error && /nothing listens|QMP connection closed/.test(error.message)) return null;
      throw error;
    }
  }

  async mustQmp(timeoutMs: number, signal?: AbortSignal): Promise<QmpSession> {
    const qmp = await this.qmp(timeoutMs, signal);
    if (qmp === null)
      throw new QmpError(`${this.where()}: instance not running (nothing listens on the QMP socket)`);
    return qmp;
  }

  async status(timeoutMs: number, signal?: AbortSignal): Promise<RunState | null> {
    const qmp = await this.qmp(timeoutMs, signal);
    if (qmp === null) return null;
    try {
      return runStateOf(QueryStatus.parse(await qmp.execute('query-status')).status);
    } catch (error) {
      if (qmp.closed) return null;
      throw error;
    }
  }

  async start(incoming: boolean, timeoutMs: number, signal?: AbortSignal) {
    this.dropSession();
    await this.shell.exec(startCommand(this.hv, incoming, timeoutMs), { timeoutMs, signal });
  }

  /** Asks QEMU to quit and waits until the process is gone, so that it no longer holds the disks. */
  async quit(timeoutMs: number, signal?: AbortSignal) {
    const qmp = await this.qmp(timeoutMs, signal);
    if (qmp !== null) {
      const gone = qmp.nextEvent(() => false, timeoutMs, signal);
      await qmp.execute('quit').catch(() => undefined);
      await gone;
      this.dropSession();
    }
    await this.shell.exec(waitExitCommand(this.hv, timeoutMs), { timeoutMs, signal });
  }

  /**
   * Ganeti's instance_shutdown: ask the guest to power off (ACPI), give it part of the step, then
   * quit QEMU; done when the process is gone. A guest that is not there is already shut down.
   */
  async shutdown(timeoutMs: number, signal?: AbortSignal) {
    const qmp = await this.qmp(timeoutMs, signal);
    if (qmp === null) {
      await this.shell.exec(waitExitCommand(this.hv, timeoutMs), { timeoutMs, signal });
      return;
    }
    const graceMs = Math.min(10_000, Math.floor(timeoutMs / 3));
    const gone = qmp.nextEvent(() => false, graceMs, signal);
    await qmp.execute('system_powerdown').catch(() => undefined);
    await gone;
    await this.quit(timeoutMs, signal);
  }

  /**
   * The guest's dirty rate, measured without migrating (calc-dirty-rate, then query-dirty-rate until
   * measured). Always page sampling: dirty-bitmap and dirty-ring need KVM, and under TCG QEMU 7.2
   * crashed with each (exit 139, and the guest killed), so no other mode is ever sent.
   */
  async dirtyRate(
    calcSeconds: number,
    samplePages: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<{ dirtyMiBps: number; calcSeconds: number; mode: 'page-sampling' }> {
    const qmp = await this.mustQmp(timeoutMs, signal);
    const until = Date.now() + timeoutMs;
    await qmp.execute('calc-dirty-rate', {
      'calc-time': calcSeconds,
      'sample-pages': samplePages,
      mode: 'page-sampling',
    });
    // The measurement takes calc-time whole seconds; asked again every tenth of it until done.
    const every = Math.max(100, calcSeconds * 100);
    for (;;) {
      const answer = QueryDirtyRate.parse(await qmp.execute('query-dirty-rate'));
      if (answer.status === 'measured') {
        return { dirtyMiBps: answer['dirty-rate'] ?? 0, calcSeconds, mode: 'page-sampling' };
      }
      if (Date.now() + every > until)
        throw new Error(
          `the dirty rate was not measured within ${timeoutMs} ms (QEMU says ${answer.status})`,
        );
      await sleep(every, undefined, signal === undefined ? {} : { signal });
    }
  }

  async queryMigrate(timeoutMs: number, signal?: AbortSignal): Promise<QueryMigrate> {
    return QueryMigrate.parse(await (await this.mustQmp(timeoutMs, signal)).execute('query-migrate'));
  }

  dropSession() {
    this.session?.close();
    this.session = null;
  }
}
