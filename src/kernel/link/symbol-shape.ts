// A digest of what the kallsyms prediction reads of an object, taken from the
// raw bytes without parsing them: the section headers without their
// addresses, offsets and sizes, the section names, and the symbol tables
// without their values and sizes (names, binding, kind, section). An edit
// that changes code but no symbol changes where things are and how big they
// are, none of which the prediction looks at; when the digest of the link's
// objects is the previous link's, so is the prediction (reserve-cache.ts),
// and the objects' tens of thousands of symbols are not parsed at all, which
// matters because the prediction runs beside the script's make and must not
// outlast it.
//
// Anything unexpected (not ELF, truncated) yields undefined: the prediction
// then parses the objects as usual.

import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readRange } from './elf-io.js';

const SHT_SYMTAB = 2;
const SHT_STRTAB = 3;
const SHT_SYMTAB_SHNDX = 18;

/** Reads [offset, offset + length) of the object; shorter when the object ends first. */
type ReadAt = (offset: number, length: number) => Buffer;

function shapeOf(read: ReadAt, size: number, h: Hash): boolean {
  const ehdr = read(0, 64);
  if (ehdr.length < 52 || ehdr.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = ehdr[4] === 2;
  const le = ehdr[5] === 1;
  if ((ehdr[4] !== 1 && !is64) || (ehdr[5] !== 1 && ehdr[5] !== 2)) return false;
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const word = (b: Buffer, o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
  const w = is64 ? 8 : 4;
  const shoff = word(ehdr, 24 + 2 * w);
  const shentsize = u16(ehdr, 34 + 3 * w);
  let shnum = u16(ehdr, 36 + 3 * w);
  let shstrndx = u16(ehdr, 38 + 3 * w);
  const shdrSize = is64 ? 64 : 40;
  if (shoff === 0 || shentsize < shdrSize) return false;
  if (shnum === 0 || shstrndx === 0xffff) {
    const s0 = read(shoff, shdrSize);
    if (s0.length < shdrSize) return false;
    if (shnum === 0) shnum = word(s0, is64 ? 32 : 20);
    if (shstrndx === 0xffff) shstrndx = u32(s0, is64 ? 40 : 24);
  }
  if (shoff + shnum * shentsize > size) return false;
  const table = Buffer.from(read(shoff, shnum * shentsize)); // a copy, aligned, to mask
  const sec = (i: number) => {
    const at = i * shentsize;
    return { type: u32(table, at + 4), offset: word(table, at + (is64 ? 24 : 16)), size: word(table, at + (is64 ? 32 : 20)), link: u32(table, at + (is64 ? 40 : 24)) };
  };
  const parts: Buffer[] = [];
  const add = (i: number, mask?: 'symbols'): boolean => {
    if (i >= shnum) return false;
    const s = sec(i);
    if (s.offset + s.size > size) return false;
    const bytes = Buffer.from(read(s.offset, s.size));
    if (mask) {
      // st_value and st_size: ELF64 at 8..24 of 24 bytes, ELF32 at 4..12 of 16.
      const ent = is64 ? 24 : 16;
      for (let at = 0; at + ent <= bytes.length; at += ent) bytes.fill(0, at + (is64 ? 8 : 4), at + (is64 ? 24 : 12));
    }
    parts.push(bytes);
    return true;
  };
  const names = shstrndx < shnum ? sec(shstrndx) : undefined;
  if (!names || names.type !== SHT_STRTAB || !add(shstrndx)) return false;
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type === SHT_SYMTAB) {
      if (!add(i, 'symbols') || !add(s.link)) return false;
    } else if (s.type === SHT_SYMTAB_SHNDX && !add(i)) return false;
  }
  // sh_addr, sh_offset, sh_size: where sections are and how big, not what they are.
  for (let i = 0; i < shnum; i++) table.fill(0, i * shentsize + (is64 ? 16 : 12), i * shentsize + (is64 ? 40 : 24));
  h.update(`${is64 ? 64 : 32}${le ? 'l' : 'b'}${shnum}\n`);
  h.update(table);
  for (const p of parts) {
    h.update(`${p.length}\n`);
    h.update(p);
  }
  return true;
}

/** The symbol shape of an object held in memory, or undefined. */
export function bufferShape(bytes: Buffer): string | undefined {
  const h = createHash('sha256');
  return shapeOf((o, n) => bytes.subarray(o, o + n), bytes.length, h) ? h.digest('hex') : undefined;
}

/** The symbol shape of an object file (only its headers and symbol tables are read), or undefined. */
export function fileShape(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const read: ReadAt = (offset, length) => {
      const buf = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      readRange(fd, buf, 0, buf.length, offset);
      return buf;
    };
    const h = createHash('sha256');
    return shapeOf(read, size, h) ? h.digest('hex') : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
