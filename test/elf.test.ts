// The ELF reader and patcher on objects and programs that gcc, as and ld
// build in the test (64- and 32-bit x86, big-endian powerpc and mips64),
// checked against readelf; then truncated and hostile inputs.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ElfError, ElfFile, ET_DYN, ET_EXEC, ET_REL, SHT_SYMTAB } from '../src/elf/elf-file.js';
import { addressLocation, applyPatches, bytesAt, findSymbol, planSymbolWrite, planWrite, symbolLocation } from '../src/elf/patch.js';
import { refSections, refSegments, refSymbols } from './support/readelf.js';
import { check, program, unlessMissing, type Need } from './support/tools.js';

const work = mkdtempSync(join(tmpdir(), 'kbx-elf-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { cwd: work, encoding: 'utf8' });
const path = (f: string): string => join(work, f);

const C_SOURCE = `#include <stdio.h>
const char patchme[16] = "original-string";
int counter = 0x01020304;
int zeroed[64];
extern int undefined_elsewhere __attribute__((weak));
int main(void) { puts(patchme); return zeroed[0] + (&undefined_elsewhere != 0); }
`;

// For binutils of other targets, without a C compiler for them.
const ASM_SOURCE = `
	.section .rodata,"a"
	.globl patchme
	.type patchme,%object
	.size patchme,16
patchme:
	.asciz "original-string"
	.data
	.globl counter
	.type counter,%object
	.size counter,4
counter:
	.long 0x01020304
	.bss
	.globl zeroed
	.type zeroed,%object
	.size zeroed,256
zeroed:
	.space 256
	.text
	.globl _start
_start:
	.long 0
`;

interface Built {
  name: string;
  file: string;
  cls: 32 | 64;
  endian: 'little' | 'big';
  type: number;
}

/** What the matrix needs beyond gcc and binutils for x86_64: each missing one fails (tools.ts). */
const needs: Need[] = [];

function build(): Built[] {
  writeFileSync(path('prog.c'), C_SOURCE);
  writeFileSync(path('prog.s'), ASM_SOURCE);
  const out: Built[] = [];
  run('gcc', ['-c', '-o', 'prog64.o', 'prog.c']);
  run('gcc', ['-no-pie', '-o', 'prog64', 'prog.c']);
  run('gcc', ['-pie', '-fPIE', '-o', 'prog64-pie', 'prog.c']);
  out.push(
    { name: 'x86_64 object', file: 'prog64.o', cls: 64, endian: 'little', type: ET_REL },
    { name: 'x86_64 executable', file: 'prog64', cls: 64, endian: 'little', type: ET_EXEC },
    { name: 'x86_64 PIE', file: 'prog64-pie', cls: 64, endian: 'little', type: ET_DYN },
  );
  let m32 = true;
  try {
    run('gcc', ['-m32', '-no-pie', '-o', 'prog32', 'prog.c']);
    run('gcc', ['-m32', '-c', '-o', 'prog32.o', 'prog.c']);
  } catch {
    m32 = false;
  }
  needs.push(check('gcc -m32 (a 32-bit libc)', 'gcc-multilib', m32));
  if (m32) {
    out.push(
      { name: 'i386 object', file: 'prog32.o', cls: 32, endian: 'little', type: ET_REL },
      { name: 'i386 executable', file: 'prog32', cls: 32, endian: 'little', type: ET_EXEC },
    );
  }
  const ppc = program('powerpc-linux-gnu-as', 'binutils-powerpc-linux-gnu');
  const mips = program('mips-linux-gnu-as', 'binutils-mips-linux-gnu');
  needs.push(ppc, mips);
  if (ppc.present) {
    run('powerpc-linux-gnu-as', ['-o', 'prog-ppc.o', 'prog.s']);
    run('powerpc-linux-gnu-ld', ['-o', 'prog-ppc', 'prog-ppc.o']);
    out.push(
      { name: 'powerpc (32-bit big-endian) object', file: 'prog-ppc.o', cls: 32, endian: 'big', type: ET_REL },
      { name: 'powerpc (32-bit big-endian) executable', file: 'prog-ppc', cls: 32, endian: 'big', type: ET_EXEC },
    );
  }
  if (mips.present) {
    run('mips-linux-gnu-as', ['-64', '-o', 'prog-mips64.o', 'prog.s']);
    run('mips-linux-gnu-ld', ['-m', 'elf64btsmip', '-o', 'prog-mips64', 'prog-mips64.o']);
    out.push(
      { name: 'mips64 (64-bit big-endian) object', file: 'prog-mips64.o', cls: 64, endian: 'big', type: ET_REL },
      { name: 'mips64 (64-bit big-endian) executable', file: 'prog-mips64', cls: 64, endian: 'big', type: ET_EXEC },
    );
  }
  return out;
}

const built = build();

describe('reading real ELF files agrees with readelf', () => {
  // i386, powerpc and mips64 files, or a failing test naming what to install.
  unlessMissing(...needs);

  for (const b of built) {
    test(b.name, () => {
      const elf = ElfFile.parse(readFileSync(path(b.file)));
      assert.equal(elf.header.cls, b.cls);
      assert.equal(elf.header.endian, b.endian);
      assert.equal(elf.header.type, b.type);

      const ref = refSections(path(b.file));
      assert.equal(elf.sections.length, ref.length);
      for (const r of ref) {
        const s = elf.sections[r.index]!;
        assert.deepEqual([s.name, s.addr, s.offset, s.size], [r.name, r.addr, r.offset, r.size], `section ${r.index}`);
      }

      const refSyms = refSymbols(path(b.file));
      const syms = elf.symbols('symtab');
      assert.equal(syms.length, refSyms.length);
      for (const r of refSyms) {
        const s = syms[r.index]!;
        assert.deepEqual([s.value, s.size], [r.value, r.size], `symbol ${r.index} ${r.name}`);
        // readelf shows a section symbol's name as its section's name.
        if (s.type !== 3) assert.equal(s.name, r.name);
        const ndx = s.sectionIndex >= 0 ? String(s.sectionIndex) : r.ndx;
        assert.equal(ndx, r.ndx, `symbol ${r.index} ${r.name} section`);
      }

      const segs = refSegments(path(b.file));
      assert.equal(elf.segments.length, segs.length);
      segs.forEach((r, i) => {
        const s = elf.segments[i]!;
        assert.deepEqual([s.offset, s.vaddr, s.filesz], [r.offset, r.vaddr, r.filesz], `segment ${i}`);
      });
      if (b.type === ET_DYN) assert.ok(elf.symbols('dynsym').some((s) => s.name === 'puts'));
    });
  }
});

describe('locating and patching symbols', () => {
  for (const b of built) {
    test(`${b.name}: patchme's bytes are found and rewritten in place`, () => {
      const bytes = readFileSync(path(b.file));
      const elf = ElfFile.parse(bytes);
      const sym = findSymbol(elf, 'patchme');
      const loc = symbolLocation(elf, sym);
      assert.equal(Buffer.from(bytesAt(elf, loc).subarray(0, 16)).toString('latin1'), 'original-string\0');
      if (b.type !== ET_REL) assert.equal(addressLocation(elf, sym.value).offset, loc.offset);

      const copy = Buffer.from(bytes);
      applyPatches(copy, [planSymbolWrite(elf, 'patchme', Buffer.from('patched-string!\0'))]);
      const diff = [...copy].flatMap((x, i) => (x === bytes[i] ? [] : [i]));
      assert.ok(diff.length > 0 && diff.every((i) => i >= loc.offset && i < loc.offset + 16));
      assert.equal(ElfFile.parse(copy).sections.length, elf.sections.length);

      // The patched program runs and prints the new string.
      if (b.type !== ET_REL && b.endian === 'little') {
        const out = path(`${b.file}.patched`);
        writeFileSync(out, copy, { mode: 0o755 });
        assert.equal(execFileSync(out, { encoding: 'utf8' }), 'patched-string!\n');
      }
    });

    test(`${b.name}: writes that leave the symbol or section, and places without bytes, are refused`, () => {
      const elf = ElfFile.parse(readFileSync(path(b.file)));
      assert.throws(() => planSymbolWrite(elf, 'patchme', Buffer.alloc(17)), { code: 'ELF_OUT_OF_RANGE' });
      assert.throws(() => planSymbolWrite(elf, 'patchme', Buffer.alloc(4), 13), { code: 'ELF_OUT_OF_RANGE' });
      const loc = symbolLocation(elf, findSymbol(elf, 'counter'));
      assert.doesNotThrow(() => planWrite(loc, Buffer.alloc(loc.available)));
      assert.throws(() => planWrite(loc, Buffer.alloc(loc.available + 1)), { code: 'ELF_OUT_OF_RANGE' });
      assert.throws(() => planWrite(loc, Buffer.alloc(1), -1), { code: 'ELF_OUT_OF_RANGE' });
      assert.throws(() => symbolLocation(elf, findSymbol(elf, 'zeroed')), { code: 'ELF_NO_FILE_BYTES' });
      assert.throws(() => findSymbol(elf, 'no_such_symbol'), { code: 'ELF_NOT_FOUND' });
      const undef = elf.symbols().find((s) => s.name && s.shndx === 0);
      if (undef) assert.throws(() => symbolLocation(elf, undef), { code: 'ELF_NO_FILE_BYTES' });
      assert.throws(() => applyPatches(Buffer.alloc(4), [{ offset: 2, bytes: Buffer.alloc(4) }]), { code: 'ELF_OUT_OF_RANGE' });
    });
  }

  test('more than 65280 sections: extended numbering and SHT_SYMTAB_SHNDX', () => {
    const n = 66000;
    let asm = '';
    for (let i = 0; i < n; i++) asm += `.section .s${i},"a"\n`;
    asm += `.section .s${n - 1},"a"\n.globl last\nlast:\n.ascii "LAST"\n`;
    writeFileSync(path('many.s'), asm);
    run('as', ['-o', 'many.o', 'many.s']);
    const bytes = readFileSync(path('many.o'));
    const elf = ElfFile.parse(bytes);
    assert.equal(bytes.readUInt16LE(60), 0, 'e_shnum is 0: the count lives in section 0');
    assert.equal(elf.sections.length, refSections(path('many.o')).length);
    const last = findSymbol(elf, 'last');
    assert.equal(last.shndx, 0xffff);
    assert.equal(elf.sections[last.sectionIndex]!.name, `.s${n - 1}`);
    assert.equal(Buffer.from(bytesAt(elf, symbolLocation(elf, last)).subarray(0, 4)).toString(), 'LAST');
  });
});

describe('malformed and hostile input gives an ElfError with a code', () => {
  const obj = readFileSync(path('prog64.o'));
  const good = ElfFile.parse(obj);
  const symtab = good.sections.find((s) => s.type === SHT_SYMTAB)!;
  const strtab = good.sections[symtab.link]!;
  const shdr = (i: number): number => good.header.shoff + i * good.header.shentsize;
  const mutate = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(obj);
    f(b);
    return b;
  };
  const parseAll = (b: Uint8Array): void => {
    const e = ElfFile.parse(b);
    e.symbols('symtab');
    e.symbols('dynsym');
  };
  const code = (b: Uint8Array): string => {
    try {
      parseAll(b);
      return 'ok';
    } catch (e) {
      if (e instanceof ElfError) return e.code;
      throw e;
    }
  };

  test('every truncation of an object is refused', () => {
    for (let len = 0; len < obj.length; len += len < 128 ? 1 : 37) {
      const c = code(obj.subarray(0, len));
      assert.ok(['ELF_TRUNCATED', 'ELF_BAD_SECTION', 'ELF_BAD_MAGIC'].includes(c), `length ${len}: ${c}`);
    }
    assert.equal(code(obj.subarray(0, 20)), 'ELF_TRUNCATED');
  });

  test('bad identification', () => {
    assert.equal(code(mutate((b) => (b[0] = 0))), 'ELF_BAD_MAGIC');
    assert.equal(code(mutate((b) => (b[4] = 3))), 'ELF_BAD_IDENT');
    assert.equal(code(mutate((b) => (b[5] = 0))), 'ELF_BAD_IDENT');
    assert.equal(code(mutate((b) => (b[6] = 2))), 'ELF_BAD_IDENT');
  });

  test('header fields pointing outside the file or at nonsense', () => {
    assert.equal(code(mutate((b) => b.writeBigUInt64LE(0xffffffffffff0000n, 40))), 'ELF_BAD_HEADER'); // e_shoff
    assert.equal(code(mutate((b) => b.writeBigUInt64LE(BigInt(obj.length - 10), 40))), 'ELF_TRUNCATED');
    assert.equal(code(mutate((b) => b.writeUInt16LE(0xfff0, 60))), 'ELF_TRUNCATED'); // e_shnum
    assert.equal(code(mutate((b) => b.writeUInt16LE(10, 58))), 'ELF_BAD_HEADER'); // e_shentsize
    assert.equal(code(mutate((b) => b.writeUInt16LE(good.sections.length + 5, 62))), 'ELF_BAD_SECTION'); // e_shstrndx
    // e_shnum = 0 says "see section 0", whose sh_size claims 2^40 sections.
    assert.equal(code(mutate((b) => (b.writeUInt16LE(0, 60), b.writeBigUInt64LE(1n << 40n, shdr(0) + 32)))), 'ELF_TRUNCATED');
  });

  test('section and symbol tables that do not fit', () => {
    assert.equal(code(mutate((b) => b.writeBigUInt64LE(BigInt(obj.length), shdr(symtab.index) + 24))), 'ELF_BAD_SECTION');
    assert.equal(code(mutate((b) => b.writeBigUInt64LE(1n << 52n, shdr(symtab.index) + 32))), 'ELF_BAD_SECTION');
    assert.equal(code(mutate((b) => b.writeBigUInt64LE(23n, shdr(symtab.index) + 56))), 'ELF_BAD_SYMBOL'); // sh_entsize
    assert.equal(code(mutate((b) => b.writeUInt32LE(symtab.index, shdr(symtab.index) + 40))), 'ELF_BAD_SYMBOL'); // sh_link
    assert.equal(code(mutate((b) => (b[strtab.offset + strtab.size - 1] = 0x41))), 'ELF_BAD_STRING');
    assert.equal(code(mutate((b) => b.writeUInt32LE(0xfffffff0, symtab.offset + 24))), 'ELF_BAD_STRING'); // st_name of symbol 1
    assert.equal(code(mutate((b) => b.writeUInt32LE(0xfffffff0, shdr(1)))), 'ELF_BAD_STRING'); // sh_name
  });

  test('random corruption of the headers never escapes as another kind of error', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const regions = [
      [0, 64],
      [good.header.shoff, good.sections.length * good.header.shentsize],
      [symtab.offset, Math.min(symtab.size, 256)],
    ] as const;
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(obj);
      for (let k = 0; k < 1 + rnd(4); k++) {
        const [start, len] = regions[rnd(regions.length)]!;
        b[start + rnd(len)] = rnd(256);
      }
      seen.add(code(b));
    }
    assert.ok(seen.size > 2, [...seen].join(' '));
  });
});
