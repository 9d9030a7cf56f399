// What kbx's single link knows of Linux 6.12's scripts/link-vmlinux.sh
// (src/kernel/link/v6.12.ts), against the tree's own scripts: mksysmap's sed
// rules as the table prediction applies them, mksysmap and sorttable's
// commands as the script runs them, and the options the single link leaves
// to the script. No kernel is built here (kernel-612-llvm.test.ts links a
// 6.12 tinyconfig kernel through kbx make and compares it with plain make's).

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { route } from '../src/kernel/link/route.js';
import { LINK_6_1, LINK_6_12 } from '../src/kernel/link/versions.js';
import { cleanEnv } from './support/env.js';
import { tempDir } from './support/kbx.js';
import { kernelTree } from './support/kernel-tree.js';
import { linuxSource, unlessMissing } from './support/tools.js';

const tree = kernelTree('6.12');
const work = tempDir('link-612');
after(() => rmSync(work, { recursive: true, force: true }));

/** Names that each meet one of 6.12's mksysmap rules, a few that meet none, and near misses. */
const NAMES = [
  'start_kernel', '$x', '$d.12', '.Ltmp3', '__efistub_memcpy', '__efistub', '__pi_$x', '__pi_.L1', '__pi_foo', '__kvm_nvhe_$d',
  '__kvm_nvhe_.Lx', '__kvm_nvhe_foo', '__ThumbV7PILongThunk_foo', '__AArch64ADRPThunk_x', '__a_bThunk_x', '_Thunk_x',
  '__kcfi_typeid_foo', '__kvm_nvhe___kcfi_typeid_x', '__pi___kcfi_typeid_x', '__crc_foo', '__kstrtab_foo', '__kstrtabns_foo',
  'x_from_arm', 'x_from_arm_', 'x_from_thumb', 'x_veneer', 'x_veneerx', 'L0', 'L01', '_SDA_BASE_', '_SDA2_BASE_', '_SDA_BASE_x',
  'a.long_branch.b', 'a.plt_branch.b', 'long_branch', 'kallsyms_names', '__start_BTF', '__stop___ex_table',
];
const TYPES = ['T', 't', 'a', 'A', 'N', 'n', 'U', 'u', 'w', 'W', 'D', 'd', 'R', 'r', 'B', 'b', 'V', 'v'];

describe("Linux 6.12's link steps", { skip: unlessMissing(linuxSource(tree, '6.12')) }, () => {
  test("the table prediction drops exactly the lines 6.12's scripts/mksysmap deletes", () => {
    const lines = NAMES.flatMap((n) => TYPES.map((t) => `ffffffff81000000 ${t} ${n}`));
    const kept = new Set(execFileSync('sed', ['-f', join(tree!, 'scripts/mksysmap')], { input: lines.join('\n') + '\n', encoding: 'utf8' }).split('\n'));
    const wrong = lines.filter((l) => {
      const [, t, n] = l.split(' ');
      return LINK_6_12.mksysmapDrops(t!, n!) === kept.has(l);
    });
    assert.deepEqual(wrong, []);
    // 6.1's rules differ (no EFI stub, thunk or CFI names there: its kallsyms dropped those itself).
    assert.equal(LINK_6_1.mksysmapDrops('T', '__efistub_memcpy'), false);
    assert.equal(LINK_6_12.mksysmapDrops('T', '__efistub_memcpy'), true);
  });

  test('mksysmap and sorttable run as the script runs them', () => {
    // A fake nm that says which option it got; the tree's own mksysmap; a fake sorttable in objtree/scripts.
    mkdirSync(join(work, 'scripts'));
    writeFileSync(join(work, 'nm'), '#!/bin/sh\necho "ffffffff81000000 T nm$1"\necho "ffffffff81000001 t .Lx"\necho "0000000000000000 a abs"\n', { mode: 0o755 });
    writeFileSync(join(work, 'scripts/sorttable'), '#!/bin/sh\necho "$@" > sorted; cat "$2" >> sorted\n', { mode: 0o755 });
    const env = { PATH: process.env.PATH, NM: join(work, 'nm'), srctree: tree!, objtree: work };
    const inp = { cwd: work, args: [], env, enabled: new Set<string>() };
    const run = ([cmd, ...args]: string[]): number | null => spawnSync(cmd!, args, { cwd: work, env }).status;
    assert.equal(run(LINK_6_12.mksysmapArgv(inp, 'vmlinux', 'System.map')), 0);
    assert.equal(readFileSync(join(work, 'System.map'), 'utf8'), 'ffffffff81000000 T nm-n\n');
    assert.equal(run(LINK_6_12.sorttableArgv(inp)), 0);
    assert.equal(readFileSync(join(work, 'sorted'), 'utf8'), '-s .tmp_vmlinux.nm-sort vmlinux\nffffffff81000000 T nm-S\nffffffff81000001 t .Lx\n0000000000000000 a abs\n');
  });

  test('BTF, a link map and clang LTO are left to the script, each named; tinyconfig and kallsyms are not', () => {
    const misfit = (...on: string[]): string | undefined => LINK_6_12.misfit((o) => on.includes(o));
    assert.equal(misfit('CONFIG_X86_64', 'CONFIG_BUILDTIME_TABLE_SORT', 'CONFIG_MODULES'), undefined);
    assert.equal(misfit('CONFIG_KALLSYMS', 'CONFIG_KALLSYMS_ALL', 'CONFIG_KALLSYMS_ABSOLUTE_PERCPU'), undefined);
    assert.equal(misfit('CONFIG_DEBUG_INFO_BTF'), 'kbx does not link Linux 6.12 with BTF in one step yet');
    assert.equal(misfit('CONFIG_KALLSYMS', 'CONFIG_DEBUG_INFO_BTF', 'CONFIG_VMLINUX_MAP'), 'kbx does not link Linux 6.12 with BTF, a link map (CONFIG_VMLINUX_MAP) in one step yet');
    assert.match(misfit('CONFIG_LTO_CLANG') ?? '', /clang LTO/);
    assert.equal(LINK_6_12.resolvesBtfIds((o) => o === 'CONFIG_DEBUG_INFO_BTF'), true);
    assert.equal(LINK_6_1.resolvesBtfIds((o) => o === 'CONFIG_DEBUG_INFO_BTF'), false);
  });

  test("kbx make sends the link to kbx only with kallsyms on (else the script links once anyway), as the tree's make reads it", () => {
    // The override kbx make passes for this tree, through real make: a fake script for $<, a fake node for kbx.
    const dir = join(work, 'route');
    mkdirSync(join(dir, 'scripts'), { recursive: true });
    mkdirSync(join(dir, 'include/config'), { recursive: true });
    writeFileSync(join(dir, 'Makefile'), `srctree := ${dir}\nLD := ld\nKBUILD_LDFLAGS :=\nLDFLAGS_vmlinux :=\nvmlinux: scripts/link-vmlinux.sh ; +$(cmd_link_vmlinux)\n`);
    writeFileSync(join(dir, 'scripts/Makefile.build'), 'init/version-timestamp.o: ; @:\n');
    writeFileSync(join(dir, 'scripts/link-vmlinux.sh'), '#!/bin/sh\necho "script $1" > linked-by\n', { mode: 0o755 });
    writeFileSync(join(dir, 'node'), '#!/bin/sh\necho "kbx $2" > linked-by\n', { mode: 0o755 });
    const r = route(tree!, join(dir, 'node'), 'entry.js');
    assert.ok(r.routed);
    const linkedBy = (autoConf: string | undefined): string => {
      for (const f of ['include/config/auto.conf', 'linked-by']) rmSync(join(dir, f), { force: true });
      if (autoConf !== undefined) writeFileSync(join(dir, 'include/config/auto.conf'), autoConf);
      const m = spawnSync('make', ['-s', '-C', dir, ...r.args], { encoding: 'utf8', env: cleanEnv() });
      assert.equal(m.status, 0, m.stderr);
      return readFileSync(join(dir, 'linked-by'), 'utf8');
    };
    assert.equal(linkedBy('CONFIG_X86_32=y\nCONFIG_KALLSYMS=y\n'), 'kbx ld\n');
    assert.equal(linkedBy('CONFIG_X86_32=y\nCONFIG_KALLSYMS_ALL=y\n# CONFIG_KALLSYMS is not set\n'), 'script ld\n');
    assert.equal(linkedBy(undefined), 'script ld\n');
    // 6.1 is routed whatever its options (its single link is kbx's in every test tree).
    const r61 = route(kernelTree('6.1') ?? tree!);
    assert.ok(r61.routed && !r61.args[0]!.includes('auto.conf') === (r61.what.includes('6.1')));
  });
});
