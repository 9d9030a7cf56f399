// Linux 6.12's scripts/kallsyms.c: what is its own (see version.ts and
// VERSIONS.md). Its input is mksysmap's output (which drops the names 6.1's
// tool dropped itself), read strictly one line at a time; the tables are
// always base-relative and come after the name tables; an empty table is
// valid (the script's first step runs it on an empty map); __start_* and
// __stop_* are kept outside the text ranges; there is no --lto-clang.

import { addPlainLine, addSymbol, emptyMap, hexDigit, hexValue, isSpace, KallsymsError, refuseNames, splitBigInt, toBigInt, U32, type SymbolMap } from './symbols.js';
import type { KallsymsVersion } from './version.js';

const keptAbsolute = new Set(['__kernel_syscall_via_break', '__kernel_syscall_via_epc', '__kernel_sigtramp', '__gp']);

function isIgnoredSymbol(name: string, type: string): boolean {
  if (type === 'u' || type === 'n') return true;
  return (type === 'A' || type === 'a') && !keptAbsolute.has(name);
}

const formatError = (): never => {
  throw new KallsymsError('KALLSYMS_BAD_INPUT', 'line format error');
};

/**
 * read_symbol() of a line that is not the plain shape: [s, e) of the input,
 * without its newline. The C tool parses the line as a C string (strtoull,
 * strlen: up to a NUL) but reads the two separators and the type as raw
 * bytes of the line; the newline it replaced, or getline's terminator, is a
 * NUL. (Only a last line with no newline differs: there the C tool reads one
 * byte past the terminator, left from an earlier line; here that is an error.)
 */
function readLine(map: SymbolMap, buf: Buffer, text: string, s: number, e: number): void {
  const nul = text.indexOf('\0', s);
  const z = nul >= 0 && nul < e ? nul : e;
  // strtoull(buf, &p, 16)
  let p = s;
  while (p < z && isSpace(buf[p]!)) p++;
  let neg = false;
  if (p < z && (buf[p] === 43 || buf[p] === 45)) neg = buf[p++] === 45;
  if (p + 2 < z && buf[p] === 48 && (buf[p + 1]! | 0x20) === 120 && hexDigit(buf[p + 2]!) >= 0) p += 2;
  let hi = 0;
  let lo = 0;
  let digits = 0;
  let overflow = false;
  for (let d: number; p < z && (d = hexDigit(buf[p]!)) >= 0; p++, digits++) {
    hi = hi * 16 + Math.floor(lo / 0x10000000);
    lo = ((lo % 0x10000000) * 16 + d) >>> 0;
    if (hi >= U32) overflow = true;
  }
  if (digits === 0) formatError();
  if (overflow) {
    hi = 0xffffffff; // strtoull saturates, whatever the sign
    lo = 0xffffffff;
  } else if (neg) {
    ({ hi, lo } = splitBigInt(-toBigInt(hi, lo)));
  }
  // *p++ != ' ' || !isascii((type = *p++)) || *p++ != ' '
  if (p >= e || buf[p] !== 32) formatError();
  p++;
  if (p >= e) formatError();
  const type = buf[p++]!;
  if (type >= 0x80 || p >= e || buf[p] !== 32) formatError();
  addSymbol(map, hi, lo, type, text.slice(p + 1, e), isIgnoredSymbol);
}

function readMap(input: Uint8Array): SymbolMap {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const n = buf.length;
  const text = buf.toString('latin1');
  const map = emptyMap();
  // The shape mksysmap writes, checked natively (as in v6.1.ts's reader):
  // up to 16 hex digits, an ASCII type between single spaces, and a name
  // without NUL to the end of the line.
  const plain = /[0-9a-fA-F]{1,16} [\x00-\x09\x0b-\x7f] [^\n\0]*(?:\n|$)/y;
  let p = 0;
  while (p < n) {
    plain.lastIndex = p;
    if (plain.test(text)) {
      addPlainLine(map, buf, text, p, plain.lastIndex, isIgnoredSymbol);
      p = plain.lastIndex;
      continue;
    }
    let e = text.indexOf('\n', p);
    if (e < 0) e = n;
    readLine(map, buf, text, p, e);
    p = e + 1;
  }
  return map;
}

/**
 * write_src() prints each kept name in a C comment beside its bytes, and
 * every token (a piece of a name) raw inside `.asciz "..."`. A name holding
 * "*" "/" ends the comment early (the .S does not assemble: the stock link
 * fails); a '"', a backslash or a carriage return is read by the assembler
 * as something else than the byte (the table it makes is not the names).
 * Such a table is refused here, so the link falls back to the stock script,
 * rather than made where plain kbuild makes none or another.
 */
const checkSelection = refuseNames(/\*\/|["\\\r]/);

export const KALLSYMS_6_12: KallsymsVersion = {
  id: '6.12',
  options: ['allSymbols', 'absolutePercpu'],
  effective: (o) => ({ allSymbols: !!o.allSymbols, absolutePercpu: !!o.absolutePercpu, baseRelative: true, ltoClang: false }),
  readMap,
  isIgnoredSymbol,
  keptOutsideText: (name) => name.startsWith('__start_') || name.startsWith('__stop_'),
  emptyIsError: false,
  checkSelection,
  tableOrder: () => [
    'kallsyms_num_syms',
    'kallsyms_names',
    'kallsyms_markers',
    'kallsyms_token_table',
    'kallsyms_token_index',
    'kallsyms_offsets',
    'kallsyms_relative_base',
    'kallsyms_seqs_of_names',
  ],
};
