// kallsyms in TypeScript against the C tools of the 6.1 and 6.12 trees: for
// the same symbol map and options, each C tool's assembled .rodata and our
// laid-out tables for its version must be the same bytes, and both must
// decode to the same symbols.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ElfFile } from '../src/elf/elf-file.js';
import {
  decodeTables,
  elfTableSource,
  emitKallsyms,
  imageSource,
  kallsyms,
  KallsymsError,
  KALLSYMS_6_12,
  layoutTables,
  type KallsymsOptions,
  type KallsymsVersion,
} from '../src/kernel/kallsyms/index.js';
import { selectSymbols } from '../src/kernel/kallsyms/symbols.js';
import { KALLSYMS_6_1 } from '../src/kernel/kallsyms/versions.js';

const readMap = KALLSYMS_6_1.readMap;
import { cKallsyms, kernelTree } from './support/kernel-tree.js';
import { linkTree, reproducibleBtf, runStockLink } from './support/link-tree.js';
import { linuxSource, program, unlessMissing } from './support/tools.js';
import { assertStockTablesAreOurs } from './support/stock-tables.js';
import { syntheticMap } from './support/kallsyms-synthetic.js';
import {
  assemble,
  optionCombinations,
  optionName,
  runCKallsyms,
  TARGETS,
  type AsmTarget,
} from './support/kallsyms-oracle.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/kallsyms/', import.meta.url));
const tree = kernelTree();
const tool = tree ? cKallsyms(tree) : undefined;
const tree612 = kernelTree('6.12');
const tool612 = tree612 ? cKallsyms(tree612) : undefined;
const work = mkdtempSync(join(tmpdir(), 'kbx-kallsyms-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

function params(t: AsmTarget, given: KallsymsOptions, v: KallsymsVersion) {
  const o = v.effective(given);
  return { wordSize: t.wordSize, endian: t.endian, baseRelative: !!o.baseRelative, absolutePercpu: !!o.absolutePercpu, ltoClang: !!o.ltoClang };
}

let runs = 0;

/**
 * Runs both tools on `mapPath` and compares bytes and decoded symbols; or,
 * when the C tool refuses the input, checks that we refuse it the same way.
 */
function compareWithC(mapPath: string, o: KallsymsOptions, target: AsmTarget, v: KallsymsVersion = KALLSYMS_6_1): 'same-tables' | 'both-refused' {
  const input = readFileSync(mapPath);
  const c = runCKallsyms(v === KALLSYMS_6_1 ? tool! : tool612!, mapPath, o);
  let mine;
  try {
    mine = kallsyms(input, o, target, v);
  } catch (e) {
    assert.ok(e instanceof KallsymsError, String(e));
    assert.notEqual(c.status, 0, `C tool succeeded where we failed: ${e.message}`);
    assert.ok(c.stderr.includes(e.message), `C says ${c.stderr}, we say ${e.message}`);
    return 'both-refused';
  }
  assert.equal(c.status, 0, `C tool failed: ${c.stderr}`);
  assert.equal(mine.diagnostics.map((d) => `${d}\n`).join(''), c.stderr);

  const text = mine.tables.text;
  const base = `run${runs++}`;
  const cObj = ElfFile.parse(assemble(work, `${base}-c`, c.asm, target, text));
  const cRodata = cObj.sectionData(cObj.section('.rodata')!);
  const { image, tables } = layoutTables(mine.tables);
  assert.equal(Buffer.compare(Buffer.from(cRodata), image), 0, '.rodata differs from the C tool');

  const p = params(target, o, v);
  const fromC = decodeTables(elfTableSource(cObj), p);
  const fromUs = decodeTables(imageSource(image, tables), p);
  assert.equal(fromUs.symbols.length, fromC.symbols.length);
  assert.deepEqual(fromUs.symbols, fromC.symbols);
  assert.deepEqual(fromUs.tokens, fromC.tokens);

  // Our .S wrapper around the blob assembles to the same section, symbols and values.
  const blobPath = join(work, `${base}.bin`);
  const emitted = emitKallsyms(mine.tables, { blobPath });
  writeFileSync(blobPath, emitted.blob);
  const ourObj = ElfFile.parse(assemble(work, `${base}-ours`, emitted.asm, target, text));
  assert.equal(Buffer.compare(Buffer.from(ourObj.sectionData(ourObj.section('.rodata')!)), Buffer.from(cRodata)), 0);
  for (const t of tables) {
    const ours = ourObj.symbol(t.name);
    const theirs = cObj.symbol(t.name);
    assert.ok(ours && theirs, t.name);
    assert.equal(ours.value, theirs.value, t.name);
    assert.equal(ours.bind, theirs.bind, t.name);
  }
  return 'same-tables';
}

describe('kallsyms matches the 6.1 C tool', { skip: unlessMissing(linuxSource(tree)) }, () => {
  const fixture = join(FIXTURES, 'vmlinux-i386-tinyconfig.nm');
  const synthetic = join(work, 'synthetic.map');
  writeFileSync(synthetic, syntheticMap(3000));

  // Without SMP the i386 percpu range is empty at 0xc114d000: under
  // --absolute-percpu the symbols there are "absolute" and too big for the
  // 31 bits base-relative tables give them, so both tools refuse.
  const refusedI386 = (o: KallsymsOptions) => !!(o.absolutePercpu && o.baseRelative && o.allSymbols);
  for (const o of optionCombinations()) {
    test(`real i386 tinyconfig vmlinux, ${optionName(o)}`, () => {
      assert.equal(compareWithC(fixture, o, TARGETS.le32), refusedI386(o) ? 'both-refused' : 'same-tables');
    });
  }
  // x86_64-like percpu symbols sit at 0: base-relative tables can only hold
  // them with --absolute-percpu.
  const refused64 = (o: KallsymsOptions) => !!(o.allSymbols && o.baseRelative && !o.absolutePercpu);
  for (const o of optionCombinations()) {
    test(`synthetic 64-bit map, ${optionName(o)}`, () => {
      assert.equal(compareWithC(synthetic, o, TARGETS.le64), refused64(o) ? 'both-refused' : 'same-tables');
    });
  }
  const fixture64 = join(FIXTURES, 'vmlinux-x86_64-tinyconfig-smp.nm');
  for (const o of optionCombinations()) {
    test(`real x86_64 SMP tinyconfig vmlinux, ${optionName(o)}`, () => {
      assert.equal(compareWithC(fixture64, o, TARGETS.le64), refused64(o) ? 'both-refused' : 'same-tables');
    });
  }
  test('synthetic map with --lto-clang (names sorted without ".llvm.<hash>")', () => {
    assert.equal(compareWithC(synthetic, { allSymbols: true, absolutePercpu: true, baseRelative: true, ltoClang: true }, TARGETS.le64), 'same-tables');
  });

  const be32 = TARGETS.be32;
  const be64 = TARGETS.be64;
  test('big-endian 32-bit (powerpc) tables', { skip: unlessMissing(program('powerpc-linux-gnu-as', 'binutils-powerpc-linux-gnu')) }, () => {
    assert.equal(compareWithC(fixture, { baseRelative: true }, be32), 'same-tables');
    assert.equal(compareWithC(fixture, { allSymbols: true }, be32), 'same-tables');
  });
  test('big-endian 64-bit (mips64) tables', { skip: unlessMissing(program('mips-linux-gnu-as', 'binutils-mips-linux-gnu')) }, () => {
    assert.equal(compareWithC(synthetic, { allSymbols: true, absolutePercpu: true, baseRelative: true }, be64), 'same-tables');
    assert.equal(compareWithC(synthetic, { allSymbols: true }, be64), 'same-tables');
  });

  test('more than 65536 symbols (three-byte name sequence numbers)', () => {
    const big = join(work, 'big.map');
    writeFileSync(big, syntheticMap(70000, 7));
    assert.equal(compareWithC(big, { allSymbols: true, absolutePercpu: true, baseRelative: true }, TARGETS.le64), 'same-tables');
  });
  test('a name holding a quote or a backslash is refused: the C tool prints tokens raw in .asciz', () => {
    for (const [i, n] of ['q"uote', 'back\\slash'].entries()) {
      const p = join(work, `asciz-61-${i}.syms`);
      writeFileSync(p, Buffer.from(`ffffffff81000000 T _stext\nffffffff81000008 t ${n}\nffffffff81000010 T _etext\n`, 'latin1'));
      assert.throws(() => kallsyms(readFileSync(p), { baseRelative: true }, TARGETS.le64, KALLSYMS_6_1), { code: 'KALLSYMS_BAD_NAME' }, JSON.stringify(n));
      // What the stock script would link: its .S does not assemble, or not to these names.
      const c = runCKallsyms(tool!, p, { baseRelative: true });
      assert.equal(c.status, 0);
      assert.throws(() => {
        assemble(work, `asciz-61-${i}`, c.asm, TARGETS.le64, 0xffffffff81000000n);
        assert.fail('assembled');
      }, JSON.stringify(n));
    }
  });
  test('a name holding "*/" or a carriage return is kept: 6.1 prints names as bytes, with no comment, and reads names up to a blank', () => {
    const p = join(work, 'comment-61.syms');
    writeFileSync(p, 'ffffffff81000000 T _stext\nffffffff81000008 t ends*/comment\nffffffff8100000c t carriage\r\nffffffff81000010 T _etext\n');
    assert.equal(compareWithC(p, { baseRelative: true }, TARGETS.le64), 'same-tables');
  });
});

/** 6.12's option sets: there is no --base-relative (always) and no --lto-clang. */
const options612: KallsymsOptions[] = [{}, { allSymbols: true }, { absolutePercpu: true }, { allSymbols: true, absolutePercpu: true }];

describe('kallsyms matches the 6.12 C tool', { skip: unlessMissing(linuxSource(tree612, '6.12')) }, () => {
  // 6.12's tool reads mksysmap's output: the real maps go through the tree's own mksysmap first.
  const sysmap = (nm: string, out: string): string => {
    writeFileSync(out, execFileSync('sed', ['-f', join(tree612!, 'scripts/mksysmap'), nm], { maxBuffer: 1 << 30 }));
    return out;
  };
  const i386 = sysmap(join(FIXTURES, 'vmlinux-i386-tinyconfig.nm'), join(work, 'i386-612.syms'));
  const x86_64 = sysmap(join(FIXTURES, 'vmlinux-x86_64-tinyconfig-smp.nm'), join(work, 'x86_64-612.syms'));
  const synthetic = join(work, 'synthetic-612.syms');
  writeFileSync(synthetic, syntheticMap(3000, 1, 'mksysmap'));
  const v = KALLSYMS_6_12;

  // i386 without SMP: percpu symbols at 0xc114d000 are "absolute" and too
  // big for 31 bits under --absolute-percpu; kept only with --all-symbols.
  for (const o of options612) {
    test(`real i386 tinyconfig vmlinux, ${optionName(o)}`, () => {
      assert.equal(compareWithC(i386, o, TARGETS.le32, v), o.allSymbols && o.absolutePercpu ? 'both-refused' : 'same-tables');
    });
  }
  // x86_64: percpu symbols at 0 fit the always base-relative tables only as absolute values.
  const refused64 = (o: KallsymsOptions) => !!(o.allSymbols && !o.absolutePercpu);
  for (const o of options612) {
    test(`real x86_64 SMP tinyconfig vmlinux, ${optionName(o)}`, () => {
      assert.equal(compareWithC(x86_64, o, TARGETS.le64, v), refused64(o) ? 'both-refused' : 'same-tables');
    });
    test(`synthetic 64-bit map, ${optionName(o)}`, () => {
      assert.equal(compareWithC(synthetic, o, TARGETS.le64, v), refused64(o) ? 'both-refused' : 'same-tables');
    });
  }
  test('big-endian 32-bit (powerpc) and 64-bit (mips64) tables', { skip: unlessMissing(program('powerpc-linux-gnu-as', 'binutils-powerpc-linux-gnu'), program('mips-linux-gnu-as', 'binutils-mips-linux-gnu')) }, () => {
    assert.equal(compareWithC(i386, {}, TARGETS.be32, v), 'same-tables');
    assert.equal(compareWithC(synthetic, { allSymbols: true, absolutePercpu: true }, TARGETS.be64, v), 'same-tables');
  });
  test('more than 65536 symbols (three-byte name sequence numbers)', () => {
    const big = join(work, 'big-612.syms');
    writeFileSync(big, syntheticMap(70000, 7, 'mksysmap'));
    assert.equal(compareWithC(big, { allSymbols: true, absolutePercpu: true }, TARGETS.le64, v), 'same-tables');
  });
  test('an empty map (the script runs the tool on one first) gives empty tables, as the C tool does', () => {
    const empty = join(work, 'empty-612.syms');
    writeFileSync(empty, '');
    assert.equal(compareWithC(empty, {}, TARGETS.le64, v), 'same-tables');
    assert.equal(compareWithC(empty, {}, TARGETS.le32, v), 'same-tables');
    assert.equal(kallsyms(Buffer.alloc(0), {}, { wordSize: 8, endian: 'little' }, v).tables.numSyms, 0);
  });
  test('a line of any other shape is "line format error" for both', () => {
    const lines = ['', '                 U printk', '10\tT tab', '10  T two_blanks', '10 T\ttab_after_type', `10 \u00e9 latin1_type`, 'T no_address', '0x T x', '10 T', '- 10 T x'];
    for (const [i, l] of lines.entries()) {
      const p = join(work, `bad-${i}.syms`);
      writeFileSync(p, Buffer.from(`ffffffff81000000 T _stext\n${l}\nffffffff81000010 T _etext\n`, 'latin1'));
      assert.equal(compareWithC(p, {}, TARGETS.le64, v), 'both-refused', JSON.stringify(l));
    }
  });
  test('a kept name holding "*/" is refused: the C tool prints it in a comment, and its .S does not assemble', () => {
    const p = join(work, 'comment-612.syms');
    writeFileSync(p, 'ffffffff81000000 T _stext\nffffffff81000008 t ends*/comment\nffffffff81000010 T _etext\n');
    assert.throws(() => kallsyms(readFileSync(p), {}, TARGETS.le64, v), { code: 'KALLSYMS_BAD_NAME' });
    const c = runCKallsyms(tool612!, p, {});
    assert.equal(c.status, 0);
    assert.throws(() => assemble(work, 'comment-612', c.asm, TARGETS.le64, 0xffffffff81000000n));
  });
  test('so is a name holding a quote, a backslash or a carriage return (the assembler reads them as other bytes)', () => {
    for (const n of ['q"uote', 'back\\slash', 'carriage\r']) {
      const map = Buffer.from(`ffffffff81000000 T _stext\nffffffff81000008 t ${n}\nffffffff81000010 T _etext\n`, 'latin1');
      assert.throws(() => kallsyms(map, {}, TARGETS.le64, v), { code: 'KALLSYMS_BAD_NAME' }, JSON.stringify(n));
    }
  });
  test('the 6.1 options 6.12 does not take are not passed through: --base-relative is always on, --lto-clang gone', () => {
    assert.deepEqual(v.effective({ baseRelative: false, ltoClang: true }), { allSymbols: false, absolutePercpu: false, baseRelative: true, ltoClang: false });
  });
});

describe('kallsyms symbol selection', () => {
  const map = readMap(syntheticMap(3000));
  const names = new Set(map.symbols.map((s) => s.name));

  test('ignored names, prefixes, suffixes, types and absolutes are dropped while reading', () => {
    for (const n of ['kallsyms_names', '_SDA_BASE_', '__efistub_foo', 'thing_veneer', 'a.long_branch.b', 'debug_thing', 'undefined_with_address', 'ignored_absolute', 'printk']) {
      assert.ok(!names.has(n), n);
    }
    assert.ok(names.has('__gp'), 'absolute __gp is kept');
  });

  test('names of 512 bytes or more are reported and dropped', () => {
    assert.ok(names.has('max_' + 'y'.repeat(506)));
    assert.ok(!names.has('reported_' + 'y'.repeat(503)));
    assert.ok(map.diagnostics.some((d) => d.startsWith(`Symbol reported_yyy`) && d.includes('(512 >= 512)')));
    assert.ok(!names.has('toolong_' + 'z'.repeat(520)));
    assert.ok(map.diagnostics.some((d) => d.startsWith('Symbol toolong_')));
  });

  test('the rest of a name longer than the scan buffer is read as the next record', () => {
    assert.ok(names.has('leftover_symbol'));
    assert.equal(map.symbols.find((s) => s.name === 'leftover_symbol')?.lo, 0xabc);
  });

  test('without --all-symbols only text and init text remain, minus symbols at _etext/_einittext', () => {
    const sel = selectSymbols(map, {}, KALLSYMS_6_1);
    const kept = new Set(sel.symbols.map((s) => s.name));
    assert.ok(kept.has('_etext') && kept.has('_einittext') && kept.has('_stext'));
    assert.ok(!kept.has('at_etext_dropped') && !kept.has('at_einittext_dropped'));
    assert.ok(!kept.has('__per_cpu_start') && !kept.has('__bss_stop'));
  });

  test('ties at one address: non-weak, then not linker-provided, then fewer underscores, then input order', () => {
    const same = readMap(Buffer.from('10 W weak_tie\n10 T __start_tie\n10 T ___tie\n10 T tie\n10 T b\n10 T a\n'));
    assert.deepEqual(
      selectSymbols(same, { allSymbols: true }, KALLSYMS_6_1).symbols.map((s) => s.name),
      ['tie', 'b', 'a', '___tie', '__start_tie', 'weak_tie'],
    );
  });

  test('--absolute-percpu marks percpu symbols absolute and retypes them A', () => {
    const sel = selectSymbols(map, { allSymbols: true, absolutePercpu: true, baseRelative: true }, KALLSYMS_6_1);
    const pc = sel.symbols.find((s) => s.name === 'fixed_percpu_data')!;
    assert.equal(pc.percpuAbsolute, true);
    assert.equal(String.fromCharCode(pc.type), 'A');
    assert.equal(sel.symbols.find((s) => s.name === '__gp')?.percpuAbsolute, true, '__gp at 0x30 is inside the percpu range');
    assert.equal(sel.relativeBase, 0xffffffff81000000n, 'the first non-percpu symbol is the base');
  });

  test('an empty selection is the C tool\'s "No valid symbol."', () => {
    assert.throws(() => selectSymbols(readMap(Buffer.from('10 D data\n')), {}, KALLSYMS_6_1), { code: 'KALLSYMS_NO_SYMBOLS' });
  });
});

// The tree the link and boot tests share (test/support/link-tree.ts: built
// the first time, reused after), linked here by its own script: the tables
// the C tool put in its vmlinux are ours. Kernels named in KBX_KALLSYMS_BUILDS
// (built by the stock script as in test/fixtures/kallsyms/README.md) are
// checked too. test/link-vmlinux.test.ts makes the same check on the tree.
const BUILT_TREES = (process.env.KBX_KALLSYMS_BUILDS ?? '')
  .split(':')
  .filter((d) => existsSync(join(d, 'vmlinux')) && existsSync(join(d, '.tmp_vmlinux.kallsyms2.syms')));

describe('a linked vmlinux', { skip: unlessMissing(linuxSource(tree)) }, () => {
  test('the shared link tree, linked by its script: its tables are ours for its final symbol map, and patching them in changes no byte', () => {
    const lt = linkTree(tree!);
    // The last link may have been kbx's (the boot and link tests make one).
    const r = runStockLink(lt.out, reproducibleBtf(lt.call));
    assert.equal(r.status, 0, r.stderr);
    assertStockTablesAreOurs(lt.out);
  });
  for (const dir of BUILT_TREES) {
    test(`${dir}: its tables are ours for its final symbol map, and patching them in changes no byte`, () => {
      assertStockTablesAreOurs(dir);
    });
  }
});
