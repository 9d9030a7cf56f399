// Reading the parts of a large ELF file that the link needs (headers, symbol
// tables, a few sections) without reading the rest, and writing same-size
// patches in place. A vmlinux.o or vmlinux with debug info runs to hundreds of
// megabytes; its symbol table is a small part of it.
//
// The file is mapped into one zero-filled buffer of its full size (calloc'd
// pages that are never written cost no memory), and only the ranges asked for
// are read into it, so the ElfFile reader checks offsets against the real
// file size.

import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { ElfFile, SHT_NOBITS, SHT_STRTAB, SHT_SYMTAB, SHT_SYMTAB_SHNDX, type ElfSection } from '../../elf/elf-file.js';
import { ElfError } from '../../elf/reader.js';
import type { Patch } from '../../elf/patch.js';

/** Reads file bytes [from, from + length) into buf at `offset` (file position = from, by default the same offset). */
export function readRange(fd: number, buf: Buffer, offset: number, length: number, from = offset): void {
  const end = Math.min(buf.length, offset + length);
  for (let at = offset; at < end; ) {
    const n = readSync(fd, buf, at, end - at, from + (at - offset));
    if (n === 0) break;
    at += n;
  }
}

export interface PartialElf {
  elf: ElfFile;
  /** Reads the file bytes of more sections into the buffer (idempotent). */
  load(sections: readonly ElfSection[]): void;
  close(): void;
}

/** Opens an ELF file with its headers, section names and (unless told not to) symbol tables read. */
export function openElf(path: string, opts: { symbols?: boolean } = {}): PartialElf {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(size);
    readRange(fd, buf, 0, 64);
    if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new ElfError('ELF_BAD_MAGIC', `${path} is not an ELF file`);
    const le = buf[5] === 1;
    const is64 = buf[4] === 2;
    const rd = (off: number, n: 2 | 4 | 8): number =>
      n === 2 ? (le ? buf.readUInt16LE(off) : buf.readUInt16BE(off)) : n === 4 ? (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off)) : Number(le ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off));
    const w = is64 ? 8 : 4;
    const phoff = rd(24 + w, w);
    const shoff = rd(24 + 2 * w, w);
    const phentsize = rd(30 + 3 * w, 2);
    let phnum = rd(32 + 3 * w, 2);
    const shentsize = rd(34 + 3 * w, 2);
    let shnum = rd(36 + 3 * w, 2);
    if (shoff) {
      readRange(fd, buf, shoff, shentsize || 64); // header 0 holds extended counts
      if (shnum === 0) shnum = is64 ? rd(shoff + 32, 8) : rd(shoff + 20, 4);
      if (phnum === 0xffff) phnum = rd(shoff + (is64 ? 44 : 28), 4);
      readRange(fd, buf, shoff, shnum * shentsize);
    }
    if (phoff) readRange(fd, buf, phoff, phnum * phentsize);
    const loaded = new Set<number>();
    const load = (sections: readonly ElfSection[]): void => {
      for (const s of sections) {
        if (loaded.has(s.index) || s.type === SHT_NOBITS) continue;
        loaded.add(s.index);
        readRange(fd, buf, s.offset, s.size);
      }
    };
    // Names first (the string table of section names), then the symbol tables.
    const bare = ElfFile.parse(buf);
    const shstrndx = rd(38 + 3 * w, 2);
    const names = bare.sections[shstrndx === 0xffff ? (is64 ? rd(shoff + 40, 4) : rd(shoff + 24, 4)) : shstrndx];
    if (names) load([names]);
    const named = ElfFile.parse(buf);
    const symtabs = opts.symbols === false ? [] : named.sections.filter((s) => s.type === SHT_SYMTAB || s.type === SHT_SYMTAB_SHNDX);
    load(symtabs);
    load(symtabs.map((s) => named.sections[s.link]).filter((s): s is ElfSection => !!s && s.type === SHT_STRTAB));
    let open = true;
    return {
      elf: named,
      load,
      close: () => {
        if (open) closeSync(fd);
        open = false;
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Writes same-size patches into a file in place. */
export function writePatches(path: string, patches: readonly Patch[]): void {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    for (const p of patches) {
      if (p.offset < 0 || p.offset + p.bytes.length > size) {
        throw new ElfError('ELF_OUT_OF_RANGE', `patch at ${p.offset} (+${p.bytes.length}) is past the end of ${path}`);
      }
    }
    for (const p of patches) {
      for (let done = 0; done < p.bytes.length; ) done += writeSync(fd, p.bytes, done, p.bytes.length - done, p.offset + done);
    }
  } finally {
    closeSync(fd);
  }
}

/** The file offset of the first byte that differs from the patches, or undefined when the file holds them all. */
export function readBack(path: string, patches: readonly Patch[]): number | undefined {
  const fd = openSync(path, 'r');
  try {
    for (const p of patches) {
      const got = Buffer.alloc(p.bytes.length);
      readRange(fd, got, 0, got.length, p.offset);
      if (got.equals(p.bytes)) continue;
      for (let i = 0; i < got.length; i++) if (got[i] !== p.bytes[i]) return p.offset + i;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}
