// Compiler wrappers (distcc, icecc, ccache, sccache) are transparent to the
// key of a compile: `distcc gcc -c x.c` makes the object `gcc -c x.c` makes
// (the farm runs the same compiler version: the user's contract with distcc
// and icecream, as with ccache), so both share entries. Only there: other
// calls through a wrapper differ (see compiles()). A line whose text runs a
// wrapped compile is keyed without its wrapper words (command text and
// environment) and without the wrapper's own program (line-cache.ts); what
// identifies the real compiler (the driver, cc1 and the assembler that ran,
// by their bytes) stays. Every other line's weak key is taken without the
// environment's wrappers too, so that `ar` or `ld` lines share entries across
// CC="distcc gcc" and CC=gcc; but a run of such a line that ran a compiler or
// a wrapper (ranCompilerOrWrapper) holds only under the same wrappers: its
// path set has an `env` entry of what they add to the environment.
import { basename } from 'node:path';
import { canonicalSavedCommand } from '../kernel/cmd-file.js';
import { GCC_PROPER } from '../observe/time-macros.js';

export const WRAPPER_NAMES = ['distcc', 'icecc', 'ccache', 'sccache'] as const;
export type WrapperName = (typeof WRAPPER_NAMES)[number];

// A compiler driver by its file name, with a target prefix or a version
// suffix (x86_64-linux-gnu-gcc-12, clang-16, cc, c++).
const DRIVER = /^(?:[\w.+]+-)*(?:gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+)(?:-[\d.]+)?$/;

/**
 * Whether a line ran a compiler driver or a wrapper (the programs its trace
 * shows exec'd): what it made may then depend on the wrappers its
 * environment names (`$CC --version` through distcc names another gcc), so a
 * line that is not a wrapped compile keeps them in its path set (line-cache.ts).
 */
export function ranCompilerOrWrapper(execed: readonly string[]): boolean {
  return execed.some((p) => {
    const base = basename(p);
    return DRIVER.test(base) || GCC_PROPER.test(base) || base === 'icerun' || wrapperName(base) !== undefined;
  });
}

export function wrapperName(word: string): WrapperName | undefined {
  if (!/^[\w./+-]+$/.test(word)) return undefined;
  return WRAPPER_NAMES.find((n) => n === basename(word));
}

// Variables that change what the wrapped compile produces stay in the key:
// ccache's base_dir rewrites paths in the object and the dependency file;
// run_second_cpp changes warnings and debug line info; the compiler choices
// pick another compiler than the command names.
const VARIABLES_KEPT = new Set(['CCACHE_BASEDIR', 'CCACHE_CPP2', 'CCACHE_NOCPP2', 'CCACHE_COMPILER', 'CCACHE_CC', 'ICECC_CC', 'ICECC_CXX', 'ICECC_CLANG_REMOTE_CPP']);

// Variables that change what a wrapper does outside a compile: Debian's distcc
// runs `gcc` as `x86_64-linux-gnu-gcc` (so `distcc gcc --version` names it,
// and kbuild writes that into CONFIG_CC_VERSION_TEXT) unless this is set.
const VARIABLES_KEPT_OUTSIDE_COMPILES = new Set(['DISTCC_NO_REWRITE_CROSS']);

/**
 * A variable that only steers a wrapper (its hosts, its cache, its logs): no
 * part of the key. `inCompile`: the line is keyed without its wrapper
 * (it runs a wrapped compile, whose object the variable does not change).
 */
export function isWrapperVariable(name: string, inCompile = false): boolean {
  if (!/^(DISTCC|ICECC|CCACHE|SCCACHE)_/.test(name) || VARIABLES_KEPT.has(name)) return false;
  return inCompile || !VARIABLES_KEPT_OUTSIDE_COMPILES.has(name);
}

/**
 * An environment or make variable's value without the wrapper words it starts
 * with (`CC=distcc gcc` → `gcc`), only when a compiler word follows. In
 * MAKEFLAGS make writes a blank in a value as `\ `.
 */
export function stripWrapperValue(value: string, blank = ' '): string {
  let v = value;
  for (;;) {
    const at = v.indexOf(blank);
    if (at <= 0 || !wrapperName(v.slice(0, at))) return v;
    const rest = v.slice(at + blank.length);
    if (rest === '' || rest.startsWith('-') || rest.startsWith(' ') || rest.startsWith('\\')) return v;
    v = rest;
  }
}

/** MAKEFLAGS with the wrapper words taken out of each `NAME=value` on make's command line. */
export function stripWrappersInMakeflags(makeflags: string): string {
  const dash = makeflags.indexOf(' -- ');
  if (dash < 0) return makeflags;
  // After ` -- `: the variables, separated by unescaped blanks, blanks inside escaped as `\ `.
  const vars = makeflags.slice(dash + 4).split(/(?<!\\) /);
  return (
    makeflags.slice(0, dash + 4) +
    vars
      .map((assign) => {
        const eq = assign.indexOf('=');
        return eq < 0 ? assign : assign.slice(0, eq + 1) + stripWrapperValue(assign.slice(eq + 1), '\\ ');
      })
      .join(' ')
  );
}

// Words after which the next word starts a command.
const RESERVED = new Set(['then', 'do', 'else', 'elif', 'if', 'while', 'until', '!', '{', 'time', 'exec']);
const OPERATOR = /[;&|()\n]/;
const BLANK = /[ \t]/;

interface Word {
  raw: string;
  /** Index of this word in the output pieces. */
  piece: number;
}

/**
 * The end (exclusive) of the shell word starting at i: quotes, backslashes,
 * `$(…)` and backquotes are part of it; a blank or operator outside them ends it.
 */
function wordEnd(text: string, i: number): number {
  let depth = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\\') i += 2;
    else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      i = close < 0 ? text.length : close + 1;
    } else if (c === '"' || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      i = j + 1;
    } else if (c === '$' && text[i + 1] === '(') {
      depth++;
      i += 2;
    } else if (c === ')' && depth > 0) {
      depth--;
      i++;
    } else if (depth === 0 && (BLANK.test(c) || OPERATOR.test(c))) return i;
    else i++;
  }
  return Math.min(i, text.length);
}

/**
 * Whether the simple command from i on compiles or preprocesses (`-c`, `-S`,
 * `-E`): the calls a wrapper hands to the compiler unchanged in effect. Any
 * other call is not transparent: distcc runs `gcc --version` locally as
 * `x86_64-linux-gnu-gcc`, which prints that name, so kbuild's
 * CC_VERSION_TEXT changed with the wrapper and syncconfig ran forever.
 */
function compiles(text: string, i: number): boolean {
  return someWord(text, i, (w) => w === '-c' || w === '-S' || w === '-E');
}

/** Whether a word of the simple command from i on (quotes taken off its ends) passes the test. */
function someWord(text: string, i: number, test: (word: string) => boolean): boolean {
  while (i < text.length && !OPERATOR.test(text[i]!)) {
    if (BLANK.test(text[i]!)) {
      i++;
      continue;
    }
    const end = wordEnd(text, i);
    if (test(text.slice(i, end).replace(/^['"]|['"]$/g, ''))) return true;
    i = end;
  }
  return false;
}

/**
 * Whether the simple command from i on asks gcc to record its options in the
 * object (`-g…` but `-g0`, `-frecord-gcc-switches`). icecream compiles
 * remotely with `-fdirectives-only` and `--param` options of its own, which
 * gcc then records (DW_AT_producer): the object differs from a local
 * compile's, so such an icecc command keys apart from gcc.
 */
function recordsSwitches(text: string, i: number): boolean {
  return someWord(text, i, (w) => (w.startsWith('-g') && w !== '-g0') || w === '-frecord-gcc-switches');
}

export interface Stripped {
  /** The text the key holds. */
  text: string;
  /** The wrappers taken out, in order. */
  wrappers: WrapperName[];
}

/**
 * The command text as the key holds it: a wrapper word that starts a simple
 * command and is followed by a compiler word that compiles or preprocesses
 * (`distcc gcc -c …`, `ccache distcc gcc -E …`) is left out, with the blanks
 * after it; and the command kbuild saves
 * in a `.cmd` file (fixdep's third argument, `printf '%s\n' 'cmd_… := …'`:
 * kernel/cmd-file.ts) is stripped the same way, as that file is written
 * without the wrapper when stored and with the current one when restored.
 * Wrapper words anywhere else (`echo distcc gcc`, `"$CC"`) stay: what the
 * line prints may depend on them.
 */
export function stripWrappers(text: string): Stripped {
  if (!WRAPPER_NAMES.some((n) => text.includes(n))) return { text, wrappers: [] };
  const pieces: string[] = [];
  const wrappers: WrapperName[] = [];
  let words: Word[] = [];
  let commandStart = true;
  const endCommand = () => {
    const saved = canonicalSavedCommand(words.map((w) => w.raw), (v) => stripWrappers(v).text);
    if (saved) pieces[words[saved.index]!.piece] = saved.raw;
    words = [];
    commandStart = true;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (BLANK.test(c)) {
      pieces.push(c);
      i++;
      continue;
    }
    if (OPERATOR.test(c)) {
      pieces.push(c);
      i++;
      endCommand();
      continue;
    }
    const end = wordEnd(text, i);
    const raw = text.slice(i, end);
    i = end;
    if (commandStart) {
      const wrapper = wrapperName(raw);
      let next = i;
      while (next < text.length && BLANK.test(text[next]!)) next++;
      const follower = text[next];
      const transparent = follower !== undefined && follower !== '-' && !OPERATOR.test(follower) && compiles(text, next);
      if (wrapper && transparent && !(wrapper === 'icecc' && recordsSwitches(text, next))) {
        wrappers.push(wrapper);
        i = next; // the blanks after the wrapper go with it
        continue;
      }
      if (!RESERVED.has(raw) && !/^[A-Za-z_]\w*=/.test(raw)) commandStart = false;
    }
    words.push({ raw, piece: pieces.length });
    pieces.push(raw);
  }
  endCommand();
  return { text: pieces.join(''), wrappers };
}

/** The words (raw) of each simple command of a line, split at operators outside quotes. */
export function simpleCommands(text: string): string[][] {
  const out: string[][] = [];
  let words: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (BLANK.test(c)) i++;
    else if (OPERATOR.test(c)) {
      i++;
      if (words.length) out.push(words);
      words = [];
    } else {
      const end = wordEnd(text, i);
      words.push(text.slice(i, end));
      i = end;
    }
  }
  if (words.length) out.push(words);
  return out;
}
