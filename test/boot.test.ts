// The kernel kbx linked boots, and its symbol table is right where it counts:
// in the running kernel. The link test's tree (test/support/link-tree.ts) is
// linked by the stock script, and then by `kbx make` after four body-only
// edits of a vmlinux function (so that the fourth relink finds every module's
// BTF line in kbx's cache, keyed on vmlinux's .BTF: issue 13); each bzImage
// boots in QEMU (TCG, serial console, nokaslr) with a busybox initramfs that
// prints /proc/kallsyms and asks sysrq for a backtrace of every CPU, and the
// kbx kernel's also loads the modules kbx restored. Each
// kernel's /proc/kallsyms is its own System.map (as far as kallsyms keeps
// symbols), the kbx kernel's backtrace names the functions the write to
// /proc/sysrq-trigger went through, with offsets and sizes that agree with
// System.map, and it accepts the restored modules' BTF. The edit stays in
// the tree's source copy (the next run edits it again).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadBuild } from '../src/builds/archive.js';
import type { LineRecord } from '../src/builds/record.js';
import type { LinkReport } from '../src/kernel/link/events.js';
import { between, boot, bootNeeds, cpioNewc, initramfs, type Boot, type CpioEntry } from './support/boot.js';
import { assertKallsymsInMap, assertSysrqBacktrace, bootInit, consoleKallsyms, KALLSYMS_BEGIN, KALLSYMS_END, SYSRQ } from './support/boot-checks.js';
import { Kbx } from './support/kbx.js';
import { cKallsyms, kernelTree } from './support/kernel-tree.js';
import { runCKallsyms } from './support/kallsyms-oracle.js';
import { linuxSource, program, unlessMissing } from './support/tools.js';
import { captureOverride, linkTree, make, readSystemMap, replaceSource, runStockLink, type LinkTree, type MapLine } from './support/link-tree.js';

const tree = kernelTree();
const work = mkdtempSync(join(tmpdir(), 'kbx-boot-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('a newc cpio', { skip: unlessMissing(program('cpio', 'cpio')) }, () => {
  test('lists as written, device node and symlink included', () => {
    const a = cpioNewc([
      { kind: 'dir', path: 'dev' },
      { kind: 'char', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: 'init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      { kind: 'symlink', path: 'sh', target: 'busybox' },
    ]);
    assert.equal(a.length % 4, 0);
    const r = spawnSync('cpio', ['-itv', '--quiet'], { input: a, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    assert.deepEqual(rows.map((c) => c[0]), ['drwxr-xr-x', 'crw-------', '-rwxr-xr-x', 'lrwxrwxrwx']);
    assert.deepEqual(rows.map((c) => c.slice(c.indexOf('->') < 0 ? -1 : -3).join(' ')), ['dev', 'dev/console', 'init', 'sh -> busybox']);
    assert.match(r.stdout, /5,\s+1/);
  });
});

const BEGIN = KALLSYMS_BEGIN;
const END = KALLSYMS_END;
const BTF_BEGIN = 'KBX-BTF-BEGIN';
const BTF_END = 'KBX-BTF-END';
const MODULES_BEGIN = 'KBX-MODULES-BEGIN';
const MODULES_END = 'KBX-MODULES-END';

// kptr_restrict 0 and root (CAP_SYSLOG) make /proc/kallsyms show addresses
// (kallsyms_show_value in 6.1). Kernel messages stay off the console while
// the list prints, then come back for the backtrace. initcall_debug logs
// (not to the console) that kfunc_init, whose kfunc registration parses
// vmlinux's BTF, returned 0; dmesg shows it, and any BTF complaint. The
// modules in /lib/modules (the kbx kernel's) are loaded after the symbol
// list (their symbols are in no System.map); the kernel registers a module's
// BTF in /sys/kernel/btf, or refuses the module ("failed to validate module
// [name] BTF") when its split BTF does not fit vmlinux's.
const INIT = bootInit({
  sysfs: true,
  afterList: `echo ${MODULES_BEGIN}
for m in /lib/modules/*.ko; do [ -e "$m" ] && insmod "$m" && echo "loaded $(basename "$m" .ko)"; done
ls /sys/kernel/btf
echo ${MODULES_END}
echo ${BTF_BEGIN}
dmesg | grep -e kfunc_init -e BPF -e BTF
echo ${BTF_END}
`,
});
// No ACPI in this config, so poweroff would halt and leave QEMU running;
// a reboot ends QEMU under -no-reboot (and panic=-1 covers init dying).
const APPEND = 'console=ttyS0 nokaslr panic=-1 initcall_debug';

interface Kernel {
  dir: string;
  map: MapLine[];
  report?: LinkReport;
  boot?: Boot;
}

// A vmlinux function whose body the kbx kernel's edits change (code, not
// types), as in test/kernel-module-btf.test.ts.
const BODY_FILE = 'lib/hexdump.c';
const BODY_AT = 'int hex_to_bin(unsigned char ch)\n{\n';
const isBtfLine = (l: LineRecord): boolean => / --btf_base vmlinux \S+\.ko; /.test(l.command);

describe('booting the stock and the kbx kernel', { skip: unlessMissing(linuxSource(tree), ...bootNeeds()) }, () => {
  let lt: LinkTree;
  const kernels: Record<'stock' | 'kbx', Kernel> = { stock: { dir: join(work, 'stock'), map: [] }, kbx: { dir: join(work, 'kbx'), map: [] } };
  const kbx = new Kbx('boot');
  /** The kbx kernel's modules (modules.order's, as .ko), and their BTF lines in each `kbx make`. */
  let modules: string[] = [];
  const btfLines: LineRecord[][] = [];

  /** Keeps what the boot needs of the tree's last build. */
  function keep(k: Kernel): void {
    mkdirSync(k.dir, { recursive: true });
    for (const f of ['arch/x86/boot/bzImage', 'System.map', 'vmlinux']) copyFileSync(join(lt.out, f), join(k.dir, f.split('/').pop()!));
    k.map = readSystemMap(join(k.dir, 'System.map'));
  }

  /** The stock kernel: the tree linked by its script, packed by make. */
  function buildStock(): void {
    const r = runStockLink(lt.out, lt.call);
    assert.equal(r.status, 0, r.stderr);
    // vmlinux is newer than its prerequisites and its recipe is unchanged: make only packs it.
    const out = make(lt.src, [`O=${lt.out}`, '-j2', 'bzImage', captureOverride()]);
    assert.doesNotMatch(out, /\bLD {6}vmlinux\b/, 'make relinked vmlinux');
    keep(kernels.stock);
  }

  /**
   * The kbx kernel: `kbx make` after each of four body-only edits of a
   * vmlinux function. Each relinks vmlinux (kbx's single link, BTF without
   * -j) and reruns every module's BTF line. On a fresh tree the first three
   * run: the first cannot be stored (kbx never hashed the .ko plain make
   * left), and pahole rewrites the .BTF of a .ko its cold build encoded twice
   * before the .ko stops changing (bench/module-btf.ts shows the same); the
   * fourth finds them in kbx's cache (a tree whose .ko files are past those
   * rewrites, from an earlier run, hits sooner). kbx's first link of a tree
   * with BTF makes the BTF link (no size to reserve room for); the last
   * writes BTF into room.
   */
  function buildKbx(): void {
    const k = kernels.kbx;
    mkdirSync(k.dir, { recursive: true });
    const rep = join(k.dir, 'report.json');
    const original = readFileSync(join(tree!, BODY_FILE), 'utf8');
    assert.ok(original.includes(BODY_AT), `${BODY_FILE} has no ${JSON.stringify(BODY_AT)}`);
    for (const n of [1, 2, 3, 4]) {
      replaceSource(lt, BODY_FILE, original.replace(BODY_AT, `${BODY_AT}\tasm volatile(".rept ${n}\\n\\tnop\\n\\t.endr");\n`));
      const last = n === 4;
      const r = kbx.make(lt.src, [`O=${lt.out}`, '-j2', last ? 'bzImage' : 'vmlinux', 'modules'], last ? { KBX_LINK_REPORT: rep } : {});
      assert.equal(r.status, 0, `kbx make after edit ${n} failed:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-3000)}`);
      assert.equal(kbx.run(['builds']).status, 0); // waits for the build's record
      btfLines.push(loadBuild(kbx.dir).lines.filter(isBtfLine));
    }
    kbx.stop();
    k.report = JSON.parse(readFileSync(rep, 'utf8')) as LinkReport;
    keep(k);
    modules = readFileSync(join(lt.out, 'modules.order'), 'utf8').split('\n').filter(Boolean).map((o) => o.replace(/\.o$/, '.ko'));
  }

  before(async () => {
    lt = linkTree(tree!);
    buildStock();
    buildKbx();
    // The stock kernel loads no module: the tree's modules are the kbx kernel's.
    const ko: CpioEntry[] = [{ kind: 'dir', path: 'lib' }, { kind: 'dir', path: 'lib/modules' }, ...modules.map((m): CpioEntry => ({ kind: 'file', path: `lib/modules/${m.split('/').pop()!}`, data: readFileSync(join(lt.out, m)) }))];
    writeFileSync(join(kernels.stock.dir, 'initrd.cpio'), initramfs(INIT));
    writeFileSync(join(kernels.kbx.dir, 'initrd.cpio'), initramfs(INIT, ko));
    for (const k of Object.values(kernels)) {
      k.boot = await boot({ kernel: join(k.dir, 'bzImage'), initrd: join(k.dir, 'initrd.cpio'), append: APPEND });
      writeFileSync(join(k.dir, 'console.log'), k.boot.console);
    }
  });

  const btf = (): boolean => readFileSync(join(lt.out, '.config'), 'utf8').includes('\nCONFIG_DEBUG_INFO_BTF=y');

  test('the kbx kernel was linked once (BTF written into room where pahole can), the stock one by the script', () => {
    assert.equal(kernels.kbx.report?.mode, 'single');
    assert.equal(kernels.kbx.report?.links, kernels.kbx.report?.btf === 'linked' ? 2 : 1);
    if (btf()) assert.ok(kernels.kbx.report?.btf, 'no BTF mode reported');
    assert.ok(kernels.stock.map.length > 10000);
    // Linked differently, the two System.maps are not the same file.
    assert.notDeepEqual(readFileSync(join(kernels.kbx.dir, 'System.map')), readFileSync(join(kernels.stock.dir, 'System.map')));
  });

  for (const which of ['stock', 'kbx'] as const) {
    test(`the ${which} kernel boots and its /proc/kallsyms is its System.map`, () => {
      const k = kernels[which];
      const b = k.boot!;
      assert.equal(b.killed, false, `QEMU was killed; console:\n${b.console.slice(-3000)}`);
      const ks = consoleKallsyms(b.console);
      // Every symbol the kernel lists is a System.map line (per-CPU ones shown absolute).
      const percpu = assertKallsymsInMap(ks, k.map);
      assert.ok(percpu > 0, 'no per-CPU symbols listed');

      // And it lists all of them: as many as the tree's own scripts/kallsyms
      // keeps from that System.map for this configuration.
      const c = runCKallsyms(cKallsyms(tree!), join(k.dir, 'System.map'), { allSymbols: true, absolutePercpu: true, baseRelative: true });
      assert.equal(c.status, 0, c.stderr);
      const n = /kallsyms_num_syms:\s*\n\s*\.long\s+(\d+)/.exec(c.asm);
      assert.ok(n, 'no kallsyms_num_syms in the C tool output');
      assert.equal(ks.length, Number(n[1]));
    });
  }

  // Without pahole the tree has no CONFIG_DEBUG_INFO_BTF.
  const noBtf = unlessMissing(program('pahole', 'dwarves'));
  for (const which of ['stock', 'kbx'] as const) {
    test(`the ${which} kernel parses its BTF at boot`, { skip: noBtf }, () => {
      const c = kernels[which].boot!.console;
      const lines = between(c, BTF_BEGIN, BTF_END);
      assert.ok(lines, `no BTF section on the console:\n${c.slice(-3000)}`);
      assert.ok(lines.some((l) => /initcall kfunc_init\+0x[0-9a-f]+\/0x[0-9a-f]+ returned 0 /.test(l)), `kfunc_init did not return 0:\n${lines.join('\n')}`);
      // Initcalls of BTF's own that returned 0 are no complaint.
      const complaints = lines.filter((l) => /BPF:|BTF|btf/.test(l) && !/ initcall \S+ returned 0 /.test(l));
      assert.deepEqual(complaints, [], 'the kernel complained about its BTF');
    });
  }

  test('after the fourth body-only edit, every module BTF line of kbx make is a hit', { skip: noBtf }, (t) => {
    assert.ok(modules.length >= 2, `${modules.length} modules`);
    const tally = btfLines.map((ls) => `${ls.filter((l) => l.kind === 'hit').length}/${ls.length}`);
    t.diagnostic(`module BTF lines, hits/lines per kbx make: ${tally.join(', ')}; not stored: ${btfLines.flat().filter((l) => l.reason).map((l) => l.reason).join(', ') || 'none'}`);
    assert.deepEqual(btfLines.map((ls) => ls.length), [1, 2, 3, 4].map(() => modules.length), `module BTF lines per kbx make (hits/lines: ${tally.join(', ')})`);
    assert.deepEqual(btfLines[3]!.filter((l) => l.kind !== 'hit').map((l) => `${l.kind} ${l.command.slice(0, 160)}`), [], `hits/lines per kbx make: ${tally.join(', ')}`);
  });

  test('the kbx kernel loads the modules kbx restored and accepts their BTF', { skip: noBtf }, () => {
    const c = kernels.kbx.boot!.console;
    const lines = between(c, MODULES_BEGIN, MODULES_END);
    assert.ok(lines, `no module section on the console:\n${c.slice(-3000)}`);
    const names = modules.map((m) => m.split('/').pop()!.replace(/\.ko$/, ''));
    for (const m of names) {
      assert.ok(lines.includes(`loaded ${m}`), `${m} did not load:\n${lines.join('\n')}`);
      // ls lists /sys/kernel/btf's entries, several to a line on no terminal or one each.
      assert.ok(lines.some((l) => l.split(/\s+/).includes(m)), `no /sys/kernel/btf/${m}:\n${lines.join('\n')}`);
    }
    assert.doesNotMatch(c, /failed to validate module/);
  });

  test('a backtrace from the kbx kernel names the functions that ran', () => {
    const k = kernels.kbx;
    assertSysrqBacktrace(k.boot!.console, k.map);
  });
});
