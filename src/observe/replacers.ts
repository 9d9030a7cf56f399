// Whether a line's probes of the files it then replaces whole may be keyed as
// "absent or a file" instead of the existence they saw (accesses.ts). gcc,
// as, ld and objcopy stat their output before replacing it; keyed as seen, an
// entry made in a clean tree misses on every touch rebuild and one made with
// the outputs in place misses after `make clean`.
//
// Why not for every line. A trace cannot say which process made a probe, nor
// whether a write depended on it; the cases where keying "absent or a file"
// would restore what plain make does not produce:
// - `test -e out || cp src out` writes out only when it is absent; with it
//   present the run writes nothing and keeps its probe, but the entry made
//   when it was absent would be restored over an out that exists: after src
//   went v1 (out absent: out=v1), v2 (out removed first: out=v2), v1 again,
//   plain make keeps out=v2 and that entry would write v1.
// - `[ -e o ] && gcc -DAGAIN -o o … || gcc -o o …`: each branch writes o whole,
//   so its trace looks like a plain compile; either entry restored in the
//   other state is the other branch's object.
// - `sh check.sh; gcc -o o …` where the script tests o and writes another file.
// - `rm o; …` (no -f) prints an error when o is absent; `mkdir d` (no -p) fails
//   when d exists; `cp`/`>` truncate an existing file in place (its mode and
//   hard links stay, a symlink is written through); `ar` adds to an archive
//   that exists; `mv` onto a directory moves inside it.
// Restoring "replaces the path whole" (restore.ts) does not help: the first
// two write nothing, or something else, in the state they did not see.
//
// So the judgement is about the line up to the change: every program started
// before the path was first changed must be one known to replace its output
// whatever was there (the GNU toolchain: BFD unlinks an ordinary file before
// writing; the compiler driver writes nothing of its own; clang renames a new
// file over it), the shell must be
// the line's one dash with a text that cannot test a file, and rm and mkdir
// only as rm -f and mkdir -p. Programs started after the change (kbuild's
// fixdep and objtool after the compile) saw only what the line made. (cc1 -S and cpp -E
// truncate their -o file in place: a run with it present is no whole
// replacement and keeps its probe; an entry made with it absent restores the
// same bytes as a new file, with the mode it was made with.) The value then
// holds only for an absent path or a regular file of one link (key.ts). What
// is left trusted: that a program named like a GNU tool is one, and that such
// a tool does not read its own output path as an input when it exists (a
// compile that includes its own -o file, which plain make itself builds
// differently clean and incremental). Anything else keeps the probe as it was
// seen: a miss, never a wrong output.
import { basename } from 'node:path';
import type { TraceEvent } from './trace-log.js';

// Basenames, after an optional `<triplet>-` prefix and `-<version>` suffix
// (Debian's /usr/bin/x86_64-linux-gnu-gcc-12). Not ar (it adds to an archive
// that exists), not cp or shell redirections (they truncate in place: the old
// file's mode, links and symlink decide where and how the bytes land), not mv
// (onto a directory it moves inside), not ccache or icecc (untested here).
const TOOLS = new Set([
  'gcc', 'cc', 'g++', 'c++', 'cpp', 'cc1', 'cc1plus', 'collect2', 'lto-wrapper',
  'as', 'ld', 'ld.bfd', 'ld.gold', 'objcopy', 'strip',
  // clang compiles and assembles in its own process and writes each output to
  // a temporary name it renames over the old file (a non-file output, such as
  // /dev/null, is written in place: no whole replacement, so its probe stays);
  // a link it hands to ld. Not ld.lld: it opens the old output to unlink it,
  // which the trace shows as a read (an input, valued by its content).
  'clang', 'clang++',
  // distcc unlinks a regular file at the output path before it writes the
  // object a server sent back, "as BFD does" (traced: s, d, then w of the -o
  // file); a local fallback runs the compiler, which is judged itself.
  'distcc',
]);

/** The shell that runs lines: dash only (bash reads BASH_ENV, a script kbx cannot see into here). */
const SHELLS = new Set(['dash']);

// A shared object loaded at start (x events list them with the program).
const LIBRARY = /\.so(?:\.[0-9.]+)?$/;

function isTool(p: string): boolean {
  const name = basename(p).replace(/-[0-9][0-9.]*$/, '');
  // The whole name or what follows any '-': `gcc`, `x86_64-linux-gnu-gcc`, `lto-wrapper`.
  for (let i = 0; i < name.length; i = name.indexOf('-', i) + 1 || name.length) if (TOOLS.has(name.slice(i))) return true;
  return false;
}

// Shell words that observe files or build commands kbx cannot read from the
// text: test and [ (dash builtins that stat), eval, aliases, sourced files,
// PATH lookups of names, and directory changes (chdir is not traced).
const FORBIDDEN_WORDS = new Set([
  'test', '[', '[[', ']]', 'eval', 'alias', '.', 'source', 'command', 'type', 'hash',
  'cd', 'pushd', 'popd', 'noclobber', 'shopt', 'compgen',
]);

// Programs that are blind to what was there only with a flag, checked in the
// text: rm without -f complains and fails when the file is absent, mkdir
// without -p when the directory exists.
const NEEDS_FLAG = new Map([
  ['rm', 'f'],
  ['mkdir', 'p'],
]);
// Where such a program counts as rm or mkdir: run by name, or from a system
// bin directory. Any other path ending in /rm is an argument in the text (Linux's
// `-I …/arch/x86/realmode/rm`), and a program run from one stops the blind
// part of the line (blindUntil).
const SYSTEM_BIN = /^\/(usr\/)?(local\/)?s?bin\/[^/]+$/;

/**
 * Why the shell's own part of the line might depend on a file's existence, or
 * undefined. Conservative by design: quoting is dropped before words are
 * split, so `te''st` is seen as `test`, and any expansion (`$x`, `$(…)`, a
 * backquote) or glob character could make a word the text does not show.
 */
export function shellTextRisk(command: string): string | undefined {
  if (/\$[A-Za-z_{(]|`/.test(command)) return 'expansion';
  const words = command
    .replace(/['"\\]/g, '')
    .split(/[\s;&|()<>{}!]+/)
    .filter((w) => w !== '');
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (FORBIDDEN_WORDS.has(w)) return `word ${w}`;
    if (/[*?[\]]/.test(w)) return `glob ${w}`;
    // set -C (noclobber) makes `>` fail on a file that exists.
    if (w === 'set') for (let j = i + 1; j < words.length && /^[-+]/.test(words[j]!); j++) if (/[Co]/.test(words[j]!)) return `set ${words[j]}`;
    const base = w.slice(w.lastIndexOf('/') + 1);
    const needs = w === base || SYSTEM_BIN.test(w) ? NEEDS_FLAG.get(base) : undefined;
    if (needs && !(words[i + 1] ?? '').match(/^-[a-zA-Z]+$/)?.[0].includes(needs)) return `${w} without -${needs}`;
  }
  return undefined;
}

/**
 * How far into the trace the line is blind to what was at a path it replaces
 * whole: the index of the first event that starts a program not known to
 * replace its output blindly (or a second shell), events.length if none, -1
 * if the command text may test files itself. A path whose first change comes
 * before that index may be keyed "absent or a file": a program that starts
 * after the change cannot have seen what was there. The tracer writes a
 * change after the call returned and a process's `x` lines before its program
 * runs, so an `x` after the change in the log started after it; an `e` (the
 * parent's, before the exec) after the change is later still.
 */
export function blindUntil(events: readonly TraceEvent[], command: string): number {
  if (shellTextRisk(command) !== undefined) return -1;
  let shells = 0;
  for (const [i, ev] of events.entries()) {
    if (ev.op !== 'x' && ev.op !== 'e') continue;
    if (ev.op === 'x' && LIBRARY.test(ev.path)) continue;
    const name = basename(ev.path);
    if (SHELLS.has(name) || name === 'sh') {
      // The line's own shell: its x event only. A second shell runs a script kbx cannot read.
      if (ev.op === 'e' || ++shells > 1) return i;
      continue;
    }
    if (NEEDS_FLAG.has(name) ? !SYSTEM_BIN.test(ev.path) : !isTool(ev.path)) return i;
  }
  return events.length;
}
