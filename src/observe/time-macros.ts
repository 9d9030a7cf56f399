// __DATE__, __TIME__ and __TIMESTAMP__ (DESIGN.md §5): a compile whose text
// inputs name them makes output that depends on the clock or on mtimes, which
// no file digest captures. Like ccache, any mention counts (a comment or a
// string too: telling those apart needs a C lexer, and a wrong one would hide
// a real use). The Linux kernel builds with -Werror=date-time and names them
// nowhere in what it compiles, so its lines are unaffected.
import { readFileSync, realpathSync } from 'node:fs';
import { sha256 } from '../util/hash.js';

export const FOUND_DATE = 1;
export const FOUND_TIME = 2;
export const FOUND_TIMESTAMP = 4;
/** Set by TimeMacroScanner.scan for a text file (one a compiler may have read as source). */
export const SCANNED_TEXT = 8;

const MACROS: ReadonlyArray<[Buffer, number]> = [
  [Buffer.from('__DATE__'), FOUND_DATE],
  [Buffer.from('__TIME__'), FOUND_TIME],
  [Buffer.from('__TIMESTAMP__'), FOUND_TIMESTAMP],
];

function isIdentChar(c: number | undefined): boolean {
  return c !== undefined && (c === 0x5f || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a));
}

/** Which of the three macros the text names as whole identifiers (FOUND_* bits). */
export function scanTimeMacros(text: Buffer): number {
  let found = 0;
  for (const [needle, bit] of MACROS) {
    // Buffer.indexOf is a native substring search: faster than a byte loop in JS.
    for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
      if (!isIdentChar(text[at - 1]) && !isIdentChar(text[at + needle.length])) {
        found |= bit;
        break;
      }
    }
  }
  return found;
}

// Programs whose run means C-family source was preprocessed: gcc's compilers
// proper, clang (its -cc1 runs in the driver's process), and the wrappers
// that may answer from their own cache without running either.
export const GCC_PROPER = /^cc1(plus|obj|objplus)?$/;
const CLANG = /^clang(\+\+)?(-\d+(\.\d+)*)?$/;
const WRAPPERS = /^(ccache|distcc)$/;

export interface Compilers {
  any: boolean;
  clang: boolean;
}

/** Looks at the programs a line exec'd (and what their symlinks name: /usr/lib/ccache/gcc is ccache). */
export function compilersRun(execed: readonly string[]): Compilers {
  const out: Compilers = { any: false, clang: false };
  for (const p of execed) {
    const names = [p];
    try {
      names.push(realpathSync(p));
    } catch {
      /* gone: its own name is all there is */
    }
    for (const n of names) {
      const base = n.slice(n.lastIndexOf('/') + 1);
      if (CLANG.test(base)) out.clang = true;
      if (out.clang || GCC_PROPER.test(base) || WRAPPERS.test(base)) out.any = true;
    }
  }
  return out;
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
// Precompiled headers are binary: ccache does not scan them either.
const PRECOMPILED = /\.(gch|pch|pcm)$/;
const MAX_ANSWERS = 100_000;

/** Scans files by content digest, remembering each answer (a kernel build reads the same headers thousands of times). */
export class TimeMacroScanner {
  private answers = new Map<string, number>();

  /**
   * FOUND_* bits of the file whose content had `digest`, with SCANNED_TEXT
   * for a text file; 0 for a binary, a listing or an absent file; undefined
   * when the file no longer holds that content.
   */
  scan(path: string, digest: string): number | undefined {
    if (PRECOMPILED.test(path) || !/^[0-9a-f]{64}$/.test(digest)) return 0;
    const known = this.answers.get(digest);
    if (known !== undefined) return known;
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch {
      return undefined;
    }
    if (sha256(data) !== digest) return undefined;
    const found = data.subarray(0, 4).equals(ELF_MAGIC) ? 0 : SCANNED_TEXT | scanTimeMacros(data);
    if (this.answers.size >= MAX_ANSWERS) this.answers.clear();
    this.answers.set(digest, found);
    return found;
  }
}
