// Reading `nm -n` output and choosing the symbols that go into the table, with
// the semantics of Linux 6.1 scripts/kallsyms.c (read_map, is_ignored_symbol,
// shrink_table, make_percpus_absolute, sort_symbols, record_relative_base).
//
// Addresses are 64-bit; they are kept as two uint32 halves (hi, lo) so the
// sort and range checks run on plain numbers. Names are latin1 strings, one
// char per byte, so string order is strcmp's unsigned byte order.

export class KallsymsError extends Error {
  constructor(
    readonly code: 'KALLSYMS_NO_SYMBOLS' | 'KALLSYMS_OUT_OF_RANGE' | 'KALLSYMS_BAD_LENGTH' | 'KALLSYMS_BAD_TABLES',
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
const NAME_BUFFER = KSYM_NAME_LEN * 4; // fscanf's %2048s
const U32 = 0x1_0000_0000;

export function toBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

export function splitBigInt(v: bigint): { hi: number; lo: number } {
  const m = BigInt.asUintN(64, v);
  return { hi: Number(m >> 32n), lo: Number(m & 0xffffffffn) };
}

function cmp(aHi: number, aLo: number, bHi: number, bLo: number): number {
  return aHi !== bHi ? aHi - bHi : aLo - bLo;
}

const ignoredSymbols = new Set([
  // Vary between link passes (added after pass 1).
  'kallsyms_addresses',
  'kallsyms_offsets',
  'kallsyms_relative_base',
  'kallsyms_num_syms',
  'kallsyms_names',
  'kallsyms_markers',
  'kallsyms_token_table',
  'kallsyms_token_index',
  'kallsyms_seqs_of_names',
  // Linker generated symbols which vary between passes (ppc).
  '_SDA_BASE_',
  '_SDA2_BASE_',
]);
// Prefixes, suffixes and substrings of ignored names, as one native regex.
const ignoredPattern = new RegExp(
  [
    // prefixes: arm64 EFI stub and non-VHE KVM locals, lld thunks, CFI type ids
    '^(?:__efistub_|__kvm_nvhe_\\$|__kvm_nvhe_\\.L|__AArch64ADRPThunk_|__ARMV5PILongThunk_|__ARMV7PILongThunk_',
    '|__ThumbV7PILongThunk_|__LA25Thunk_|__microLA25Thunk_|__kcfi_typeid_)',
    // suffixes: arm interworking stubs and veneers
    '|(?:_from_arm|_from_thumb|_veneer)$',
    // substrings: ppc branch stubs
    '|\\.long_branch\\.|\\.plt_branch\\.',
  ].join(''),
);
const keptAbsolute = new Set(['__kernel_syscall_via_break', '__kernel_syscall_via_epc', '__kernel_sigtramp', '__gp']);

export function isIgnoredSymbol(name: string, type: string): boolean {
  if (type === 'U' || type === 'u' || type === 'N' || type === 'n') return true;
  if ((type === 'A' || type === 'a') && !keptAbsolute.has(name)) return true;
  return ignoredSymbols.has(name) || ignoredPattern.test(name);
}

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** The value of the hex digits in [from, to) (at most 8, checked by the caller), as a uint32. */
function hexValue(buf: Uint8Array, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    v = v * 16 + (c <= 57 ? c - 48 : (c | 0x20) - 87);
  }
  return v;
}

/**
 * read_map() of kallsyms.c: the input is read as fscanf("%llx %c %2048s\n")
 * records, so fields are separated by any whitespace and a line that does
 * not parse is skipped up to its newline (nm's undefined symbols have no
 * address and are dropped that way).
 */
export function readMap(input: Uint8Array): SymbolMap {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const n = buf.length;
  const zero = (): Range => ({ startHi: 0, startLo: 0, endHi: 0, endLo: 0 });
  const map: SymbolMap = {
    symbols: [],
    text: 0n,
    textRange: zero(),
    initTextRange: zero(),
    percpuRange: { startHi: 0xffffffff, startLo: 0xffffffff, endHi: 0, endLo: 0 },
    diagnostics: [],
  };
  let p = 0;
  const skipSpace = (): void => {
    while (p < n && isSpace(buf[p]!)) p++;
  };
  // fgets() of the rest of a line that did not scan.
  const skipLine = (): void => {
    if (p >= n) {
      map.diagnostics.push('Read error or end of file.');
      return;
    }
    const stop = Math.min(n, p + NAME_BUFFER);
    while (p < stop && buf[p++] !== 10);
  };

  // Fast path for the common well-formed line, `<1-16 hex digits> <type>
  // <name>\n`, on the latin1 text (one char per byte, so offsets agree).
  // Written for speed on purpose: it runs once or twice per link process,
  // so the line is checked natively (one regular expression test without
  // captures), the name is the one allocation per line, and only the digits
  // are read by a loop. Anything else (a 0x prefix, a sign, 17+ digits, odd
  // spacing, a name longer than the scan buffer) goes through the general
  // scanner below.
  const text = buf.toString('latin1');
  const plain = /[0-9a-fA-F]{1,16} [^\t\n\v\f\r ] [^\t\n\v\f\r ]{1,2048}(?:\n|$)/y;

  while (p < n) {
    skipSpace();
    if (p >= n) break; // EOF before any conversion
    plain.lastIndex = p;
    if (plain.test(text)) {
      const sp = text.indexOf(' ', p);
      const split = Math.max(p, sp - 8);
      let end = plain.lastIndex;
      if (text.charCodeAt(end - 1) === 10) end--;
      addSymbol(map, hexValue(buf, p, split), hexValue(buf, split, sp), text.charCodeAt(sp + 1), text.slice(sp + 3, end));
      p = plain.lastIndex;
      continue;
    }
    // %llx
    let neg = false;
    if (buf[p] === 43 || buf[p] === 45) neg = buf[p++] === 45;
    if (buf[p] === 48 && (buf[p + 1] === 120 || buf[p + 1] === 88) && p + 2 < n && hexDigit(buf[p + 2]!) >= 0) p += 2;
    let hi = 0;
    let lo = 0;
    let digits = 0;
    let overflow = false;
    for (let d: number; p < n && (d = hexDigit(buf[p]!)) >= 0; p++, digits++) {
      hi = hi * 16 + Math.floor(lo / 0x10000000);
      lo = ((lo % 0x10000000) * 16 + d) >>> 0;
      if (hi >= U32) overflow = true;
    }
    if (digits === 0) {
      skipLine();
      continue;
    }
    if (overflow) {
      // strtoull saturates.
      hi = 0xffffffff;
      lo = 0xffffffff;
    } else if (neg) {
      const v = splitBigInt(-toBigInt(hi, lo));
      hi = v.hi;
      lo = v.lo;
    }
    // " %c"
    skipSpace();
    if (p >= n) {
      skipLine();
      break;
    }
    const typeByte = buf[p++]!;
    // " %2048s"
    skipSpace();
    if (p >= n) {
      skipLine();
      break;
    }
    const start = p;
    const stop = Math.min(n, p + NAME_BUFFER);
    while (p < stop && !isSpace(buf[p]!)) p++;
    const name = text.slice(start, p);
    // "\n" matches any run of whitespace.
    skipSpace();
    addSymbol(map, hi, lo, typeByte, name);
  }
  return map;
}

/** read_symbol() after scanning: the length check, _text, filtering, ranges. */
function addSymbol(map: SymbolMap, hi: number, lo: number, typeByte: number, scanned: string): void {
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
  if (isIgnoredSymbol(name, String.fromCharCode(typeByte))) return;
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
function symbolValid(map: SymbolMap, s: SymEntry, opts: KallsymsOptions): boolean {
  if (opts.allSymbols) return true;
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
}

/** shrink_table, make_percpus_absolute, sort_symbols and record_relative_base. */
export function selectSymbols(map: SymbolMap, opts: KallsymsOptions): Selection {
  const kept = opts.allSymbols ? map.symbols.slice() : map.symbols.filter((s) => symbolValid(map, s, opts));
  if (kept.length === 0) throw new KallsymsError('KALLSYMS_NO_SYMBOLS', 'No valid symbol.');
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
  return { symbols: sorted, text: map.text, relativeBase };
}
