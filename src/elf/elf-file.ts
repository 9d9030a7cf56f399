// ELF32/ELF64 reader for either byte order: header, section headers and their
// names, program headers, and the symbol tables. Takes the file's bytes and
// returns plain values; every offset read from the file is checked against
// the file's length before it is used. Names are decoded as latin1 so every
// byte survives.

import { cString, ElfError, FieldReader, type ElfClass, type Endian } from './reader.js';

export { ElfError, type ElfErrorCode, type ElfClass, type Endian } from './reader.js';

export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;

export const SHT_NULL = 0;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_NOBITS = 8;
export const SHT_DYNSYM = 11;
export const SHT_SYMTAB_SHNDX = 18;

export const SHF_ALLOC = 0x2n;

export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;
const PN_XNUM = 0xffff;

export interface ElfHeader {
  cls: ElfClass;
  endian: Endian;
  osabi: number;
  type: number;
  machine: number;
  version: number;
  entry: bigint;
  phoff: number;
  shoff: number;
  flags: number;
  ehsize: number;
  phentsize: number;
  /** Real counts, after ELF's extended numbering (section 0) is applied. */
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: bigint;
  entsize: number;
}

export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: bigint;
  align: bigint;
}

export interface ElfSymbol {
  index: number;
  name: string;
  value: bigint;
  size: bigint;
  bind: number;
  type: number;
  other: number;
  /** st_shndx as stored (SHN_UNDEF, SHN_ABS, SHN_XINDEX, ...). */
  shndx: number;
  /** The defining section's index (SHN_XINDEX resolved), or -1 for undefined/absolute/common. */
  sectionIndex: number;
}

const HEADER_SIZE = { 32: 52, 64: 64 } as const;
const SHDR_SIZE = { 32: 40, 64: 64 } as const;
const PHDR_SIZE = { 32: 32, 64: 56 } as const;
const SYM_SIZE = { 32: 16, 64: 24 } as const;

export class ElfFile {
  readonly header: ElfHeader;
  readonly sections: readonly ElfSection[];
  readonly segments: readonly ElfSegment[];
  private readonly r: FieldReader;
  private readonly symbolCache = new Map<number, readonly ElfSymbol[]>();

  private constructor(r: FieldReader, header: ElfHeader, sections: ElfSection[], segments: ElfSegment[]) {
    this.r = r;
    this.header = header;
    this.sections = sections;
    this.segments = segments;
  }

  get bytes(): Uint8Array {
    return this.r.buf;
  }

  static parse(buf: Uint8Array): ElfFile {
    const r = readerFor(buf);
    const header = readHeader(r);
    const sections = readSections(r, header);
    const segments = readSegments(r, header);
    return new ElfFile(r, header, sections, segments);
  }

  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** The file bytes of a section (a view, not a copy). */
  sectionData(s: ElfSection): Uint8Array {
    if (s.type === SHT_NOBITS) return new Uint8Array(0);
    return this.r.buf.subarray(s.offset, s.offset + s.size);
  }

  /** Symbols of .symtab (or .dynsym); empty when the file has none. */
  symbols(kind: 'symtab' | 'dynsym' = 'symtab'): readonly ElfSymbol[] {
    const type = kind === 'symtab' ? SHT_SYMTAB : SHT_DYNSYM;
    const table = this.sections.find((s) => s.type === type);
    if (!table) return [];
    let syms = this.symbolCache.get(table.index);
    if (!syms) {
      syms = readSymbols(this.r, this.sections, table);
      this.symbolCache.set(table.index, syms);
    }
    return syms;
  }

  /** The first symbol with this name in .symtab, else in .dynsym. */
  symbol(name: string): ElfSymbol | undefined {
    return this.symbols('symtab').find((s) => s.name === name) ?? this.symbols('dynsym').find((s) => s.name === name);
  }
}

function readerFor(buf: Uint8Array): FieldReader {
  if (buf.length < 16) throw new ElfError('ELF_TRUNCATED', `file is ${buf.length} bytes, shorter than e_ident`);
  if (buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) {
    throw new ElfError('ELF_BAD_MAGIC', 'not an ELF file (bad magic)');
  }
  const cls = buf[4] === 1 ? 32 : buf[4] === 2 ? 64 : undefined;
  const endian = buf[5] === 1 ? 'little' : buf[5] === 2 ? 'big' : undefined;
  if (!cls) throw new ElfError('ELF_BAD_IDENT', `unknown ELF class ${buf[4]}`);
  if (!endian) throw new ElfError('ELF_BAD_IDENT', `unknown ELF data encoding ${buf[5]}`);
  if (buf[6] !== 1) throw new ElfError('ELF_BAD_IDENT', `unknown ELF ident version ${buf[6]}`);
  return new FieldReader(buf, cls, endian);
}

function readHeader(r: FieldReader): ElfHeader {
  const w = r.cls === 64 ? 8 : 4;
  r.need(0, HEADER_SIZE[r.cls], 'ELF header');
  // Offsets below follow e_ident (16 bytes); the three address-sized fields
  // (entry, phoff, shoff) shift everything after them in ELF64.
  const h: ElfHeader = {
    cls: r.cls,
    endian: r.endian,
    osabi: r.u8(7, 'e_ident[EI_OSABI]'),
    type: r.u16(16, 'e_type'),
    machine: r.u16(18, 'e_machine'),
    version: r.u32(20, 'e_version'),
    entry: r.addr(24, 'e_entry'),
    phoff: r.word(24 + w, 'e_phoff'),
    shoff: r.word(24 + 2 * w, 'e_shoff'),
    flags: r.u32(24 + 3 * w, 'e_flags'),
    ehsize: r.u16(28 + 3 * w, 'e_ehsize'),
    phentsize: r.u16(30 + 3 * w, 'e_phentsize'),
    phnum: r.u16(32 + 3 * w, 'e_phnum'),
    shentsize: r.u16(34 + 3 * w, 'e_shentsize'),
    shnum: r.u16(36 + 3 * w, 'e_shnum'),
    shstrndx: r.u16(38 + 3 * w, 'e_shstrndx'),
  };
  if (h.shoff !== 0) {
    if (h.shentsize < SHDR_SIZE[r.cls]) {
      throw new ElfError('ELF_BAD_HEADER', `e_shentsize ${h.shentsize} is smaller than a section header`);
    }
    // Extended numbering: the real counts live in section header 0.
    const needsZero = h.shnum === 0 || h.shstrndx === SHN_XINDEX || h.phnum === PN_XNUM;
    if (needsZero) {
      const s0 = readSectionHeader(r, h.shoff, 0).section;
      if (h.shnum === 0) h.shnum = s0.size;
      if (h.shstrndx === SHN_XINDEX) h.shstrndx = s0.link;
      if (h.phnum === PN_XNUM) h.phnum = s0.info;
    }
    r.need(h.shoff, h.shnum * h.shentsize, 'section header table');
  } else {
    h.shnum = 0;
  }
  if (h.phoff !== 0 && h.phnum > 0) {
    if (h.phentsize < PHDR_SIZE[r.cls]) {
      throw new ElfError('ELF_BAD_HEADER', `e_phentsize ${h.phentsize} is smaller than a program header`);
    }
    r.need(h.phoff, h.phnum * h.phentsize, 'program header table');
  } else {
    h.phnum = 0;
  }
  return h;
}

function readSectionHeader(r: FieldReader, at: number, index: number): { section: ElfSection; nameOff: number } {
  const what = `section header ${index}`;
  r.need(at, SHDR_SIZE[r.cls], what);
  const nameOff = r.u32(at, what);
  if (r.cls === 32) {
    const section: ElfSection = {
      index,
      name: '',
      type: r.u32(at + 4, what),
      flags: BigInt(r.u32(at + 8, what)),
      addr: BigInt(r.u32(at + 12, what)),
      offset: r.u32(at + 16, what),
      size: r.u32(at + 20, what),
      link: r.u32(at + 24, what),
      info: r.u32(at + 28, what),
      addralign: BigInt(r.u32(at + 32, what)),
      entsize: r.u32(at + 36, what),
    };
    return { section, nameOff };
  }
  const section: ElfSection = {
    index,
    name: '',
    type: r.u32(at + 4, what),
    flags: r.u64(at + 8, what),
    addr: r.u64(at + 16, what),
    offset: r.word(at + 24, what),
    size: r.word(at + 32, what),
    link: r.u32(at + 40, what),
    info: r.u32(at + 44, what),
    addralign: r.u64(at + 48, what),
    entsize: r.word(at + 56, what),
  };
  return { section, nameOff };
}

function readSections(r: FieldReader, h: ElfHeader): ElfSection[] {
  const sections: ElfSection[] = [];
  const nameOffsets: number[] = [];
  for (let i = 0; i < h.shnum; i++) {
    // e_shentsize may be larger than the structure; honour the stride.
    const { section: s, nameOff } = readSectionHeader(r, h.shoff + i * h.shentsize, i);
    if (s.type !== SHT_NOBITS && s.type !== SHT_NULL && s.offset + s.size > r.buf.length) {
      throw new ElfError(
        'ELF_BAD_SECTION',
        `section ${i} [${s.offset}, +${s.size}) lies outside the file (${r.buf.length} bytes)`,
      );
    }
    nameOffsets.push(nameOff);
    sections.push(s);
  }
  if (h.shnum === 0) return sections;
  if (h.shstrndx === SHN_UNDEF) return sections; // no names
  const strtab = sections[h.shstrndx];
  if (!strtab || strtab.type === SHT_NOBITS) {
    throw new ElfError('ELF_BAD_SECTION', `e_shstrndx ${h.shstrndx} does not name a string table`);
  }
  for (const s of sections) {
    s.name = cString(r.buf, strtab.offset, strtab.offset + strtab.size, nameOffsets[s.index] ?? 0, `name of section ${s.index}`);
  }
  return sections;
}

function readSegments(r: FieldReader, h: ElfHeader): ElfSegment[] {
  const segments: ElfSegment[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const at = h.phoff + i * h.phentsize;
    const what = `program header ${i}`;
    const seg: ElfSegment =
      r.cls === 32
        ? {
            type: r.u32(at, what),
            offset: r.u32(at + 4, what),
            vaddr: BigInt(r.u32(at + 8, what)),
            paddr: BigInt(r.u32(at + 12, what)),
            filesz: r.u32(at + 16, what),
            memsz: BigInt(r.u32(at + 20, what)),
            flags: r.u32(at + 24, what),
            align: BigInt(r.u32(at + 28, what)),
          }
        : {
            type: r.u32(at, what),
            flags: r.u32(at + 4, what),
            offset: r.word(at + 8, what),
            vaddr: r.u64(at + 16, what),
            paddr: r.u64(at + 24, what),
            filesz: r.word(at + 32, what),
            memsz: r.u64(at + 40, what),
            align: r.u64(at + 48, what),
          };
    if (seg.offset + seg.filesz > r.buf.length) {
      throw new ElfError('ELF_BAD_HEADER', `${what} [${seg.offset}, +${seg.filesz}) lies outside the file`);
    }
    segments.push(seg);
  }
  return segments;
}

function readSymbols(r: FieldReader, sections: readonly ElfSection[], table: ElfSection): ElfSymbol[] {
  const entsize = SYM_SIZE[r.cls];
  const where = `symbol table ${table.name || table.index}`;
  if (table.entsize !== entsize || table.size % entsize !== 0) {
    throw new ElfError('ELF_BAD_SYMBOL', `${where}: entry size ${table.entsize} / size ${table.size} do not fit ELF${r.cls} symbols`);
  }
  const strtab = sections[table.link];
  if (!strtab || strtab.type !== SHT_STRTAB) {
    throw new ElfError('ELF_BAD_SYMBOL', `${where}: sh_link ${table.link} is not a string table`);
  }
  const shndxTable = sections.find((s) => s.type === SHT_SYMTAB_SHNDX && s.link === table.index);
  const strEnd = strtab.offset + strtab.size;
  const count = table.size / entsize;
  const syms: ElfSymbol[] = new Array<ElfSymbol>(count);
  for (let i = 0; i < count; i++) {
    const at = table.offset + i * entsize;
    const what = `${where} entry ${i}`;
    let nameOff: number, value: bigint, size: bigint, info: number, other: number, shndx: number;
    if (r.cls === 32) {
      nameOff = r.u32(at, what);
      value = BigInt(r.u32(at + 4, what));
      size = BigInt(r.u32(at + 8, what));
      info = r.u8(at + 12, what);
      other = r.u8(at + 13, what);
      shndx = r.u16(at + 14, what);
    } else {
      nameOff = r.u32(at, what);
      info = r.u8(at + 4, what);
      other = r.u8(at + 5, what);
      shndx = r.u16(at + 6, what);
      value = r.u64(at + 8, what);
      size = r.u64(at + 16, what);
    }
    let sectionIndex = shndx === SHN_UNDEF || shndx >= SHN_LORESERVE ? -1 : shndx;
    if (shndx === SHN_XINDEX) {
      if (!shndxTable || (i + 1) * 4 > shndxTable.size) {
        throw new ElfError('ELF_BAD_SYMBOL', `${what}: SHN_XINDEX without an SHT_SYMTAB_SHNDX entry`);
      }
      sectionIndex = r.u32(shndxTable.offset + i * 4, what);
    }
    const name = nameOff === 0 ? '' : cString(r.buf, strtab.offset, strEnd, nameOff, what);
    syms[i] = { index: i, name, value, size, bind: info >> 4, type: info & 0xf, other, shndx, sectionIndex };
  }
  return syms;
}
