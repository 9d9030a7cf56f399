// The kallsyms tables as bytes for a target word size and byte order: what
// kallsyms.c write_src() emits as assembly, computed directly. The tables,
// each aligned to the word size, in the order of the version's tool
// (version.tableOrder; 6.1's order here, 6.12 puts the offsets after the
// token index and the name sequence last):
//   kallsyms_offsets (u32 each, --base-relative) or kallsyms_addresses (words)
//   kallsyms_relative_base (word, --base-relative only)
//   kallsyms_num_syms (u32)
//   kallsyms_names (per symbol: ULEB128 length, 1-2 bytes, then token codes)
//   kallsyms_markers (u32 offset into names of every 256th symbol)
//   kallsyms_seqs_of_names (3 bytes big-endian per symbol, symbols sorted by name)
//   kallsyms_token_table (256 NUL-terminated token strings)
//   kallsyms_token_index (u16 offset of each token in the token table)

import { expandTokens, optimizeTokenTable, packSymbols } from './compress.js';
import { KallsymsError, splitBigInt, toBigInt, type KallsymsOptions, type Selection, type SymEntry } from './symbols.js';
import type { KallsymsVersion, TableName } from './version.js';

export interface Target {
  wordSize: 4 | 8;
  endian: 'little' | 'big';
}

export interface KallsymsTables extends NameTables {
  target: Target;
  version: KallsymsVersion;
  baseRelative: boolean;
  absolutePercpu: boolean;
  /** Address of _text in the input; the C tool writes addresses as _text ± n. */
  text: bigint;
  numSyms: number;
  /** Symbol addresses in table order (what addresses/offsets encode). */
  addrs: bigint[];
  /** Per symbol: written as an absolute value (percpu under --absolute-percpu). */
  percpuAbsolute: boolean[];
  addresses?: Uint8Array;
  offsets?: Uint8Array;
  relativeBase: bigint;
}

const U32 = 0x1_0000_0000;
const INT_MAX = 0x7fffffff;

class Writer {
  readonly bytes: Buffer;
  constructor(
    size: number,
    private readonly le: boolean,
  ) {
    this.bytes = Buffer.alloc(size);
  }
  u16(at: number, v: number): void {
    if (this.le) this.bytes.writeUInt16LE(v & 0xffff, at);
    else this.bytes.writeUInt16BE(v & 0xffff, at);
  }
  u32(at: number, v: number): void {
    if (this.le) this.bytes.writeUInt32LE(v >>> 0, at);
    else this.bytes.writeUInt32BE(v >>> 0, at);
  }
  word(at: number, v: bigint, size: 4 | 8): void {
    const m = BigInt.asUintN(size * 8, v);
    if (size === 4) this.u32(at, Number(m));
    else if (this.le) this.bytes.writeBigUInt64LE(m, at);
    else this.bytes.writeBigUInt64BE(m, at);
  }
}

/** One u32 per symbol, with the C tool's range checks. */
function encodeOffsets(syms: readonly SymEntry[], sel: Selection, opts: KallsymsOptions, w: Writer): void {
  const rb = splitBigInt(sel.relativeBase);
  for (let i = 0; i < syms.length; i++) {
    const s = syms[i]!;
    // Exact for |difference| < 2^53; anything larger is out of range anyway.
    const diff = (s.hi - rb.hi) * U32 + (s.lo - rb.lo);
    let offset: number;
    let overflow: boolean;
    if (!opts.absolutePercpu) {
      offset = diff;
      overflow = offset < 0 || offset > 0xffffffff;
    } else if (s.percpuAbsolute) {
      offset = s.hi * U32 + s.lo;
      overflow = s.hi !== 0 || s.lo > INT_MAX;
    } else {
      offset = -diff - 1;
      overflow = offset < -0x80000000 || offset >= 0;
    }
    if (overflow) {
      throw new KallsymsError(
        'KALLSYMS_OUT_OF_RANGE',
        `kallsyms failure: ${s.percpuAbsolute ? 'absolute' : 'relative'} symbol value 0x${toBigInt(s.hi, s.lo).toString(16)} out of range in relative mode`,
      );
    }
    w.u32(i * 4, offset);
  }
}

/** compare_names(): name (cut at ".llvm." for --lto-clang), then address, then table order. */
function nameOrder(syms: readonly SymEntry[], ltoClang: boolean): Int32Array {
  const keys = syms.map((s) => {
    const cut = ltoClang ? s.name.indexOf('.llvm.') : -1;
    return cut >= 0 ? s.name.slice(0, cut) : s.name;
  });
  const order = Array.from({ length: syms.length }, (_, i) => i);
  order.sort((a, b) => {
    const ka = keys[a]!;
    const kb = keys[b]!;
    if (ka !== kb) return ka < kb ? -1 : 1;
    const sa = syms[a]!;
    const sb = syms[b]!;
    return sa.hi - sb.hi || sa.lo - sb.lo || a - b;
  });
  return Int32Array.from(order);
}

/**
 * The tables that depend only on the symbols' type letters and names in
 * table order, not on their addresses: the compressed names (the token table
 * is learned from all of them) and what indexes them. Most of kallsyms' time
 * is here, so the link keeps them between links (an edit that moves code but
 * changes no symbol gives the same list).
 */
export interface NameTables {
  names: Uint8Array;
  markers: Uint8Array;
  seqsOfNames: Uint8Array;
  tokenTable: Uint8Array;
  tokenIndex: Uint8Array;
}

/** The name tables of `syms` (in table order). */
export function nameTables(syms: readonly SymEntry[], opts: KallsymsOptions, target: Target): NameTables {
  const packed = packSymbols(syms);
  const table = optimizeTokenTable(packed);
  const tokens = expandTokens(table);
  const tokenTable = Buffer.alloc(tokens.reduce((sum, t) => sum + t.length + 1, 0));
  const tokenIndex = new Writer(256 * 2, target.endian === 'little');
  let off = 0;
  for (let c = 0; c < 256; c++) {
    tokenIndex.u16(c * 2, off); // .short: truncated to 16 bits like gas does
    tokenTable.set(tokens[c]!, off);
    off += tokens[c]!.length + 1;
  }
  const compressed = (i: number): Uint8Array => packed.data.subarray(packed.start[i]!, packed.start[i]! + packed.len[i]!);
  return assembleNameTables(syms, opts, target, compressed, { tokenTable, tokenIndex: tokenIndex.bytes });
}

/**
 * kallsyms_names (each symbol's compressed bytes, length first), its
 * markers and kallsyms_seqs_of_names for `syms` in table order, with a token
 * table already made: nameTables() after compression, or names-cache.ts
 * putting kept compressed names in a new order.
 */
export function assembleNameTables(
  syms: readonly SymEntry[],
  opts: KallsymsOptions,
  target: Target,
  compressed: (i: number) => Uint8Array,
  tokens: Pick<NameTables, 'tokenTable' | 'tokenIndex'>,
): NameTables {
  const n = syms.length;
  let namesSize = 0;
  for (let i = 0; i < n; i++) {
    const l = compressed(i).length;
    if (l > 0x3fff) throw new KallsymsError('KALLSYMS_BAD_LENGTH', 'kallsyms failure: unexpected huge symbol length');
    namesSize += l + (l <= 0x7f ? 1 : 2);
  }
  const names = Buffer.alloc(namesSize);
  const markers = new Writer(((n + 255) >> 8) * 4, target.endian === 'little');
  let off = 0;
  for (let i = 0; i < n; i++) {
    if ((i & 0xff) === 0) markers.u32((i >> 8) * 4, off);
    const c = compressed(i);
    const l = c.length;
    if (l <= 0x7f) names[off++] = l;
    else {
      names[off++] = (l & 0x7f) | 0x80;
      names[off++] = (l >> 7) & 0x7f;
    }
    names.set(c, off);
    off += l;
  }

  const order = nameOrder(syms, !!opts.ltoClang);
  const seqs = Buffer.alloc(n * 3);
  for (let k = 0; k < n; k++) {
    const seq = order[k]!;
    seqs[k * 3] = (seq >> 16) & 0xff;
    seqs[k * 3 + 1] = (seq >> 8) & 0xff;
    seqs[k * 3 + 2] = seq & 0xff;
  }
  return { names, markers: markers.bytes, seqsOfNames: seqs, tokenTable: tokens.tokenTable, tokenIndex: tokens.tokenIndex };
}

/**
 * All the tables of a selection, made by its version's tool with `given`
 * options. `names` may be given when it is known to be nameTables() of
 * these symbols (kept from a link with the same list).
 */
export function buildTables(sel: Selection, given: KallsymsOptions, target: Target, names?: NameTables): KallsymsTables {
  const opts = sel.version.effective(given);
  const syms = sel.symbols;
  const n = syms.length;
  const le = target.endian === 'little';
  const named = names ?? nameTables(syms, opts, target);
  let addrs: bigint[] | undefined; // made when asked for: tens of thousands of bigints
  const addrsOf = (): bigint[] => (addrs ??= syms.map((s) => toBigInt(s.hi, s.lo)));

  let addresses: Uint8Array | undefined;
  let offsets: Uint8Array | undefined;
  if (opts.baseRelative) {
    const w = new Writer(n * 4, le);
    encodeOffsets(syms, sel, opts, w);
    offsets = w.bytes;
  } else {
    const w = new Writer(n * target.wordSize, le);
    for (let i = 0; i < n; i++) w.word(i * target.wordSize, addrsOf()[i]!, target.wordSize);
    addresses = w.bytes;
  }

  return {
    target,
    version: sel.version,
    baseRelative: !!opts.baseRelative,
    absolutePercpu: !!opts.absolutePercpu,
    text: sel.text,
    numSyms: n,
    get addrs() {
      return addrsOf();
    },
    percpuAbsolute: syms.map((s) => s.percpuAbsolute),
    addresses,
    offsets,
    relativeBase: sel.relativeBase,
    ...named,
  };
}

export interface LaidOutTable {
  name: string;
  offset: number;
  size: number;
}

/**
 * The tables placed one after another as the C tool's assembly places them
 * in a fresh .rodata section (each label after `.balign wordSize`, zero
 * padding), with relative_base written as its absolute value.
 */
export function layoutTables(t: KallsymsTables): { image: Buffer; tables: LaidOutTable[] } {
  const w = t.target.wordSize;
  const le = t.target.endian === 'little';
  const word = new Writer(w, le);
  word.word(0, t.relativeBase, w);
  const num = new Writer(4, le);
  num.u32(0, t.numSyms);
  const bytes: Record<TableName, Uint8Array | undefined> = {
    kallsyms_addresses: t.addresses,
    kallsyms_offsets: t.offsets,
    kallsyms_relative_base: word.bytes,
    kallsyms_num_syms: num.bytes,
    kallsyms_names: t.names,
    kallsyms_markers: t.markers,
    kallsyms_seqs_of_names: t.seqsOfNames,
    kallsyms_token_table: t.tokenTable,
    kallsyms_token_index: t.tokenIndex,
  };
  const parts = t.version.tableOrder({ baseRelative: t.baseRelative }).map((name): [string, Uint8Array] => {
    const b = bytes[name];
    if (!b) throw new KallsymsError('KALLSYMS_BAD_TABLES', `${t.version.id} tables have no ${name}`);
    return [name, b];
  });
  const tables: LaidOutTable[] = [];
  let off = 0;
  for (const [name, bytes] of parts) {
    off = Math.ceil(off / w) * w;
    tables.push({ name, offset: off, size: bytes.length });
    off += bytes.length;
  }
  const image = Buffer.alloc(off);
  parts.forEach(([, bytes], i) => image.set(bytes, tables[i]!.offset));
  return { image, tables };
}
