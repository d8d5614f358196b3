import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ClusterFile, clusterConfigEffects, loadCluster } from '../src/cluster/index.js';
import { tempDir } from './tmp.js';

const example = 'docs/cluster.example.yaml';
const signal = new AbortController().signal;

async function copyOfExample(name = 'cluster.yaml') {
  const path = join(tempDir('drbd-migrate-'), name);
  await copyFile(example, path);
  return path;
}

describe('the cluster file', () => {
  it('the documented example is valid', async () => {
    const cluster = await loadCluster(example);
    expect(cluster.nodes.map((n) => [n.name, n.port, n.user])).toEqual([
      ['node-a', 22, 'root'],
      ['node-b', 22, 'root'],
    ]);
  });

  // biome-ignore lint/suspicious/noExplicitAny: a test breaks arbitrary fields of a parsed file
  const broken: [string, (c: Record<string, any>) => void, RegExp][] = [
    [
      'an instance on an unknown node',
      (c) => (c.instances[0].secondary = 'node-c'),
      /instances\.0\.secondary: node-c is not a node of this file/,
    ],
    [
      'a node without a pinned host key',
      (c) => delete c.nodes[0].hostKey,
      /nodes\.0\.hostKey: needs hostKey or knownHosts: a host key is never trusted on first use/,
    ],
    [
      'a name with shell metacharacters',
      (c) => (c.instances[0].name = 'web1;reboot'),
      /instances\.0\.name: instance name must be/,
    ],
    [
      'a relative QMP socket path',
      (c) => (c.instances[0].hypervisor.qmpSocket = 'run/x.qmp'),
      /qmpSocket: must be an absolute path/,
    ],
    [
      'a DRBD minor used twice on a node',
      (c) => c.instances[0].disks.push({ resource: 'web1-disk1', minor: 0, port: 7790 }),
      /disks\.1\.minor: minor 0 on node-a is already used by web1-disk0/,
    ],
    ['an unknown field', (c) => (c.nodes[0].passwd = 'x'), /nodes\.0: unknown key 'passwd'/],
    // Bounded by what the node side accepts (issue 10, item 5).
    [
      'a step timeout no timer can wait',
      (c) => (c.options.limits = { stepTimeoutMs: 3_000_000_000 }),
      /options\.limits\.stepTimeoutMs: must be at most 2147483647 ms/,
    ],
    [
      'a misspelt limit',
      (c) => (c.options.limits = { syncNoProgresMs: 1000 }),
      /options\.limits: unknown key 'syncNoProgresMs'/,
    ],
    [
      'a bandwidth past what QEMU takes as an exact integer',
      (c) => (c.options.bandwidthMiBps = 1e308),
      /options\.bandwidthMiBps: must be at most 8388608 MiB\/s/,
    ],
    ['an absurd bandwidth', (c) => (c.options.bandwidthMiBps = 1e13), /must be at most 8388608 MiB\/s/],
    [
      'a bandwidth that rounds to nothing',
      (c) => (c.options.bandwidthMiBps = 0.0000001),
      /options\.bandwidthMiBps: must be at least 1 KiB\/s/,
    ],
    [
      'a downtime QEMU refuses',
      (c) => (c.options.downtimeMs = 3_000_000),
      /options\.downtimeMs: must be at most 2000000 ms/,
    ],
    ['a fractional limit', (c) => (c.options.limits = { pollWindowMs: 1.5 }), /must be a whole number/],
  ];
  it.each(broken)('refuses %s, saying where', async (_what, breakIt, message) => {
    const cluster = parse(await readFile(example, 'utf8'));
    breakIt(cluster);
    const path = join(tempDir('drbd-migrate-'), 'c.json');
    await writeFile(path, JSON.stringify(cluster));
    await expect(loadCluster(path)).rejects.toThrow(message);
  });

  it('reads an unquoted DRBD version (YAML makes 9 a number) as the same version', async () => {
    const path = join(tempDir('drbd-migrate-'), 'c.yaml');
    const text = (await readFile(example, 'utf8')).replace(
      '    replicationAddress: 10.99.1.1',
      '    replicationAddress: 10.99.1.1\n    drbd: 8.4',
    );
    await writeFile(path, text);
    expect((await loadCluster(path)).nodes[0]?.drbd).toBe('8.4');
  });

  it('is the config store: the commit rewrites it atomically and keeps the previous version', async () => {
    const path = await copyOfExample();
    const before = await readFile(path, 'utf8');
    const store = clusterConfigEffects(path);
    expect(await store.getInstance({ instance: 'web1', timeoutMs: 1000 }, signal)).toMatchObject({
      primaryNode: 'node-a',
      secondaryNode: 'node-b',
      diskTemplate: 'drbd',
      disks: [{ index: 0, resource: 'web1-disk0', minor: 0 }],
      minMemoryMiB: 1024,
    });
    await store.setPrimaryNode({ instance: 'web1', node: 'node-b', timeoutMs: 1000 }, signal);
    expect(await readFile(`${path}.prev`, 'utf8')).toBe(before);
    const after = await loadCluster(path);
    expect(after.instances[0]).toMatchObject({ primary: 'node-b', secondary: 'node-a' });
    // run again (a lost answer): nothing changes, no second commit
    const text = await readFile(path, 'utf8');
    await store.setPrimaryNode({ instance: 'web1', node: 'node-b', timeoutMs: 1000 }, signal);
    expect(await readFile(path, 'utf8')).toBe(text);
    await expect(
      store.setPrimaryNode({ instance: 'web1', node: 'node-x', timeoutMs: 1000 }, signal),
    ).rejects.toThrow(/node-x is not a node of instance web1/);
  });

  it('commits a migration to the third copy in one write: the third primary, the old primary secondary, the old secondary third', async () => {
    const example = await loadCluster('docs/cluster.example.yaml');
    const nodes = example.nodes.map((n) => ({ ...n, drbd: '9' as const }));
    const path = join(tempDir(), 'three.json');
    await writeFile(
      path,
      JSON.stringify({
        ...example,
        nodes: [
          ...nodes,
          { ...nodes[1]!, name: 'node-c', address: '10.99.0.3', replicationAddress: '10.99.1.3' },
        ],
        instances: example.instances.map((i) => ({
          ...i,
          thirdCopy: 'node-c',
          disks: i.disks.map((d) => ({ ...d, nodeIds: { 'node-a': 0, 'node-b': 1, 'node-c': 2 } })),
        })),
      }),
    );
    const store = clusterConfigEffects(path);
    expect(await store.getInstance({ instance: 'web1', timeoutMs: 1000 }, signal)).toMatchObject({
      thirdCopy: 'node-c',
      drbdVersion: '9',
    });
    await store.setPrimaryNode({ instance: 'web1', node: 'node-c', timeoutMs: 1000 }, signal);
    expect((await loadCluster(path)).instances[0]).toMatchObject({
      primary: 'node-c',
      secondary: 'node-a',
      thirdCopy: 'node-b',
    });
  });

  it('publishes a JSON Schema that accepts the example', async () => {
    const schema = JSON.parse(await readFile('docs/cluster.schema.json', 'utf8'));
    expect(schema.required).toEqual(['version', 'nodes', 'instances']);
    expect(ClusterFile.safeParse(parse(await readFile(example, 'utf8'))).success).toBe(true);
  });
});
