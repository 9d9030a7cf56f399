// Bounds-checked reads of fixed-width fields at an ELF file's class and byte
// order. Every read names what it was reading so a truncated file says where.

export type ElfErrorCode =
  | 'ELF_TRUNCATED' // a structure runs past the end of the file
  | 'ELF_BAD_MAGIC' // not an ELF file
  | 'ELF_BAD_IDENT' // unknown class, byte order or version in e_ident
  | 'ELF_BAD_HEADER' // a header field is inconsistent (entry sizes, counts)
  | 'ELF_BAD_SECTION' // a section header points outside the file or at nonsense
  | 'ELF_BAD_SYMBOL' // a symbol table or one of its entries is malformed
  | 'ELF_BAD_STRING' // a string offset is outside its table or unterminated
  | 'ELF_NOT_FOUND' // a named section or symbol does not exist
  | 'ELF_NO_FILE_BYTES' // the location has no bytes in the file (NOBITS, ABS, UNDEF)
  | 'ELF_OUT_OF_RANGE'; // a read or write would cross the end of its section

export class ElfError extends Error {
  constructor(
    readonly code: ElfErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ElfError';
  }
}

export type ElfClass = 32 | 64;
export type Endian = 'little' | 'big';

export class FieldReader {
  constructor(
    readonly buf: Uint8Array,
    readonly cls: ElfClass,
    readonly endian: Endian,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.le = endian === 'little';
  }

  private readonly view: DataView;
  private readonly le: boolean;

  /** Throws unless [off, off + len) lies inside the buffer. */
  need(off: number, len: number, what: string): void {
    if (!Number.isSafeInteger(off) || off < 0 || len < 0 || off + len > this.buf.length) {
      throw new ElfError(
        'ELF_TRUNCATED',
        `${what} at offset ${off} (+${len} bytes) is past the end of the file (${this.buf.length} bytes)`,
      );
    }
  }

  u8(off: number, what: string): number {
    this.need(off, 1, what);
    return this.view.getUint8(off);
  }

  u16(off: number, what: string): number {
    this.need(off, 2, what);
    return this.view.getUint16(off, this.le);
  }

  u32(off: number, what: string): number {
    this.need(off, 4, what);
    return this.view.getUint32(off, this.le);
  }

  u64(off: number, what: string): bigint {
    this.need(off, 8, what);
    return this.view.getBigUint64(off, this.le);
  }

  /** An address-sized field (Elf32_Addr or Elf64_Addr). */
  addr(off: number, what: string): bigint {
    return this.cls === 64 ? this.u64(off, what) : BigInt(this.u32(off, what));
  }

  /** An offset- or size-sized field that must be usable as a JS number. */
  word(off: number, what: string): number {
    return toNumber(this.addr(off, what), what);
  }
}

export function toNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ElfError('ELF_BAD_HEADER', `${what} is too large (${v})`);
  }
  return Number(v);
}

/** A NUL-terminated string starting at `off` inside [start, end). */
export function cString(buf: Uint8Array, start: number, end: number, off: number, what: string): string {
  const at = start + off;
  if (off < 0 || at >= end) {
    throw new ElfError('ELF_BAD_STRING', `${what}: string offset ${off} is outside its table`);
  }
  const nul = buf.indexOf(0, at);
  if (nul < 0 || nul >= end) {
    throw new ElfError('ELF_BAD_STRING', `${what}: string at offset ${off} is not terminated inside its table`);
  }
  return Buffer.from(buf.buffer, buf.byteOffset + at, nul - at).toString('latin1');
}
