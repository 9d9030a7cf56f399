// `kbx link-vmlinux` against Linux 6.1's scripts/link-vmlinux.sh on one real
// tree (tinyconfig + KALLSYMS_ALL + SMP + MODULES + BTF, x86_64, built once
// in /var/tmp and reused; test/support/link-tree.ts): one link instead of
// three (plus the BTF link both make), a System.map with the stock symbols,
// the stock addresses up to the kallsyms tables, tables that decode to
// exactly that System.map; a table that cannot fit falls back to the stock
// sequence; a script kbx does not know runs unchanged; `kbx make` routes the
// link to kbx unless told not to.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ElfFile } from '../src/elf/elf-file.js';
import { buildTables, decodeTables, elfTableSource, kallsyms, nameTables } from '../src/kernel/kallsyms/index.js';
import { selectSymbols } from '../src/kernel/kallsyms/symbols.js';
import { KALLSYMS_6_1 } from '../src/kernel/kallsyms/versions.js';

const readMap = KALLSYMS_6_1.readMap;
import { classify, normalizedScriptHash } from '../src/kernel/link/detect.js';
import { linkVmlinuxMakeArgs, makeShellWord, recipeOf, routable, route, routeOverride } from '../src/kernel/link/route.js';
import { estimateSymbols } from '../src/kernel/link/estimate.js';
import { parseLinkerScript, placement, within } from '../src/kernel/link/linker-script.js';
import { slotAddresses } from '../src/kernel/link/link-6.1.js';
import { DEFAULT_MARGIN, misfit, reserve, reservedAsm, reservedImage } from '../src/kernel/link/reserve.js';
import { loadNames, NAMES_CACHE, namesKey, reorderNames, saveNames } from '../src/kernel/link/names-cache.js';
import { RESERVE_CACHE } from '../src/kernel/link/reserve-cache.js';
import { bufferShape, fileShape } from '../src/kernel/link/symbol-shape.js';
import { BTF_ROOM, btfRoomSize, padBtf } from '../src/kernel/link/btf-room.js';
import type { LinkReport } from '../src/kernel/link/events.js';
import { cleanEnv } from './support/env.js';
import { assertStockTablesAreOurs } from './support/stock-tables.js';
import { Kbx, summary } from './support/kbx.js';
import { kernelTree } from './support/kernel-tree.js';
import { linuxSource, unlessMissing } from './support/tools.js';
import {
  countingLd,
  LINK_TREE_DIR,
  linkTree,
  readSystemMap,
  reproducibleBtf,
  runKbxLink,
  runStockLink,
  type LinkCall,
  type MapLine,
} from './support/link-tree.js';

const tree = kernelTree();
const noSource = unlessMissing(linuxSource(tree));
const OUT = join(LINK_TREE_DIR, 'out');
const work = mkdtempSync(join(tmpdir(), 'kbx-link-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('recognising the script', () => {
  const script = tree ? readFileSync(join(tree, 'scripts/link-vmlinux.sh'), 'utf8') : undefined;
  const kc = tree ? readFileSync(join(tree, 'scripts/kallsyms.c')) : undefined;

  test("6.1's script and kallsyms.c are known, also with a comment edited", { skip: noSource }, () => {
    assert.deepEqual(classify(script!, kc), { known: true, version: '6.1', what: "Linux 6.1 (Debian's linux-source-6.1)" });
    assert.equal(classify(script!.replace('# link vmlinux', '# link vmlinux (edited)\n\n#'), kc).known, true);
  });

  test('a changed line of code, or another kallsyms.c, is not', { skip: noSource }, () => {
    const d = classify(script!.replace('kallsyms_step 2', 'kallsyms_step 2; true'), kc);
    assert.equal(d.known, false);
    assert.match(!d.known ? d.reason : '', /not one kbx knows/);
    const k = classify(script!, Buffer.concat([kc!, Buffer.from('\n')]));
    assert.match(!k.known ? k.reason : '', /kallsyms\.c differs/);
  });

  test('comments and blank lines do not count toward the hash', () => {
    assert.equal(normalizedScriptHash('#!/bin/sh\n# x\n\necho a\n  # y\n'), normalizedScriptHash('echo a\n'));
    assert.notEqual(normalizedScriptHash('echo a\n'), normalizedScriptHash('echo b\n'));
  });
});

describe('reading a linker script', () => {
  const lds = `SECTIONS {
 .text : { _text = .; _stext = .; *(.text .text.*) *(.noinstr.text) } _etext = .;
 .rodata : { *(.rodata) KEEP(*(SORT(.init_array.*))) }
 .init.text : { _sinittext = .; *(.init.text .init.text.*) _einittext = .; }
 .data..percpu : { __per_cpu_start = .; *(.data..percpu..first) *(.data..percpu) __per_cpu_end = .; }
 /DISCARD/ : { *(.exitcall.exit) *(.discard) *(.discard.*) }
 ASSERT(_end - _text <= 0x100, "too big")
}`;
  const s = parseLinkerScript(lds);
  const at = (sec: string) => placement(s, sec);

  test('an input section goes to the first pattern that matches it', () => {
    assert.ok(s.textRanges.some((r) => within(r, at('.text.unlikely')!.pos)));
    assert.ok(s.textRanges.some((r) => within(r, at('.init.text')!.pos)));
    assert.ok(!s.textRanges.some((r) => within(r, at('.rodata')!.pos)));
    assert.ok(within(s.percpuRange, at('.data..percpu')!.pos));
    assert.equal(at('.init_array.5')?.discard, false);
    assert.equal(at('.discard.addressable')?.discard, true);
    assert.equal(at('.orphan'), undefined);
  });

  test('each pattern knows its output section; trailers and ASSERTs between sections are skipped', () => {
    const t = parseLinkerScript(`SECTIONS {
 .text : AT(ADDR(.text) - 0x1000) { *(.text) } :text = 0xcccc
 .rodata : { *(.rodata) *(.data..ro_after_init) }
 . = ALIGN(8); __end_rodata = .;
 .got : { *(.got) } ASSERT(SIZEOF(.got) == 0, "no GOT (really)")
 .data..percpu 0 : AT(__per_cpu_load) { *(.data..percpu) }
 .bss (NOLOAD) : { *(.bss) }
}`);
    assert.deepEqual(t.outputs, ['.text', '.rodata', '.got', '.data..percpu', '.bss']);
    assert.deepEqual(['.text', '.data..ro_after_init', '.got', '.data..percpu', '.bss'].map((n) => placement(t, n)?.out), ['.text', '.rodata', '.got', '.data..percpu', '.bss']);
    const end = t.assignments.find((x) => x.name === '__end_rodata')!;
    assert.deepEqual([end.out, end.after[0]], ['', '.rodata']);
    assert.ok(!t.assignments.some((x) => x.name === 'text'), ':text = 0xcccc is a fill, not an assignment');
  });

  test('assignments are found, comparisons are not', () => {
    const names = s.assignments.map((a) => a.name);
    for (const n of ['_text', '_stext', '_etext', '_sinittext', '_einittext', '__per_cpu_start', '__per_cpu_end']) assert.ok(names.includes(n), n);
    assert.ok(!names.includes('_end'));
  });
});

describe('reserving room for the table', () => {
  const target = { wordSize: 8, endian: 'little' } as const;
  const opts = { allSymbols: true, baseRelative: true };
  const map = (n: number, extra = ''): Buffer => {
    let t = 'ffffffff81000000 T _text\n';
    for (let i = 0; i < n; i++) t += `ffffffff81${(0x1000 + i * 16).toString(16).padStart(6, '0')} t sym_${i}_${extra}\n`;
    return Buffer.from(t);
  };
  const est = kallsyms(map(1000), opts, target, KALLSYMS_6_1).tables;
  const res = reserve(est, DEFAULT_MARGIN);

  test('the estimate fits its reservation, slots are word-aligned and back to back', () => {
    assert.equal(misfit(est, res), undefined);
    let off = 0;
    for (const s of res.slots) {
      assert.equal(s.offset, off);
      assert.equal(s.size % 8, 0);
      off += s.size;
    }
    assert.equal(reservedImage(est, res).length, res.total);
    assert.match(reservedAsm(res, 'x.bin', 0n), /kallsyms_relative_base:\n\t\.quad\t_text \+ 0x0\n/);
  });

  test('a table with more symbols than reserved is refused, naming the table', () => {
    const bigger = kallsyms(map(1000 + DEFAULT_MARGIN.symbols + 4), opts, target, KALLSYMS_6_1).tables;
    assert.match(misfit(bigger, res) ?? '', /kallsyms_offsets needs \d+ bytes, \d+ were reserved/);
    const longer = kallsyms(map(1000, 'with_a_much_longer_suffix'), opts, target, KALLSYMS_6_1).tables;
    assert.match(misfit(longer, res) ?? '', /(kallsyms_names|kallsyms_token_table) needs/);
  });
});

describe('keeping the name tables between links', () => {
  const target = { wordSize: 8, endian: 'little' } as const;
  const opts = { allSymbols: true, baseRelative: true };
  const map = (names: string[]): Buffer =>
    Buffer.from('ffffffff81000000 T _text\n' + names.map((n, i) => `ffffffff81${(0x1000 + i * 16).toString(16).padStart(6, '0')} t ${n}\n`).join(''));
  const names = Array.from({ length: 700 }, (_, i) => `sym_${i % 7}_${i}_handler`);
  const syms = (ns: string[]) => selectSymbols(readMap(map(ns)), opts, KALLSYMS_6_1).symbols;
  const file = join(work, 'names-cache');

  test('kept tables are the tables computed afresh; the key is the ordered list, the options and the byte order', () => {
    const s = syms(names);
    const key = namesKey(s, opts, target);
    const fresh = nameTables(s, opts, target);
    saveNames(file, key, 'little', fresh);
    const kept = loadNames(file, key, s.length)!;
    assert.ok(kept);
    for (const k of ['names', 'markers', 'seqsOfNames', 'tokenTable', 'tokenIndex'] as const) assert.ok(Buffer.from(kept[k]).equals(Buffer.from(fresh[k])), k);
    // Built with the kept name tables, every table equals the C tool's semantics computed afresh.
    const sel = selectSymbols(readMap(map(names)), opts, KALLSYMS_6_1);
    assert.deepEqual(buildTables(sel, opts, target, kept), buildTables(sel, opts, target));

    const swapped = [...names];
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!];
    const renamed = [...names];
    renamed[10] = 'sym_x_10_handler';
    const others = [
      namesKey(syms(swapped), opts, target),
      namesKey(syms(renamed), opts, target),
      namesKey(s, { ...opts, ltoClang: true }, target),
      namesKey(s, opts, { wordSize: 8, endian: 'big' }),
    ];
    assert.equal(new Set([key, ...others]).size, 5);
    assert.equal(namesKey(s, opts, { wordSize: 4, endian: 'little' }), key, 'the word size is not in the name tables');
    assert.equal(loadNames(file, others[0]!, s.length), undefined);

    // The same symbols in another order: the kept compressed names, reordered, are the tables computed afresh.
    const re = reorderNames(file, syms(swapped), opts, target);
    assert.ok(re);
    const afresh = nameTables(syms(swapped), opts, target);
    for (const k of ['names', 'markers', 'seqsOfNames', 'tokenTable', 'tokenIndex'] as const) assert.ok(Buffer.from(re[k]).equals(Buffer.from(afresh[k])), k);
    // Not for other symbols, one symbol more or less, or the other byte order.
    assert.equal(reorderNames(file, syms(renamed), opts, target), undefined);
    assert.equal(reorderNames(file, syms([...names, 'sym_extra']), opts, target), undefined);
    assert.equal(reorderNames(file, syms(names.slice(1)), opts, target), undefined);
    const twice = [...names];
    twice[5] = names[6]!;
    assert.equal(reorderNames(file, syms(twice), opts, target), undefined, 'as many symbols, one of them twice');
    assert.equal(reorderNames(file, s, opts, { wordSize: 8, endian: 'big' }), undefined);
  });

  test('a damaged, truncated or mismatched file is not used', () => {
    const s = syms(names);
    const key = namesKey(s, opts, target);
    saveNames(file, key, 'little', nameTables(s, opts, target));
    const good = readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 100]! ^= 1;
    writeFileSync(file, flipped);
    assert.equal(loadNames(file, key, s.length), undefined, 'a flipped byte');
    writeFileSync(file, good.subarray(0, good.length - 1));
    assert.equal(loadNames(file, key, s.length), undefined, 'one byte short');
    writeFileSync(file, good);
    assert.equal(loadNames(file, key, s.length + 1), undefined, 'another symbol count');
    assert.ok(loadNames(file, key, s.length));
  });
});

describe('room for BTF', () => {
  /** A BTF blob: header, `types` bytes of types, then the strings (NUL-first, NUL-last). */
  const blob = (types: number, strings: string, le = true): Buffer => {
    const str = Buffer.from(`\0${strings}\0`, 'latin1');
    const b = Buffer.alloc(24 + types + str.length);
    const u16 = le ? b.writeUInt16LE.bind(b) : b.writeUInt16BE.bind(b);
    const u32 = le ? b.writeUInt32LE.bind(b) : b.writeUInt32BE.bind(b);
    u16(0xeb9f, 0);
    b[2] = 1;
    u32(24, 4);
    u32(0, 8);
    u32(types, 12);
    u32(types, 16);
    u32(str.length, 20);
    b.fill(7, 24, 24 + types);
    str.copy(b, 24 + types);
    return b;
  };

  test('BTF is padded to the room by lengthening its string section with NULs, in either byte order', () => {
    for (const le of [true, false]) {
      const b = blob(40, 'int\0char', le);
      const p = padBtf(b, b.length + 100);
      assert.ok(Buffer.isBuffer(p));
      assert.equal(p.length, b.length + 100);
      const u32 = (o: number) => (le ? p.readUInt32LE(o) : p.readUInt32BE(o));
      assert.equal(24 + u32(16) + u32(20), p.length, 'the string section ends the blob');
      assert.ok(p.subarray(0, 20).equals(b.subarray(0, 20)));
      assert.ok(p.subarray(24, b.length).equals(b.subarray(24)));
      assert.ok(p.subarray(b.length).every((x) => x === 0));
      assert.ok(Buffer.isBuffer(padBtf(b, b.length)), 'an exact fit');
    }
    assert.ok(btfRoomSize(1_000_000) > 1_000_000 && btfRoomSize(100) >= 100 + 1024);
  });

  test('what does not fit or is not BTF as pahole lays it out is refused, with why', () => {
    const b = blob(40, 'int');
    assert.match(padBtf(b, b.length - 1) as string, /needs \d+ bytes, \d+ were reserved/);
    const bad = Buffer.from(b);
    bad[0] = 0;
    assert.match(padBtf(bad, 4096) as string, /magic/);
    const gap = Buffer.concat([b, Buffer.alloc(8)]);
    assert.match(padBtf(gap, 4096) as string, /string section/);
    const unterminated = Buffer.from(b);
    unterminated[unterminated.length - 1] = 0x41;
    assert.match(padBtf(unterminated, 4096) as string, /NUL/);
  });
});

describe('the symbol shape of an object', () => {
  const dir = join(work, 'shape');
  // Each variant in its own directory under one file name: the name is a symbol (STT_FILE).
  const cc = (name: string, src: string): string => {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, 'obj.c'), src);
    const r = spawnSync('gcc', ['-c', '-O1', '-o', 'obj.o', 'obj.c'], { cwd: join(dir, name), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return join(dir, name, 'obj.o');
  };
  const base = 'static int counter; int get(void) { return counter; }\nint add(int x) { counter += x; return counter; }\n';

  test('moves with names, kinds and sections, not with code size or addresses', () => {
    const a = fileShape(cc('a', base))!;
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(fileShape(cc('bigger', base.replace('counter += x;', 'counter += x * 3 + (x >> 2) - 7; if (x > 9) counter ^= x;'))), a, 'longer code');
    assert.equal(bufferShape(readFileSync(join(dir, 'a', 'obj.o'))), a, 'from memory as from the file');
    assert.notEqual(fileShape(cc('renamed', base.replace('int get(void)', 'int fetch(void)'))), a, 'a renamed function');
    assert.notEqual(fileShape(cc('static', base.replace('int get(void) { return counter; }', '__attribute__((noinline)) static int helper(int x) { return x * 3; } int get(void) { return helper(counter); }'))), a, 'a new static');
    assert.notEqual(fileShape(cc('global', base.replace('static int counter', 'int counter'))), a, 'a local made global');
    assert.notEqual(fileShape(cc('section', base.replace('int add(int x)', '__attribute__((section(".init.text"))) int add(int x)'))), a, 'moved to another section');
  });

  test('is undefined for what is not an ELF object', () => {
    writeFileSync(join(dir, 'text.o'), 'not an object\n');
    assert.equal(fileShape(join(dir, 'text.o')), undefined);
    assert.equal(fileShape(join(dir, 'missing.o')), undefined);
    const a = readFileSync(join(dir, 'a', 'obj.o'));
    assert.equal(bufferShape(a.subarray(0, a.length - 200)), undefined, 'truncated');
  });
});

describe('finding the tables in nm output', () => {
  test('whole names only, a name listed twice is not trusted', () => {
    const map = Buffer.from(
      'ffffffff81000000 T _text\nffffffff82000000 R __kallsyms_names\nffffffff82000010 R kallsyms_names\n' +
        'ffffffff82000020 R kallsyms_names_end\n0000000000001000 D kallsyms_markers\n0000000000002000 D kallsyms_markers\n',
    );
    const at = slotAddresses(map, ['kallsyms_names', 'kallsyms_markers', 'kallsyms_offsets', '_text']);
    assert.deepEqual([...at], [['kallsyms_names', 0xffffffff82000010n], ['_text', 0xffffffff81000000n]]);
  });
});

describe('routing the link line of kbx make', () => {
  const mkv = tree ? readFileSync(join(tree, 'scripts/Makefile.vmlinux'), 'utf8') : '';

  test('a 6.1 tree, or its O= object tree, gets the override; the recipe is 6.1’s own with kbx for $<', { skip: noSource }, () => {
    const r = route(tree!, '/usr/bin/node', '/opt/kbx/dist/src/cli/link-vmlinux.js');
    assert.ok(r.routed);
    const kbx =
      `: > .tmp_vmlinux.kbx.made; { set +e; $(MAKE) -f "$(srctree)"/scripts/Makefile.build obj=init init/version-timestamp.o; echo $$? > .tmp_vmlinux.kbx.made; } & ` +
      `KBX_LINK_MADE=$$! MAKE='$(MAKE)' '/usr/bin/node' '/opt/kbx/dist/src/cli/link-vmlinux.js'`;
    assert.deepEqual(r.args, [`cmd_link_vmlinux=${kbx} "$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)"; $(if $(ARCH_POSTLINK), $(MAKE) -f $(ARCH_POSTLINK) $@, true)`]);
    assert.equal(recipeOf(mkv), r.args[0]!.slice('cmd_link_vmlinux='.length).replace(kbx, '$<'));
    const obj = join(work, 'objtree');
    mkdirSync(obj, { recursive: true });
    rmSync(join(obj, 'source'), { force: true });
    symlinkSync(tree!, join(obj, 'source'));
    assert.equal(route(obj).routed, true);
  });

  test('another recipe, another script, or no kernel at all: no override', { skip: noSource }, () => {
    const known = classify(readFileSync(join(tree!, 'scripts/link-vmlinux.sh'), 'utf8'), readFileSync(join(tree!, 'scripts/kallsyms.c')));
    const changed = mkv.replace('$< "$(LD)"', '$< --verbose "$(LD)"');
    const res = routable(known, changed);
    assert.match(res.ok ? '' : res.reason, /another recipe than the one kbx replaces/);
    assert.equal(routable({ known: false, reason: 'x' }, mkv).ok, false);
    assert.deepEqual(linkVmlinuxMakeArgs({ dir: work, roots: [work], goals: [] }), []);
  });

  test('paths with spaces, quotes and dollars reach the shell intact, through make; make runs first, its status left for kbx', () => {
    const dir = join(work, "route's $HOME dir");
    const src = join(work, 'route-src'); // kbuild itself takes no blanks or quotes in srctree
    mkdirSync(join(src, 'scripts'), { recursive: true });
    mkdirSync(dir, { recursive: true });
    const entry = join(dir, 'entry.js');
    writeFileSync(join(dir, 'Makefile'), `srctree := ${src}\nLD := ld -m x\nKBUILD_LDFLAGS := -z a\nLDFLAGS_vmlinux :=\nvmlinux: ; +$(cmd_link_vmlinux)\n`);
    writeFileSync(join(src, 'scripts/Makefile.build'), 'init/version-timestamp.o: ; @sleep 0.2; echo $(obj) > made-by-make; exit 3\n');
    const fake = join(dir, 'node');
    // Waits for the status as kbx does, then shows what it was given.
    writeFileSync(fake, `#!/bin/sh\nwhile [ ! -s .tmp_vmlinux.kbx.made ]; do sleep 0.05; done\nprintf '%s|' "$MAKE" "$@" "$(cat made-by-make)" "$(cat .tmp_vmlinux.kbx.made)" > '${join(work, 'argv')}'\necho "$KBX_LINK_MADE" > '${join(work, 'pid')}'\n`);
    chmodSync(fake, 0o755);
    const r = spawnSync('make', ['-s', '-C', dir, routeOverride(fake, entry)], { encoding: 'utf8', env: cleanEnv() });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(work, 'argv'), 'utf8'), `make|${entry}|ld -m x|-z a||init|2|`); // make's own status for a failed recipe
    assert.match(readFileSync(join(work, 'pid'), 'utf8'), /^\d+\n$/);
    assert.equal(makeShellWord("a'b$c"), "'a'\\''b$$c'");
  });
});

describe('a script kbx does not know', () => {
  test('runs unchanged with the same arguments, environment and $0', async () => {
    const src = join(work, 'src');
    const obj = join(work, 'obj');
    mkdirSync(join(src, 'scripts'), { recursive: true });
    mkdirSync(obj, { recursive: true });
    writeFileSync(join(src, 'scripts/link-vmlinux.sh'), '#!/bin/sh\nprintf "%s|" "$0" "$@" "$KBX_PROBE" > ran\n');
    chmodSync(join(src, 'scripts/link-vmlinux.sh'), 0o755);
    const call: LinkCall = { args: ['ld', '-m elf_x86_64', '--build-id=sha1'], env: { ...process.env, srctree: src, objtree: '.', KBX_PROBE: 'p' } };
    const r = runKbxLink(obj, call, {}, undefined, undefined, true);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(obj, 'ran'), 'utf8'), `${src}/scripts/link-vmlinux.sh|ld|-m elf_x86_64|--build-id=sha1|p|`);
    assert.match(r.stderr, /^kbx link-vmlinux: running scripts\/link-vmlinux\.sh instead: scripts\/link-vmlinux\.sh is not one kbx knows/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    // `clean` goes to the script without a word.
    const c = runKbxLink(obj, { ...call, args: ['clean'] }, {}, undefined, undefined, true);
    assert.equal(c.status, 0);
    assert.equal(c.stderr, '');
    assert.equal(readFileSync(join(obj, 'ran'), 'utf8'), `${src}/scripts/link-vmlinux.sh|clean|p|`);
  });
});

// ---- the kernel ----------------------------------------------------------

interface Stock {
  call: LinkCall;
  map: MapLine[];
  mapBytes: Buffer;
  links: number;
  seconds: number;
}

const btfOn = (): boolean => readFileSync(join(OUT, '.config'), 'utf8').includes('\nCONFIG_DEBUG_INFO_BTF=y');
const paholeDetached = (): boolean => spawnSync('pahole', ['--help'], { encoding: 'utf8' }).stdout?.includes('--btf_encode_detached') ?? false;

/**
 * Full links of a single link: one, and the BTF link before it when BTF is
 * on and is not written into room in the link (btf-room.ts: that needs the
 * last BTF's size and a pahole that encodes to a file).
 */
function kbxLinks(btf: LinkReport['btf'] | 'expected' = 'expected'): number {
  if (btf === 'expected') btf = !btfOn() ? undefined : existsSync(join(OUT, BTF_ROOM.last)) && paholeDetached() ? 'room' : 'linked';
  return btf === 'linked' ? 2 : 1;
}

function report(path: string): LinkReport & { status: number } {
  return JSON.parse(readFileSync(path, 'utf8')) as LinkReport & { status: number };
}

describe('linking a 6.1 tinyconfig kernel once', { skip: noSource }, () => {
  let stock: Stock;
  /** The tree's own source copy (its object tree was configured from it). */
  let src: string;

  before(() => {
    // Up to vmlinux's prerequisites, and the link stage once the stock way,
    // with what make passes the script saved for the runs below.
    const lt = linkTree(tree!);
    src = lt.src;
    const call = reproducibleBtf(lt.call);
    const ld = countingLd(join(work, 'stock-ld'));
    const r = runStockLink(OUT, call, ld.path);
    assert.equal(r.status, 0, r.stderr);
    copyFileSync(join(OUT, 'System.map'), join(work, 'stock.System.map'));
    stock = { call, map: readSystemMap(join(OUT, 'System.map')), mapBytes: readFileSync(join(OUT, 'System.map')), links: ld.links(), seconds: r.seconds };
    try {
      assertStockTablesAreOurs(OUT);
    } catch (e) {
      stockTablesDiffer = e as Error; // failed by its own test, below
    }
  });
  let stockTablesDiffer: Error | undefined;

  test('the tables the C tool put in the stock vmlinux are byte for byte the ones kbx makes from the same map', () => {
    if (stockTablesDiffer) throw stockTablesDiffer;
  });

  /**
   * The tables in vmlinux, decoded the way the kernel reads them, list
   * exactly the symbols kallsyms selects from kbx's own System.map.
   */
  function assertTablesListSystemMap(): void {
    const mapBytes = readFileSync(join(OUT, 'System.map'));
    const conf = readFileSync(join(OUT, '.config'), 'utf8');
    const absolutePercpu = conf.includes('\nCONFIG_KALLSYMS_ABSOLUTE_PERCPU=y');
    const opts = { allSymbols: true, baseRelative: true, absolutePercpu };
    const want = selectSymbols(readMap(mapBytes), opts, KALLSYMS_6_1).symbols;
    const elf = ElfFile.parse(readFileSync(join(OUT, 'vmlinux')));
    const got = decodeTables(elfTableSource(elf), { wordSize: 8, endian: 'little', baseRelative: true, absolutePercpu }).symbols;
    assert.equal(got.length, want.length);
    got.forEach((g, i) => {
      const w = want[i]!;
      const addr = w.percpuAbsolute ? BigInt(w.lo) : (BigInt(w.hi) << 32n) | BigInt(w.lo);
      if (g.name !== w.name || g.type !== String.fromCharCode(w.type) || g.addr !== addr) {
        assert.fail(`symbol ${i}: decoded ${g.type} ${g.name} @${g.addr.toString(16)}, System.map has ${String.fromCharCode(w.type)} ${w.name} @${addr.toString(16)}`);
      }
    });
  }

  /**
   * vmlinux's .BTF is what pahole encoded of it (kept as BTF_ROOM.raw), its
   * string section lengthened with NULs to the room: header and data equal
   * up to pahole's length, str_len longer by the padding, the rest zeros.
   */
  function assertBtfIsPaholes(): void {
    const raw = readFileSync(join(OUT, BTF_ROOM.raw));
    const elf = ElfFile.parse(readFileSync(join(OUT, 'vmlinux')));
    const sec = elf.section('.BTF')!;
    const inImage = Buffer.from(elf.sectionData(sec));
    assert.ok(inImage.length >= raw.length, `.BTF is ${inImage.length} bytes, pahole's BTF ${raw.length}`);
    const pad = inImage.length - raw.length;
    assert.equal(inImage.readUInt32LE(20), raw.readUInt32LE(20) + pad, 'str_len');
    const head = Buffer.from(inImage.subarray(0, raw.length));
    head.writeUInt32LE(raw.readUInt32LE(20), 20);
    assert.ok(head.equals(raw), 'the BTF differs from pahole’s');
    assert.ok(inImage.subarray(raw.length).every((b) => b === 0), 'the padding is not zeros');
  }

  test('one full link, and the tables decode to exactly its System.map', () => {
    const ld = countingLd(join(work, 'kbx-ld'));
    const rep = join(work, 'single.json');
    const r = runKbxLink(OUT, stock.call, { KBX_LINK_REPORT: rep }, ld.path);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const rp = report(rep);
    assert.equal(rp.mode, 'single');
    assert.equal(rp.btf === undefined, !btfOn());
    assert.equal(rp.links, kbxLinks(rp.btf));
    assert.equal(ld.links(), kbxLinks(rp.btf));
    assert.ok(stock.links >= 2 + kbxLinks(rp.btf), `the stock script linked ${stock.links} times`);
    const k = rp.kallsyms!;
    const pct = (100 * k.paddingBytes) / k.tableBytes;
    process.stdout.write(
      `# links: stock ${stock.links}, kbx ${ld.links()}; link stage ${stock.seconds.toFixed(2)} s vs ${r.seconds.toFixed(2)} s; ` +
        `kallsyms ${k.symbols} symbols, ${k.tableBytes} bytes, padding ${k.paddingBytes} bytes (${pct.toFixed(2)} %)\n`,
    );
    assert.ok(pct < 1, `padding ${k.paddingBytes} bytes is ${pct.toFixed(2)} % of the table`);

    assertTablesListSystemMap();

    // The same symbols as the stock build, at the same addresses up to the tables.
    const mine = readSystemMap(join(OUT, 'System.map'));
    const key = (l: MapLine) => `${l.type} ${l.name}`;
    assert.deepEqual(mine.map(key).sort(), stock.map.map(key).sort());
    const tables = stock.map.find((l) => l.name === 'kallsyms_offsets')!.addr;
    const before = (m: MapLine[]) => m.filter((l) => l.addr < tables).map((l) => `${l.addr.toString(16)} ${key(l)}`).sort();
    assert.deepEqual(before(mine), before(stock.map));
    assert.equal(mine.find((l) => l.name === 'kallsyms_offsets')!.addr, tables);
    assert.equal(readFileSync(join(OUT, '.vmlinux.d'), 'utf8'), `vmlinux: ${src}/scripts/link-vmlinux.sh\n`);
  });

  test('the prediction lists the final symbols, with nm’s letters for all but a few', () => {
    const conf = readFileSync(join(OUT, '.config'), 'utf8');
    const opts = { allSymbols: true, baseRelative: true, absolutePercpu: conf.includes('\nCONFIG_KALLSYMS_ABSOLUTE_PERCPU=y') };
    const objs = ['vmlinux.o', '.vmlinux.export.o', 'init/version-timestamp.o'].map((p) => ElfFile.parse(readFileSync(join(OUT, p))));
    const est = estimateSymbols(objs, parseLinkerScript(readFileSync(join(OUT, 'arch/x86/kernel/vmlinux.lds'), 'utf8')), opts);
    const fin = selectSymbols(readMap(stock.mapBytes), opts, KALLSYMS_6_1).symbols;
    assert.equal(est.length, fin.length);
    const names = (xs: typeof est) => xs.map((x) => x.name).sort();
    assert.deepEqual(names(est), names(fin));
    const letter = new Map(fin.map((x) => [x.name, x.type]));
    const wrong = est.filter((x) => letter.get(x.name) !== x.type).map((x) => `${String.fromCharCode(x.type)} ${x.name}`);
    assert.ok(wrong.length <= 8, `letters differ for ${wrong.length} symbols: ${wrong.slice(0, 20).join(', ')}`);
  });

  test('a relink with the same symbols reuses the reservation and the name tables; a damaged record is recomputed', () => {
    const cache = join(OUT, RESERVE_CACHE);
    const link = (name: string) => {
      const rep = join(work, `${name}.json`);
      const r = runKbxLink(OUT, stock.call, { KBX_LINK_REPORT: rep });
      assert.equal(r.status, 0, r.stderr);
      return report(rep);
    };
    const first = link('reserve-1');
    const second = link('reserve-2');
    assert.equal(second.kallsyms?.reservationReused, true);
    assert.equal(second.kallsyms?.reservedBytes, first.kallsyms?.reservedBytes);
    assert.ok(!second.steps?.some((s) => s.step === 'estimate tables'), 'the estimate was compressed again');
    assert.equal(second.kallsyms?.names, 'kept');
    if (btfOn() && paholeDetached()) {
      assert.equal(second.btf, 'room', 'the last BTF size was known: no BTF link');
      assert.equal(second.links, 1);
      assertBtfIsPaholes();
    }
    assertTablesListSystemMap();
    writeFileSync(cache, readFileSync(cache, 'utf8').replace(/"size":\d+/, '"size":-1'));
    const names = join(OUT, NAMES_CACHE);
    const damaged = readFileSync(names);
    damaged[damaged.length - 1]! ^= 0xff;
    writeFileSync(names, damaged);
    const third = link('reserve-3');
    assert.equal(third.kallsyms?.reservationReused, false);
    assert.equal(third.kallsyms?.reservedBytes, first.kallsyms?.reservedBytes);
    assert.equal(third.kallsyms?.names, 'computed');
    assertTablesListSystemMap();
    // Kept names whose list does not match (as when two symbols at one
    // address swap) but whose symbols do: put in order, not recomputed.
    writeFileSync(names, readFileSync(names, 'latin1').replace(/"key":"[0-9a-f]+"/, `"key":"${'0'.repeat(64)}"`), 'latin1');
    const fourth = link('reserve-4');
    assert.equal(fourth.kallsyms?.names, 'reordered');
    assertTablesListSystemMap();
  });

  test('a table that cannot fit falls back to the stock sequence, in one line', () => {
    const ld = countingLd(join(work, 'fallback-ld'));
    const rep = join(work, 'fallback.json');
    const expected = kbxLinks();
    const r = runKbxLink(OUT, stock.call, { KBX_LINK_REPORT: rep, KBX_LINK_NAMES_MARGIN: '-100000000' }, ld.path);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^kbx link-vmlinux: running scripts\/link-vmlinux\.sh instead: the kallsyms table does not fit .*kallsyms_names needs/);
    assert.equal(report(rep).mode, 'stock');
    assert.equal(ld.links(), expected + stock.links, 'the failed single link, then the stock sequence');
    const now = readFileSync(join(OUT, 'System.map'));
    if (!now.equals(stock.mapBytes)) {
      const a = stock.mapBytes.toString('latin1').split('\n');
      const b = now.toString('latin1').split('\n');
      const i = a.findIndex((l, k) => l !== b[k]);
      assert.fail(`the stock sequence made another System.map: line ${i + 1}: stock "${a[i]}", now "${b[i]}"`);
    }
  });

  test('after a table that did not fit, the same symbols get room enough and link once', () => {
    // 3000 bytes short of the estimate's kallsyms_names: more than the margin.
    const env = { KBX_LINK_NAMES_MARGIN: '-3000' };
    const link = (name: string) => {
      const rep = join(work, `${name}.json`);
      const r = runKbxLink(OUT, stock.call, { ...env, KBX_LINK_REPORT: rep });
      assert.equal(r.status, 0, r.stderr);
      return { report: report(rep), stderr: r.stderr };
    };
    const first = link('grow-1');
    assert.equal(first.report.mode, 'stock');
    assert.match(first.stderr, /kallsyms_names needs/);
    const second = link('grow-2');
    assert.equal(second.report.mode, 'single', second.stderr);
    assert.equal(second.report.kallsyms?.reservationReused, true);
    assert.equal(second.stderr, '');
    assertTablesListSystemMap();
  });

  // kbx make passes make one more argument, an override of the link recipe
  // (src/kernel/link/route.ts). vmlinux is removed first so that each run
  // links; the counting ld first on PATH counts the links.
  function kbxMake(name: string, flags: string[], makeArgs: string[]): { out: string; links: number; report?: LinkReport; daemonLog: string } {
    const kbx = new Kbx(name);
    rmSync(join(OUT, 'vmlinux'));
    try {
      const ld = countingLd(join(work, `${name}-ld`), 'ld');
      const rep = join(work, `${name}.json`);
      const r = kbx.make(src, [...flags, `O=${OUT}`, ...makeArgs, 'vmlinux'], { PATH: `${ld.dir}:${process.env.PATH}`, KBX_LINK_REPORT: rep });
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      assert.equal(summary(r.stderr).fallback, 0, r.stderr.slice(-500));
      const daemonLog = existsSync(join(kbx.dir, 'daemon.log')) ? readFileSync(join(kbx.dir, 'daemon.log'), 'utf8') : '';
      return { out: r.stdout + r.stderr, links: ld.links(), report: existsSync(rep) ? report(rep) : undefined, daemonLog };
    } finally {
      kbx.stop();
    }
  }

  test('kbx make links vmlinux once, with the link line passed through the cache', () => {
    // Without -j make opens no jobserver for the recipe's `+`: the line still
    // reaches the shim as one that runs make, and never the daemon.
    const r = kbxMake('route', [], []);
    assert.match(r.out, /KSYMS {3}vmlinux \(in place\)/);
    assert.doesNotMatch(r.out, /kallsyms1|running scripts\/link-vmlinux\.sh instead/);
    assert.equal(r.links, kbxLinks(r.report?.btf));
    assert.equal(r.report?.mode, 'single');
    assert.equal(r.report?.links, kbxLinks(r.report?.btf));
    assert.doesNotMatch(r.daemonLog, /link-vmlinux/);
    assert.match(readFileSync(join(OUT, '.vmlinux.cmd'), 'utf8'), /^cmd_vmlinux := : > \.tmp_vmlinux\.kbx\.made; \{ set \+e; make -f .* & KBX_LINK_MADE=\$\$! MAKE='make' '[^']+' '[^']+\/cli\/link-vmlinux\.js' "ld"/);
    const names = (m: MapLine[]) => m.map((l) => `${l.type} ${l.name}`).sort();
    assert.deepEqual(names(readSystemMap(join(OUT, 'System.map'))), names(stock.map));
  });

  test('kbx make --no-link-vmlinux runs the tree’s script', () => {
    const r = kbxMake('no-route', ['--no-link-vmlinux'], ['-j2']);
    assert.match(r.out, /LD {6}\.tmp_vmlinux\.kallsyms1/);
    assert.equal(r.report, undefined, 'kbx link-vmlinux did not run');
    assert.equal(r.links, stock.links);
    assert.match(readFileSync(join(OUT, '.vmlinux.cmd'), 'utf8'), /^cmd_vmlinux := \S*scripts\/link-vmlinux\.sh "ld"/);
    const names = (m: MapLine[]) => m.map((l) => `${l.type} ${l.name}`).sort();
    assert.deepEqual(names(readSystemMap(join(OUT, 'System.map'))), names(stock.map));
  });
});
