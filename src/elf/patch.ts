// Where a symbol or virtual address lives in the file, and same-size writes
// there. Planning a write is pure and checked; applying it is the one place
// that mutates the caller's buffer (a vmlinux is too big to copy per patch).

import {
  ET_REL,
  SHF_ALLOC,
  SHT_NOBITS,
  type ElfFile,
  type ElfSection,
  type ElfSymbol,
} from './elf-file.js';
import { ElfError } from './reader.js';

export interface FileLocation {
  section: ElfSection;
  /** File offset of the location. */
  offset: number;
  /** Bytes from the location to the end of its section. */
  available: number;
}

export interface Patch {
  offset: number;
  bytes: Uint8Array;
}

function locate(section: ElfSection, rel: bigint, what: string): FileLocation {
  if (section.type === SHT_NOBITS) {
    throw new ElfError('ELF_NO_FILE_BYTES', `${what} is in ${section.name || section.index}, which has no file bytes`);
  }
  if (rel < 0n || rel > BigInt(section.size)) {
    throw new ElfError('ELF_OUT_OF_RANGE', `${what} lies outside its section ${section.name || section.index}`);
  }
  const r = Number(rel);
  return { section, offset: section.offset + r, available: section.size - r };
}

/** File location of a defined symbol, via the section it is defined in. */
export function symbolLocation(elf: ElfFile, sym: ElfSymbol): FileLocation {
  const what = `symbol ${sym.name || sym.index}`;
  if (sym.sectionIndex < 0) {
    throw new ElfError('ELF_NO_FILE_BYTES', `${what} is undefined, absolute or common`);
  }
  const section = elf.sections[sym.sectionIndex];
  if (!section) throw new ElfError('ELF_BAD_SYMBOL', `${what} names section ${sym.sectionIndex}, which does not exist`);
  // In a relocatable object a symbol's value is an offset into its section;
  // in a linked file it is a virtual address.
  const rel = elf.header.type === ET_REL ? sym.value : sym.value - section.addr;
  return locate(section, rel, what);
}

/** File location of a virtual address in a linked file (ET_EXEC/ET_DYN). */
export function addressLocation(elf: ElfFile, addr: bigint): FileLocation {
  for (const s of elf.sections) {
    if ((s.flags & SHF_ALLOC) === 0n || s.type === SHT_NOBITS) continue;
    if (addr >= s.addr && addr < s.addr + BigInt(s.size)) return locate(s, addr - s.addr, `address 0x${addr.toString(16)}`);
  }
  throw new ElfError('ELF_NOT_FOUND', `no section with file bytes holds address 0x${addr.toString(16)}`);
}

export function findSymbol(elf: ElfFile, name: string): ElfSymbol {
  const sym = elf.symbol(name);
  if (!sym) throw new ElfError('ELF_NOT_FOUND', `symbol ${name} not found`);
  return sym;
}

/** The bytes at a location, from there to the end of its section (a view). */
export function bytesAt(elf: ElfFile, loc: FileLocation): Uint8Array {
  return elf.bytes.subarray(loc.offset, loc.offset + loc.available);
}

/** A write of `bytes` at `at` bytes past a location; refuses to cross the section end. */
export function planWrite(loc: FileLocation, bytes: Uint8Array, at = 0): Patch {
  if (!Number.isSafeInteger(at) || at < 0 || at + bytes.length > loc.available) {
    throw new ElfError(
      'ELF_OUT_OF_RANGE',
      `write of ${bytes.length} bytes at +${at} crosses the end of section ${loc.section.name || loc.section.index} (${loc.available} bytes left)`,
    );
  }
  return { offset: loc.offset + at, bytes };
}

/** A write at a symbol; when the symbol has a size, the write must fit inside it too. */
export function planSymbolWrite(elf: ElfFile, name: string, bytes: Uint8Array, at = 0): Patch {
  const sym = findSymbol(elf, name);
  const patch = planWrite(symbolLocation(elf, sym), bytes, at);
  if (sym.size > 0n && BigInt(at + bytes.length) > sym.size) {
    throw new ElfError('ELF_OUT_OF_RANGE', `write of ${bytes.length} bytes at +${at} crosses the end of symbol ${name} (${sym.size} bytes)`);
  }
  return patch;
}

/** Applies patches to `buf` in place (the caller's copy of the file). */
export function applyPatches(buf: Uint8Array, patches: readonly Patch[]): void {
  for (const p of patches) {
    if (p.offset < 0 || p.offset + p.bytes.length > buf.length) {
      throw new ElfError('ELF_OUT_OF_RANGE', `patch at ${p.offset} (+${p.bytes.length}) is past the end of the file`);
    }
  }
  for (const p of patches) buf.set(p.bytes, p.offset);
}
