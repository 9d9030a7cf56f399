// Reads a kallsyms table set back into its symbol list the way the kernel
// does (kernel/kallsyms.c of 6.1: kallsyms_expand_symbol and
// kallsyms_sym_address), checking every structure on the way: the test
// oracle, and the check on a patched vmlinux.

import { KallsymsError } from './symbols.js';
import type { Target } from './tables.js';

export interface DecodedSymbol {
  /** nm type letter (the first character of the expanded name). */
  type: string;
  name: string;
  addr: bigint;
}

export interface DecodeParams extends Target {
  baseRelative: boolean;
  absolutePercpu: boolean;
  ltoClang?: boolean;
}

/**
 * The bytes from each table's start to the end of what holds it (a section,
 * or a laid-out image); undefined when the table is absent.
 */
export type TableSource = (name: string) => Uint8Array | undefined;

export interface Decoded {
  symbols: DecodedSymbol[];
  relativeBase: bigint;
  /** The token strings (256) as stored. */
  tokens: string[];
}

function bad(msg: string): never {
  throw new KallsymsError('KALLSYMS_BAD_TABLES', msg);
}

function need(src: TableSource, name: string, size: number): DataView {
  const b = src(name);
  if (!b) bad(`table ${name} is missing`);
  if (b.length < size) bad(`table ${name} is ${b.length} bytes, needs ${size}`);
  return new DataView(b.buffer, b.byteOffset, size);
}

export function decodeTables(src: TableSource, p: DecodeParams): Decoded {
  const le = p.endian === 'little';
  const w = p.wordSize;
  const bits = BigInt(w * 8);
  const word = (v: DataView, at: number): bigint => (w === 8 ? v.getBigUint64(at, le) : BigInt(v.getUint32(at, le)));

  const num = need(src, 'kallsyms_num_syms', 4).getUint32(0, le);

  const tokenIndex = need(src, 'kallsyms_token_index', 512);
  const tokenBytes = src('kallsyms_token_table') ?? bad('table kallsyms_token_table is missing');
  const tokens: string[] = [];
  for (let c = 0; c < 256; c++) {
    const at = tokenIndex.getUint16(c * 2, le);
    const end = tokenBytes.indexOf(0, at);
    if (at >= tokenBytes.length || end < 0) bad(`token ${c} at ${at} is outside the token table`);
    tokens.push(Buffer.from(tokenBytes.buffer, tokenBytes.byteOffset + at, end - at).toString('latin1'));
  }

  const namesBytes = src('kallsyms_names') ?? bad('table kallsyms_names is missing');
  const markers = need(src, 'kallsyms_markers', ((num + 255) >> 8) * 4);
  const expanded: string[] = new Array<string>(num);
  let off = 0;
  for (let i = 0; i < num; i++) {
    if ((i & 0xff) === 0 && markers.getUint32((i >> 8) * 4, le) !== off) {
      bad(`marker ${i >> 8} is ${markers.getUint32((i >> 8) * 4, le)}, symbol ${i} starts at ${off}`);
    }
    if (off >= namesBytes.length) bad(`kallsyms_names ends before symbol ${i}`);
    let len = namesBytes[off++]!;
    if (len & 0x80) {
      if (off >= namesBytes.length) bad(`kallsyms_names ends inside the length of symbol ${i}`);
      len = (len & 0x7f) | (namesBytes[off++]! << 7);
    }
    if (len === 0 || off + len > namesBytes.length) bad(`symbol ${i} has bad length ${len}`);
    let s = '';
    for (let k = 0; k < len; k++) s += tokens[namesBytes[off + k]!];
    off += len;
    // A type letter at least; 6.12's tool keeps a symbol with an empty name.
    if (s.length < 1) bad(`symbol ${i} expands to nothing, not even a type`);
    expanded[i] = s;
  }

  let relativeBase = 0n;
  const addrs: bigint[] = new Array<bigint>(num);
  if (!p.baseRelative) {
    const v = need(src, 'kallsyms_addresses', num * w);
    for (let i = 0; i < num; i++) addrs[i] = word(v, i * w);
  } else {
    relativeBase = word(need(src, 'kallsyms_relative_base', w), 0);
    const v = need(src, 'kallsyms_offsets', num * 4);
    for (let i = 0; i < num; i++) {
      const o = v.getInt32(i * 4, le);
      let a: bigint;
      if (!p.absolutePercpu) a = relativeBase + BigInt(o >>> 0);
      else if (o >= 0) a = BigInt(o);
      else a = relativeBase - 1n - BigInt(o);
      addrs[i] = BigInt.asUintN(Number(bits), a);
    }
  }

  const symbols = expanded.map((s, i) => ({ type: s[0]!, name: s.slice(1), addr: addrs[i]! }));
  checkNameOrder(src, symbols, !!p.ltoClang);
  return { symbols, relativeBase, tokens };
}

/** kallsyms_seqs_of_names, where present, must list every symbol once, sorted by name then address. */
function checkNameOrder(src: TableSource, symbols: DecodedSymbol[], ltoClang: boolean): void {
  const seqs = src('kallsyms_seqs_of_names');
  if (!seqs) return;
  const n = symbols.length;
  if (seqs.length < n * 3) bad(`kallsyms_seqs_of_names is ${seqs.length} bytes, needs ${n * 3}`);
  const seen = new Uint8Array(n);
  const key = (s: DecodedSymbol): string => {
    const cut = ltoClang ? s.name.indexOf('.llvm.') : -1;
    return cut >= 0 ? s.name.slice(0, cut) : s.name;
  };
  let prev: DecodedSymbol | undefined;
  let prevSeq = -1;
  for (let k = 0; k < n; k++) {
    const seq = (seqs[k * 3]! << 16) | (seqs[k * 3 + 1]! << 8) | seqs[k * 3 + 2]!;
    if (seq >= n || seen[seq]) bad(`kallsyms_seqs_of_names[${k}] = ${seq} is out of range or repeated`);
    seen[seq] = 1;
    const s = symbols[seq]!;
    if (prev) {
      const a = key(prev);
      const b = key(s);
      const inOrder = a < b || (a === b && (prev.addr < s.addr || (prev.addr === s.addr && prevSeq < seq)));
      if (!inOrder) bad(`kallsyms_seqs_of_names is not sorted at ${k} (${a} before ${b})`);
    }
    prev = s;
    prevSeq = seq;
  }
}

/** A TableSource over a laid-out image (see layoutTables). */
export function imageSource(image: Uint8Array, tables: readonly { name: string; offset: number }[]): TableSource {
  return (name) => {
    const t = tables.find((x) => x.name === name);
    return t ? image.subarray(t.offset) : undefined;
  };
}
