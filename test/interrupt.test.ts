import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Runs the built CLI; `when(text, act)` acts once stdout has shown `text`. */
function cli(args: string[], when: [string, (kill: () => void) => void][] = []) {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const pending = [...when];
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    while (pending.length > 0 && stdout.includes(pending[0]![0]))
      pending.shift()![1](() => child.kill('SIGINT'));
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
}

describe('Ctrl-C during a run', () => {
  it('first explains what stopping now would leave, then stops on a second press and saves the world', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'drbd-migrate-')), 'w.json');
    const run = await cli(
      ['demo', '--world', file],
      [
        ['* starting memory transfer', (kill) => kill()],
        ['Press Ctrl-C again within 5 s to stop', (kill) => kill()],
      ],
    );
    expect(run.stdout).toMatch(
      /Ctrl-C: the run is in migrating\.transferring\.polling: Asking the source how the memory copy goes/,
    );
    expect(run.stdout).toMatch(/Stopping now: the disks may be left dual-master or standalone/);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(
      /stopped by the operator in migrating\.transferring\.polling; the cluster is saved as it is/,
    );
    const world = JSON.parse(await readFile(file, 'utf8'));
    expect(Object.keys(world.vms).filter((n) => world.vms[n].web1)).toEqual(['node-a', 'node-b']);
    const cleanup = await cli(['migrate', 'web1', '--world', file, '--cleanup', '--quiet']);
    expect(cleanup.code).toBe(0);
    expect(cleanup.stdout).toMatch(/^cleaned: web1 is primary on node-a/);
  });
});
