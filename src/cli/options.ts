import { MACHINE_NAMES } from '../../machines/index.js';
/**
 * Every option of the CLI, once: its type, its value's name and what it does. Commands pick theirs
 * from this table; parsing, conflicts and help are all derived from it.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  /** May be given more than once (collected in order). */
  multiple?: boolean;
  short?: string;
  /** The value's name in help, for string options. */
  value?: string;
  help: string;
}

export const OPTIONS = {
  world: { type: 'string', value: 'FILE', help: 'a saved simulated cluster (drbd-migrate init writes one)' },
  cluster: { type: 'string', value: 'FILE', help: 'real nodes over SSH: the cluster file (docs/cluster.md)' },
  cleanup: {
    type: 'boolean',
    help: 'repair a run that stopped halfway (safe on a healthy instance): a migration’s finds where the instance runs and makes the config and the disks agree; a failover’s brings the instance up on the node the config names',
  },
  target: {
    type: 'string',
    value: 'NODE',
    help: "the target node: the instance's secondary, or its third copy (DRBD 9)",
  },
  'new-secondary': {
    type: 'string',
    value: 'NODE',
    help: 'the node that becomes the secondary (default: chosen by room, N+1 memory and spread); with --cleanup, the node a replace that stopped before its commit left disks on',
  },
  'new-third-copy': {
    type: 'string',
    value: 'NODE',
    help: 'the node that takes the third copy (default: chosen as a new secondary is); with --cleanup, the node a replace that stopped before its commit left disks on',
  },
  'non-live': { type: 'boolean', help: 'pause the instance for the copy' },
  'no-runtime-changes': {
    type: 'boolean',
    help: 'do not balloon the instance down to fit the target',
  },
  'dry-run': {
    type: 'boolean',
    help: 'drive the machine on a simulated copy and print what each node would do; touches nothing',
  },
  fail: {
    type: 'string',
    multiple: true,
    value: 'EFFECT[@N]',
    help: 'simulated only: make an effect fail (the Nth call, or every call); may repeat',
  },
  hang: {
    type: 'string',
    multiple: true,
    value: 'EFFECT[@N]',
    help: 'simulated only: make an effect never answer; its deadline cuts it off',
  },
  lose: {
    type: 'string',
    multiple: true,
    value: 'EFFECT[@N]',
    help: 'simulated only: make an effect act, then lose its answer',
  },
  'source-is-down': {
    type: 'boolean',
    help: 'the primary node is powered off (checked: it must not answer, and its DRBD peer must have lost it)',
  },
  'allow-failover': {
    type: 'boolean',
    help: 'an instance that is not running is failed over instead (decided before anything is touched)',
  },
  'ignore-consistency': {
    type: 'boolean',
    help: 'go on although the disks are not in sync (the target’s must still be UpToDate)',
  },
  failover: {
    type: 'boolean',
    help: 'node-a loses power; web1 is failed over to node-b; node-a boots and is rejoined',
  },
  concurrency: {
    type: 'string',
    value: 'N',
    help: 'runs at once in all (default 2)',
  },
  'calc-seconds': {
    type: 'string',
    value: 'N',
    help: "how long QEMU samples the guest's dirty pages, whole seconds (1 to 60, default 1)",
  },
  'per-node': {
    type: 'string',
    value: 'N',
    help: 'runs at once touching any one node, whose link they share (default: --concurrency)',
  },
  port: {
    type: 'string',
    value: 'N',
    help: 'the port to listen on (default: a free one)',
  },
  to: {
    type: 'string',
    multiple: true,
    value: 'PORT',
    help: 'a worker’s loopback port to send connections to; may repeat',
  },
  register: {
    type: 'string',
    value: 'ADMIN_URL',
    help: 'register it as a deployment with the Restate server whose admin API is there',
  },
  'identity-key': {
    type: 'string',
    multiple: true,
    value: 'KEY|FILE',
    help: 'serve only requests Restate signed with this key (publickeyv1_…, or a PEM file of the key); may repeat, to rotate',
  },
  listen: {
    type: 'string',
    value: 'ADDRESS',
    help: 'the address to listen on (default 127.0.0.1; a reachable one needs --identity-key)',
  },
  restate: {
    type: 'string',
    value: 'URL',
    help: 'submit the run to a Restate cluster (its ingress) and follow it; workers run it (docs/restate.md)',
  },
  'restate-admin': {
    type: 'string',
    value: 'URL',
    help: "the Restate cluster's admin API, for cancelling (default: the --restate host, port 9070)",
  },
  deadline: {
    type: 'string',
    value: 'DURATION',
    help: 'evacuate: start nothing new after this long (e.g. 90s, 45m, 2h30m); runs under way end, the rest is listed',
  },
  secondaries: {
    type: 'boolean',
    help: 'evacuate: give every instance whose secondary the node is a new secondary (its primaries stay)',
  },
  all: {
    type: 'boolean',
    help: 'evacuate: empty the node: mark it drained, move its primaries, then replace every secondary it holds',
  },
  nodes: {
    type: 'string',
    value: 'N',
    help: 'init: a cluster of N nodes (node-a, node-b, …) instead of the demo’s two',
  },
  instances: {
    type: 'string',
    value: 'M',
    help: 'init: M instances (web1 …) spread over the nodes, some stopped, some busy (default 2 per node)',
  },
  seed: {
    type: 'string',
    value: 'S',
    help: 'init: the seed the cluster is drawn from (default 1): the same seed, the same cluster',
  },
  force: {
    type: 'boolean',
    help: 'replace the --world file if it exists (without it, an existing file is refused)',
  },
  fast: { type: 'boolean', help: 'run simulated time as fast as the CPU allows (default: a watchable pace)' },
  json: { type: 'boolean', help: 'one JSON object per line: state, feedback, progress, result' },
  quiet: { type: 'boolean', help: 'print only the result' },
  'state-dir': {
    type: 'string',
    value: 'DIR',
    help: 'journal and locks (default $DRBD_MIGRATE_STATE_DIR, else $XDG_STATE_HOME/drbd-migrate, else ~/.local/state/drbd-migrate)',
  },
  'kill-at': {
    type: 'string',
    value: 'N',
    help: 'crash tests: SIGKILL this process right after the journal records its Nth transition',
  },
  format: { type: 'string', value: 'mermaid|dot|svg', help: 'the drawing format (default mermaid)' },
  output: { type: 'string', short: 'o', value: 'FILE', help: 'write to FILE instead of standard output' },
  machine: { type: 'string', value: MACHINE_NAMES.join('|'), help: 'the same as the MACHINE argument' },
  help: { type: 'boolean', short: 'h', help: 'this help' },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

/** Parsed option values, as node:util parseArgs gives them. */
export type Values = {
  [K in OptionName]?: (typeof OPTIONS)[K] extends { multiple: true }
    ? string[]
    : (typeof OPTIONS)[K]['type'] extends 'boolean'
      ? boolean
      : string;
};

/** "--world FILE", "-o, --output FILE". */
export function optionLabel(name: OptionName): string {
  const o: OptionSpec = OPTIONS[name];
  return `${o.short === undefined ? '' : `-${o.short}, `}--${name}${o.value === undefined ? '' : ` ${o.value}`}`;
}

/** Conflicts every command that runs a machine on an instance shares. */
export const RUN_CONFLICTS = [
  {
    option: 'cluster',
    with: ['fail', 'hang', 'lose'],
    why: 'faults are injected into a simulated cluster only',
  },
  {
    option: 'dry-run',
    with: ['fail', 'hang', 'lose', 'kill-at', 'state-dir'],
    why: 'a dry run plans the run and touches nothing',
  },
  { option: 'quiet', with: ['json'], why: 'choose one output: only the result, or JSON lines' },
  {
    option: 'restate',
    with: ['dry-run', 'fail', 'hang', 'lose', 'kill-at', 'state-dir'],
    why: 'Restate runs it on its workers, with its own journal; a dry run and faults are local',
  },
] as const satisfies readonly { option: OptionName; with: readonly OptionName[]; why: string }[];

/** Options every command that runs a machine on an instance takes. */
export const RUN_OPTIONS = [
  'cluster',
  'world',
  'dry-run',
  'fail',
  'hang',
  'lose',
  'json',
  'quiet',
  'state-dir',
  'kill-at',
  'restate',
  'restate-admin',
] as const satisfies readonly OptionName[];
