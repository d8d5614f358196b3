import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './processes.js';
import { tempDir } from './tmp.js';

describe('Ctrl-C during a run', () => {
  it('aborts at the next safe point and reverts; a second press only says what is in flight', async () => {
    const dir = tempDir('drbd-migrate-');
    const file = join(dir, 'w.json');
    const run = await cli(
      ['demo', '--world', file],
      [
        ['* starting memory transfer', (kill) => kill()],
        ['It takes effect when the step in flight', (kill) => kill()],
      ],
    );
    expect(run.stdout).toMatch(/Ctrl-C: abort requested in migrating\.transferring\.polling/);
    expect(run.stdout).toMatch(
      /ends; then if the memory copy has passed the point of no return, the run refuses it and finishes what it started; otherwise the run goes to aborting \(Stopping a failed handover/,
    );
    // Words, not the machine's internal names.
    expect(run.stdout).not.toMatch(/pastPointOfNoReturn/);
    // Where the run is by the second press depends on how fast this process gets the signal (on a
    // loaded machine the poll may have ended and the abort begun): it names its state, and the
    // step in flight if there is one.
    expect(run.stdout).toMatch(
      /Ctrl-C again: still in [\w.]+(, waiting for \w+ on [\w -]+, running for [\d.]+ s; its deadline is in [\d.]+ s)?\./,
    );
    expect(run.stdout).toMatch(/will not be killed in the middle of a step/);
    // The demo keeps no journal: it must not advise a resume that cannot work.
    expect(run.stdout).not.toMatch(/then 'drbd-migrate resume'/);
    expect(run.stdout).toContain('outcome: reverted');
    expect(run.code).toBe(1);
    const world = JSON.parse(await readFile(file, 'utf8'));
    expect(Object.keys(world.vms).filter((n) => world.vms[n].web1)).toEqual(['node-a']);
    expect(world.violations).toEqual([]);
  });

  it('SIGTERM as a migration begins: refused with nothing touched, and named as what it was', async () => {
    const dir = tempDir('drbd-migrate-');
    const file = join(dir, 'w.json');
    expect((await cli(['init', '--world', file])).code).toBe(0);
    const before = await readFile(file, 'utf8');
    const run = await cli(
      ['migrate', 'web1', '--world', file, '--state-dir', join(dir, 'state')],
      [['Migrating instance web1', (kill) => kill('SIGTERM')]],
    );
    expect(run.stdout).toMatch(/SIGTERM: abort requested in checkingPrereqs/);
    expect(run.stderr).toMatch(/rejected: Aborted by the operator; nothing was touched/);
    expect(run.code).toBe(2);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('treats SIGTERM as an abort too', async () => {
    const run = await cli(['demo'], [['* changing disks into dual-master mode', (kill) => kill('SIGTERM')]]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('outcome: reverted');
  });
});
