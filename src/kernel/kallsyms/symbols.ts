// Choosing the symbols that go into the table, as scripts/kallsyms.c does
// (read_symbol after scanning, shrink_table, make_percpus_absolute,
// sort_symbols, record_relative_base). What differs between kernel versions
// (reading the map, ignored names, what symbol_valid keeps) comes from a
// KallsymsVersion (version.ts, v6.1.ts, v6.12.ts).
//
// Addresses are 64-bit; they are kept as two uint32 halves (hi, lo) so the
// sort and range checks run on plain numbers. Names are latin1 strings, one
// char per byte, so string order is strcmp's unsigned byte order.

import type { KallsymsVersion } from './version.js';

export class KallsymsError extends Error {
  constructor(
    readonly code: | 'KALLSYMS_NO_SYMBOLS'
      | 'KALLSYMS_OUT_OF_RANGE'
      | 'KALLSYMS_BAD_LENGTH'
      | 'KALLSYMS_BAD_TABLES'
      | 'KALLSYMS_BAD_INPUT'
      | 'KALLSYMS_BAD_NAME',
    message: string,
  ) {
    super(message);
    this.name = 'KallsymsError';
  }
}

export interface KallsymsOptions {
  allSymbols?: boolean;
  absolutePercpu?: boolean;
  baseRelative?: boolean;
  ltoClang?: boolean;
}

export interface SymEntry {
  hi: number;
  lo: number;
  /** nm type letter as a byte; 'A' for percpu symbols under --absolute-percpu. */
  type: number;
  name: string;
  /** Position in the input among kept symbols (the sort's last tie-break). */
  startPos: number;
  percpuAbsolute: boolean;
}

export interface Range {
  startHi: number;
  startLo: number;
  endHi: number;
  endLo: number;
}

export interface SymbolMap {
  symbols: SymEntry[];
  /** Address of _text, 0 when absent (every address is emitted relative to it). */
  text: bigint;
  textRange: Range;
  initTextRange: Range;
  percpuRange: Range;
  /** What the C tool prints to stderr while reading (too-long names, read errors). */
  diagnostics: string[];
}

export const KSYM_NAME_LEN = 512;
export const U32 = 0x1_0000_0000;

export function toBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

export function splitBigInt(v: bigint): { hi: number; lo: number } {
  const m = BigInt.asUintN(64, v);
  return { hi: Number(m >> 32n), lo: Number(m & 0xffffffffn) };
}

export function cmp(aHi: number, aLo: number, bHi: number, bLo: number): number {
  return aHi !== bHi ? aHi - bHi : aLo - bLo;
}

export const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

export function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** The value of the hex digits in [from, to) (at most 8, checked by the caller), as a uint32. */
export function hexValue(buf: Uint8Array, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    v = v * 16 + (c <= 57 ? c - 48 : (c | 0x20) - 87);
  }
  return v;
}

/**
 * One line a version's fast pattern matched, at [from, to): `<hex> <type> <name>`
 * with an optional newline at `to`. Both versions read such a line the same way:
 * the address split into its high and low 32 bits, the name to the line's end.
 */
export function addPlainLine(
  map: SymbolMap,
  buf: Uint8Array,
  text: string,
  from: number,
  to: number,
  isIgnored: (name: string, type: string) => boolean,
): void {
  const sp = text.indexOf(' ', from);
  const split = Math.max(from, sp - 8);
  const end = text.charCodeAt(to - 1) === 10 ? to - 1 : to;
  addSymbol(map, hexValue(buf, from, split), hexValue(buf, split, sp), text.charCodeAt(sp + 1), text.slice(sp + 3, end), isIgnored);
}

/** A map with nothing read yet (the C tool's initial globals). */
export function emptyMap(): SymbolMap {
  const zero = (): Range => ({ startHi: 0, startLo: 0, endHi: 0, endLo: 0 });
  return {
    symbols: [],
    text: 0n,
    textRange: zero(),
    initTextRange: zero(),
    percpuRange: { startHi: 0xffffffff, startLo: 0xffffffff, endHi: 0, endLo: 0 },
    diagnostics: [],
  };
}

/** read_symbol() after scanning: the length check, _text, filtering, ranges. */
export function addSymbol(
  map: SymbolMap,
  hi: number,
  lo: number,
  typeByte: number,
  scanned: string,
  isIgnored: (name: string, type: string) => boolean,
): void {
  const nul = scanned.indexOf('\0');
  const name = nul >= 0 ? scanned.slice(0, nul) : scanned; // the C tool copies it with strcpy
  if (name.length >= KSYM_NAME_LEN) {
    map.diagnostics.push(
      `Symbol ${name} too long for kallsyms (${name.length} >= ${KSYM_NAME_LEN}).\n` +
        'Please increase KSYM_NAME_LEN both in kernel and kallsyms.c',
    );
    return;
  }
  if (name === '_text') map.text = toBigInt(hi, lo);
  if (isIgnored(name, String.fromCharCode(typeByte))) return;
  // check_symbol_range(): the first matching start or end name wins.
  if (name === '_stext') setStart(map.textRange, hi, lo);
  else if (name === '_etext') setEnd(map.textRange, hi, lo);
  else if (name === '_sinittext') setStart(map.initTextRange, hi, lo);
  else if (name === '_einittext') setEnd(map.initTextRange, hi, lo);
  if (name === '__per_cpu_start') setStart(map.percpuRange, hi, lo);
  else if (name === '__per_cpu_end') setEnd(map.percpuRange, hi, lo);
  map.symbols.push({ hi, lo, type: typeByte, name, startPos: map.symbols.length, percpuAbsolute: false });
}

function setStart(r: Range, hi: number, lo: number): void {
  r.startHi = hi;
  r.startLo = lo;
}

function setEnd(r: Range, hi: number, lo: number): void {
  r.endHi = hi;
  r.endLo = lo;
}

function inRange(s: SymEntry, r: Range): boolean {
  return cmp(s.hi, s.lo, r.startHi, r.startLo) >= 0 && cmp(s.hi, s.lo, r.endHi, r.endLo) <= 0;
}

function isAt(s: SymEntry, hi: number, lo: number): boolean {
  return s.hi === hi && s.lo === lo;
}

/** symbol_valid() of shrink_table(). */
function symbolValid(map: SymbolMap, s: SymEntry, opts: KallsymsOptions, version: KallsymsVersion): boolean {
  if (opts.allSymbols) return true;
  if (version.keptOutsideText(s.name)) return true;
  if (!inRange(s, map.textRange) && !inRange(s, map.initTextRange)) return false;
  // Symbols at _etext/_einittext (other than those two) can move between
  // link passes when the tables are added, so they are always dropped.
  const t = map.textRange;
  const it = map.initTextRange;
  if (isAt(s, t.endHi, t.endLo) && s.name !== '_etext') return false;
  if (isAt(s, it.endHi, it.endLo) && s.name !== '_einittext') return false;
  return true;
}

/** __start_X, __stop_X, __end_X, __X_start, __X_end: placed after the symbols they bound. */
function mayBeLinkerScriptProvide(name: string): boolean {
  if (name.length < 8 || !name.startsWith('__')) return false;
  return (
    name.startsWith('start_', 2) ||
    name.startsWith('stop_', 2) ||
    name.startsWith('end_', 2) ||
    name.endsWith('_start') ||
    name.endsWith('_end')
  );
}

function leadingUnderscores(name: string): number {
  let i = 0;
  while (name.charCodeAt(i) === 95) i++;
  return i;
}

export interface Selection {
  /** Kept symbols in table order (by address, then the C tool's tie-breaks). */
  symbols: SymEntry[];
  text: bigint;
  /** Lowest non-absolute address (record_relative_base); 0 unless base-relative. */
  relativeBase: bigint;
  /** The kernel version whose tool made the selection (and makes the tables). */
  version: KallsymsVersion;
}

/**
 * shrink_table, make_percpus_absolute, sort_symbols and record_relative_base
 * of `version`'s tool; `opts` as given to it (version.effective() applied here).
 */
export function selectSymbols(map: SymbolMap, given: KallsymsOptions, version: KallsymsVersion): Selection {
  const opts = version.effective(given);
  const kept = opts.allSymbols ? map.symbols.slice() : map.symbols.filter((s) => symbolValid(map, s, opts, version));
  if (kept.length === 0 && version.emptyIsError) throw new KallsymsError('KALLSYMS_NO_SYMBOLS', 'No valid symbol.');
  if (opts.absolutePercpu) {
    for (let i = 0; i < kept.length; i++) {
      const s = kept[i]!;
      // 'A', as older versions of the tool emitted; a copy, the map stays as read.
      if (inRange(s, map.percpuRange)) kept[i] = { ...s, type: 65, percpuAbsolute: true };
    }
  }
  // The tie-breaks as one number per symbol, sorted by index: no object per symbol.
  const n = kept.length;
  const tie = new Int32Array(n);
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const s = kept[i]!;
    const weak = s.type === 119 || s.type === 87 ? 1 : 0; // 'w' 'W'
    const lsp = mayBeLinkerScriptProvide(s.name) ? 1 : 0;
    tie[i] = (weak << 20) | (lsp << 19) | Math.min(leadingUnderscores(s.name), 0x7ffff);
    order[i] = i;
  }
  // The comparator ends on startPos, so it is a total order and any correct
  // sort yields the C tool's qsort result.
  order.sort((a, b) => {
    const x = kept[a]!;
    const y = kept[b]!;
    return cmp(x.hi, x.lo, y.hi, y.lo) || tie[a]! - tie[b]! || x.startPos - y.startPos;
  });
  const sorted = order.map((i) => kept[i]!);
  let relativeBase = 0n;
  if (opts.baseRelative) {
    const first = sorted.find((s) => !s.percpuAbsolute);
    if (first) relativeBase = toBigInt(first.hi, first.lo);
  }
  version.checkSelection?.(sorted);
  return { symbols: sorted, text: map.text, relativeBase, version };
}

/**
 * A check of the selected names against what the C tool's assembly cannot
 * hold (its .asciz token table, a comment): a name matching `pattern` throws
 * KALLSYMS_BAD_NAME, so the link falls back to the stock script rather than
 * make a table where plain kbuild makes none or another.
 */
export function refuseNames(pattern: RegExp): (symbols: readonly SymEntry[]) => void {
  return (symbols) => {
    for (const s of symbols) {
      const printed = String.fromCharCode(s.type) + s.name;
      if (pattern.test(printed)) {
        throw new KallsymsError('KALLSYMS_BAD_NAME', `symbol ${JSON.stringify(printed)}: the C tool's assembly cannot hold its name as it is`);
      }
    }
  };
}
