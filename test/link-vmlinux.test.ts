// `kbx link-vmlinux` against Linux 6.1's scripts/link-vmlinux.sh on one real
// tree (tinyconfig + KALLSYMS + KALLSYMS_ALL + MODULES, x86_64, built once in
// /var/tmp and reused): one link instead of three, a System.map with the
// stock symbols, the stock addresses up to the kallsyms tables, tables that
// decode to exactly that System.map; a table that cannot fit falls back to
// the stock sequence; a script kbx does not know runs unchanged.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ElfFile } from '../src/elf/elf-file.js';
import { decodeTables, elfTableSource, kallsyms } from '../src/kernel/kallsyms/index.js';
import { readMap, selectSymbols } from '../src/kernel/kallsyms/symbols.js';
import { classify, normalizedScriptHash } from '../src/kernel/link/detect.js';
import { parseLinkerScript, placement, within } from '../src/kernel/link/linker-script.js';
import { DEFAULT_MARGIN, misfit, reserve, reservedAsm, reservedImage } from '../src/kernel/link/reserve.js';
import type { LinkReport } from '../src/kernel/link/events.js';
import { kernelTree } from './support/kernel-tree.js';
import {
  captureOverride,
  countingLd,
  kbxOverride,
  make,
  readLinkCall,
  readSystemMap,
  runKbxLink,
  runStockLink,
  type LinkCall,
  type MapLine,
} from './support/link-tree.js';

const tree = kernelTree();
const BUILD = process.env.KBX_LINK_TEST_DIR ?? '/var/tmp/kbx-link-test';
const OUT = join(BUILD, 'out');
const work = mkdtempSync(join(tmpdir(), 'kbx-link-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('recognising the script', () => {
  const script = tree ? readFileSync(join(tree, 'scripts/link-vmlinux.sh'), 'utf8') : undefined;
  const kc = tree ? readFileSync(join(tree, 'scripts/kallsyms.c')) : undefined;

  test("6.1's script and kallsyms.c are known, also with a comment edited", { skip: !tree && 'linux-source-6.1 missing' }, () => {
    assert.deepEqual(classify(script!, kc), { known: true, version: '6.1', what: "Linux 6.1 (Debian's linux-source-6.1)" });
    assert.equal(classify(script!.replace('# link vmlinux', '# link vmlinux (edited)\n\n#'), kc).known, true);
  });

  test('a changed line of code, or another kallsyms.c, is not', { skip: !tree && 'linux-source-6.1 missing' }, () => {
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
  const est = kallsyms(map(1000), opts, target).tables;
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
    const bigger = kallsyms(map(1000 + DEFAULT_MARGIN.symbols + 4), opts, target).tables;
    assert.match(misfit(bigger, res) ?? '', /kallsyms_offsets needs \d+ bytes, \d+ were reserved/);
    const longer = kallsyms(map(1000, 'with_a_much_longer_suffix'), opts, target).tables;
    assert.match(misfit(longer, res) ?? '', /(kallsyms_names|kallsyms_token_table) needs/);
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
    const r = runKbxLink(obj, call);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(obj, 'ran'), 'utf8'), `${src}/scripts/link-vmlinux.sh|ld|-m elf_x86_64|--build-id=sha1|p|`);
    assert.match(r.stderr, /^kbx link-vmlinux: running scripts\/link-vmlinux\.sh instead: scripts\/link-vmlinux\.sh is not one kbx knows/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    // `clean` goes to the script without a word.
    const c = runKbxLink(obj, { ...call, args: ['clean'] });
    assert.equal(c.status, 0);
    assert.equal(c.stderr, '');
    assert.equal(readFileSync(join(obj, 'ran'), 'utf8'), `${src}/scripts/link-vmlinux.sh|clean|p|`);
  });
});

// ---- the kernel ----------------------------------------------------------

const OPTIONS = ['CONFIG_KALLSYMS', 'CONFIG_KALLSYMS_ALL', 'CONFIG_MODULES', 'CONFIG_64BIT'];

function configure(): void {
  const conf = join(OUT, '.config');
  const has = (): boolean => existsSync(conf) && OPTIONS.every((o) => readFileSync(conf, 'utf8').includes(`\n${o}=y`));
  if (has()) return;
  mkdirSync(OUT, { recursive: true });
  make(tree!, [`O=${OUT}`, 'tinyconfig']);
  const r = spawnSync(join(tree!, 'scripts/config'), ['--file', conf, '-e', '64BIT', '-e', 'DEBUG_KERNEL', '-e', 'KALLSYMS', '-e', 'KALLSYMS_ALL', '-e', 'MODULES']);
  assert.equal(r.status, 0, String(r.stderr));
  make(tree!, [`O=${OUT}`, 'olddefconfig']);
  assert.ok(has(), `could not enable ${OPTIONS.join(', ')} in ${conf}`);
}

interface Stock {
  call: LinkCall;
  map: MapLine[];
  mapBytes: Buffer;
  links: number;
  seconds: number;
}

function report(path: string): LinkReport & { status: number } {
  return JSON.parse(readFileSync(path, 'utf8')) as LinkReport & { status: number };
}

describe('linking a 6.1 tinyconfig kernel once', { skip: !tree && 'linux-source-6.1 missing' }, () => {
  let stock: Stock;

  before(() => {
    configure();
    // Up to vmlinux's prerequisites, and the link stage once the stock way,
    // with what make passes the script saved for the runs below.
    make(tree!, [`O=${OUT}`, '-j2', 'vmlinux', captureOverride()]);
    const call = readLinkCall(OUT);
    const ld = countingLd(join(work, 'stock-ld'));
    const r = runStockLink(OUT, call, ld.path);
    assert.equal(r.status, 0, r.stderr);
    copyFileSync(join(OUT, 'System.map'), join(work, 'stock.System.map'));
    stock = { call, map: readSystemMap(join(OUT, 'System.map')), mapBytes: readFileSync(join(OUT, 'System.map')), links: ld.links(), seconds: r.seconds };
  });

  test('one full link, and the tables decode to exactly its System.map', () => {
    const ld = countingLd(join(work, 'kbx-ld'));
    const rep = join(work, 'single.json');
    const r = runKbxLink(OUT, stock.call, { KBX_LINK_REPORT: rep }, ld.path);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const rp = report(rep);
    assert.equal(rp.mode, 'single');
    assert.equal(rp.links, 1);
    assert.equal(ld.links(), 1);
    assert.ok(stock.links >= 3, `the stock script linked ${stock.links} times`);
    const k = rp.kallsyms!;
    const pct = (100 * k.paddingBytes) / k.tableBytes;
    process.stdout.write(
      `# links: stock ${stock.links}, kbx ${ld.links()}; link stage ${stock.seconds.toFixed(2)} s vs ${r.seconds.toFixed(2)} s; ` +
        `kallsyms ${k.symbols} symbols, ${k.tableBytes} bytes, padding ${k.paddingBytes} bytes (${pct.toFixed(2)} %)\n`,
    );
    assert.ok(pct < 1, `padding ${k.paddingBytes} bytes is ${pct.toFixed(2)} % of the table`);

    // The tables in vmlinux, decoded the way the kernel reads them, list
    // exactly the symbols kallsyms selects from kbx's own System.map.
    const mapBytes = readFileSync(join(OUT, 'System.map'));
    const conf = readFileSync(join(OUT, '.config'), 'utf8');
    const absolutePercpu = conf.includes('\nCONFIG_KALLSYMS_ABSOLUTE_PERCPU=y');
    const opts = { allSymbols: true, baseRelative: true, absolutePercpu };
    const want = selectSymbols(readMap(mapBytes), opts).symbols;
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

    // The same symbols as the stock build, at the same addresses up to the tables.
    const mine = readSystemMap(join(OUT, 'System.map'));
    const key = (l: MapLine) => `${l.type} ${l.name}`;
    assert.deepEqual(mine.map(key).sort(), stock.map.map(key).sort());
    const tables = stock.map.find((l) => l.name === 'kallsyms_offsets')!.addr;
    const before = (m: MapLine[]) => m.filter((l) => l.addr < tables).map((l) => `${l.addr.toString(16)} ${key(l)}`).sort();
    assert.deepEqual(before(mine), before(stock.map));
    assert.equal(mine.find((l) => l.name === 'kallsyms_offsets')!.addr, tables);
    assert.equal(readFileSync(join(OUT, '.vmlinux.d'), 'utf8'), `vmlinux: ${tree}/scripts/link-vmlinux.sh\n`);
  });

  test('a table that cannot fit falls back to the stock sequence, in one line', () => {
    const ld = countingLd(join(work, 'fallback-ld'));
    const rep = join(work, 'fallback.json');
    const r = runKbxLink(OUT, stock.call, { KBX_LINK_REPORT: rep, KBX_LINK_NAMES_MARGIN: '-100000000' }, ld.path);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^kbx link-vmlinux: running scripts\/link-vmlinux\.sh instead: the kallsyms table does not fit .*kallsyms_names needs/);
    assert.equal(report(rep).mode, 'stock');
    assert.equal(ld.links(), 1 + stock.links, 'the failed single link, then the stock sequence');
    const now = readFileSync(join(OUT, 'System.map'));
    if (!now.equals(stock.mapBytes)) {
      const a = stock.mapBytes.toString('latin1').split('\n');
      const b = now.toString('latin1').split('\n');
      const i = a.findIndex((l, k) => l !== b[k]);
      assert.fail(`the stock sequence made another System.map: line ${i + 1}: stock "${a[i]}", now "${b[i]}"`);
    }
  });

  test('make runs it in the script’s place', () => {
    const out = make(tree!, [`O=${OUT}`, 'vmlinux', kbxOverride()]);
    assert.match(out, /KSYMS {3}vmlinux \(in place\)/);
    assert.doesNotMatch(out, /kallsyms1|running scripts\/link-vmlinux\.sh instead/);
    const mine = readSystemMap(join(OUT, 'System.map'));
    assert.equal(mine.length, stock.map.length);
  });
});
