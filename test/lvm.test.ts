import { describe, expect, it } from 'vitest';
import { LvmParseError, lvm, missingVolumes, parseReport } from '../src/drivers/lvm.js';
import { shellLine } from '../src/ssh/shell.js';

/**
 * The LVM driver's commands and its reading of their answers. The answer below is written in the
 * format `vgs`/`lvs --noheadings --units m --nosuffix --separator :` print (lvm2 2.03, Debian 12);
 * no test here has run it against a real volume group yet (the DRBD VMs have no LVM).
 */
const REPORT = `  xenvg:20476.00:4092.00
---
  web1-disk0_data:10240.00
  web1-disk0_meta:128.00
  root:6016.00
---
dm-0
dm-1
drbd0
drbd12
loop0
vda
`;

describe('the LVM driver', () => {
  it('reads the volume group, its volumes and the DRBD minors in use', () => {
    expect(parseReport(REPORT, 'xenvg')).toEqual({
      volumeGroup: 'xenvg',
      sizeMiB: 20476,
      freeMiB: 4092,
      volumes: [
        { name: 'web1-disk0_data', sizeMiB: 10240 },
        { name: 'web1-disk0_meta', sizeMiB: 128 },
        { name: 'root', sizeMiB: 6016 },
      ],
      minors: [0, 12],
    });
  });

  it('refuses an answer that is not a report of that volume group', () => {
    expect(() => parseReport('  other:1.00:1.00\n---\n---\n', 'xenvg')).toThrow(LvmParseError);
    expect(() => parseReport('Volume group "xenvg" not found', 'xenvg')).toThrow(/not a storage report/);
  });

  it('makes only the volumes that are missing: a copy is never made twice', () => {
    const storage = parseReport(REPORT, 'xenvg');
    expect(missingVolumes(storage, 'web1-disk0', 10240)).toEqual({ data: null, meta: null });
    expect(missingVolumes(storage, 'web1-disk1', 4096)).toEqual({
      data: { name: 'web1-disk1_data', sizeMiB: 4096 },
      meta: { name: 'web1-disk1_meta', sizeMiB: 128 },
    });
  });

  it('spells lvcreate and lvremove with every name an argument, never a shell word', () => {
    expect(shellLine(lvm.create('xenvg', 'web1-disk1_data', 4096))).toBe(
      'lvcreate --yes --wipesignatures y -L 4096m -n web1-disk1_data xenvg',
    );
    expect(shellLine(lvm.remove('xenvg', ['web1-disk1_data', 'web1-disk1_meta']))).toBe(
      'lvremove -f xenvg/web1-disk1_data xenvg/web1-disk1_meta',
    );
    // The volume group reaches the report's script as its argument, not inside the script.
    expect(lvm.report('xenvg').at(-1)).toBe('xenvg');
  });
});
