// Linux 6.1's scripts/kallsyms.c: what is its own (see version.ts and
// VERSIONS.md). It reads `nm -n` output as fscanf records, drops names
// itself, fails on an empty selection, and takes --base-relative and
// --lto-clang; its tables start with the addresses or offsets.

import { addPlainLine, addSymbol, emptyMap, hexDigit, hexValue, isSpace, KSYM_NAME_LEN, refuseNames, splitBigInt, toBigInt, U32, type KallsymsOptions, type SymbolMap } from './symbols.js';
import type { KallsymsVersion, TableName } from './version.js';

const NAME_BUFFER = KSYM_NAME_LEN * 4; // fscanf's %2048s

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

function isIgnoredSymbol(name: string, type: string): boolean {
  if (type === 'U' || type === 'u' || type === 'N' || type === 'n') return true;
  if ((type === 'A' || type === 'a') && !keptAbsolute.has(name)) return true;
  return ignoredSymbols.has(name) || ignoredPattern.test(name);
}

/**
 * read_map() of kallsyms.c: the input is read as fscanf("%llx %c %2048s\n")
 * records, so fields are separated by any whitespace and a line that does
 * not parse is skipped up to its newline (nm's undefined symbols have no
 * address and are dropped that way).
 */
function readMap(input: Uint8Array): SymbolMap {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const n = buf.length;
  const map = emptyMap();
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
      addPlainLine(map, buf, text, p, plain.lastIndex, isIgnoredSymbol);
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
    addSymbol(map, hi, lo, typeByte, name, isIgnoredSymbol);
  }
  return map;
}


const NAME_TABLES: readonly TableName[] = [
  'kallsyms_num_syms',
  'kallsyms_names',
  'kallsyms_markers',
  'kallsyms_seqs_of_names',
  'kallsyms_token_table',
  'kallsyms_token_index',
];

/**
 * write_src() prints every token (a piece of a name) raw inside `.asciz
 * "..."`: a '"' or a backslash is read by the assembler as something else
 * than the byte, so the table it makes is not the names, if it assembles.
 * (6.1 prints names as .byte lists, with no comment, so "*\/" is harmless;
 * fscanf's %s ends a name at a carriage return, as readMap does.)
 */
const checkSelection = refuseNames(/["\\]/);

export const KALLSYMS_6_1: KallsymsVersion = {
  id: '6.1',
  options: ['allSymbols', 'absolutePercpu', 'baseRelative', 'ltoClang'],
  effective: (o) => o,
  readMap,
  isIgnoredSymbol,
  keptOutsideText: () => false,
  emptyIsError: true,
  checkSelection,
  tableOrder: (o: KallsymsOptions) =>
    o.baseRelative ? ['kallsyms_offsets', 'kallsyms_relative_base', ...NAME_TABLES] : ['kallsyms_addresses', ...NAME_TABLES],
};
