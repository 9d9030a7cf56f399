// What a recipe line does, read from its command text: the programs it runs
// and the build stage it belongs to. A rough shell reading (quotes respected,
// no expansion) is enough to tell a compile from a link in kbuild's lines.
import { posix } from 'node:path';

/** One simple command of a line: the program (its basename) and its arguments. */
export interface SimpleCommand {
  program: string;
  args: string[];
}

export type Stage = 'compile' | 'archive' | 'link' | 'kallsyms' | 'btf' | 'compress' | 'other';
export const STAGES: readonly Stage[] = ['compile', 'archive', 'link', 'kallsyms', 'btf', 'compress', 'other'];

// Words that run the next word: `env FOO=1 gcc`, `ccache gcc`, `sh script.sh`.
const WRAPPERS = new Set(['env', 'nice', 'time', 'exec', 'command', 'nohup', 'ccache', 'distcc', 'icecc', 'sccache', 'then', 'else', 'do', 'if', 'while', 'until', '!', '{']);
const INTERPRETERS = /^(sh|bash|dash|node|perl|python[\d.]*)$/;
// Builtins that set a line up before its real work (`set -e; make -f …`).
const SETUP = new Set(['set', 'cd', 'export', 'trap', 'umask', ':', 'true']);

// Shell tokens: blanks, quoted strings, escapes, redirections, separators,
// `$(`, runs of plain characters.
const TOKEN = /[ \t]+|'[^']*'?|"(?:[^"\\]|\\.)*"?|\\.?|\d*(?:[<>]&(?:\d+|-)|&>>?|>>|<<<?|<>|>\||[<>])|\$\(|[;&|()\n`]|[^ \t'"\\;&|()\n`$<>]+|\$/gy;
const REDIRECT = /^\d*[<>&]/;
// `2>&1`, `<&-`: a redirection with no file word after it.
const DUPLICATE = /&(\d+|-)$/;

/** Splits a shell command into simple commands (on ; & | ( ) newlines, backticks and `$(` outside quotes), leaving out redirections. */
export function simpleCommands(command: string): SimpleCommand[] {
  const out: SimpleCommand[] = [];
  let words: string[] = [];
  let word: string | undefined;
  let isTarget = false; // the next word is a redirection's file
  const endWord = () => {
    if (word !== undefined && !isTarget) words.push(word);
    if (word !== undefined) isTarget = false;
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    isTarget = false;
    const cmd = commandOf(words);
    if (cmd) out.push(cmd);
    words = [];
  };
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(command); m; m = TOKEN.exec(command)) {
    const t = m[0];
    const c = t[0]!;
    if (c === ' ' || c === '\t') endWord();
    else if (c === "'") word = (word ?? '') + t.slice(1, t.endsWith("'") && t.length > 1 ? -1 : undefined);
    else if (c === '"') word = (word ?? '') + t.slice(1, t.endsWith('"') && t.length > 1 ? -1 : undefined).replace(/\\(.)/g, '$1');
    else if (c === '\\') word = (word ?? '') + t.slice(1);
    else if (REDIRECT.test(t) && t !== '&') {
      endWord();
      isTarget = !DUPLICATE.test(t);
    } else if (t === '$(' || ';&|()\n`'.includes(t)) endCommand();
    else word = (word ?? '') + t;
  }
  endCommand();
  return out;
}

function commandOf(words: string[]): SimpleCommand | undefined {
  let i = 0;
  while (i < words.length && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!) || WRAPPERS.has(words[i]!))) i++;
  let program = words[i];
  if (program === undefined) return undefined;
  // An interpreter running a script: the script is what the line runs.
  if (INTERPRETERS.test(posix.basename(program))) {
    const script = words.slice(i + 1).findIndex((w) => !w.startsWith('-'));
    if (script >= 0) i += script + 1;
    program = words[i]!;
  }
  return { program: posix.basename(program), args: words.slice(i + 1) };
}

const CC = /^(.*-)?(gcc|cc|clang|g\+\+|c\+\+|clang\+\+)(-[\d.]+)?$/;
const AS = /^(.*-)?as$/;
const LD = /^(.*-)?ld(\.(bfd|gold|lld))?$|^ld\.lld$/;
const AR = /^(.*-)?(llvm-)?ar$/;
// xz_wrap.sh: how kbuild runs xz for the kernel image.
const COMPRESS = /^(gzip|pigz|xz|xz_wrap\.sh|lzma|lz4|zstd|bzip2|lzop)$/;

function stageOfCommand(c: SimpleCommand): Stage {
  const p = c.program;
  if (p === 'kallsyms') return 'kallsyms';
  if (p === 'pahole' || p === 'resolve_btfids') return 'btf';
  if (/^link-vmlinux(\.sh|\.js)?$/.test(p) || LD.test(p)) return 'link';
  if (CC.test(p)) {
    if (c.args.includes('-c') || c.args.includes('-S')) return 'compile';
    // A compiler driver that only preprocesses (linker scripts, .i files) or probes is no link.
    if (c.args.includes('-E') || !c.args.some((a) => !a.startsWith('-'))) return 'other';
    return 'link';
  }
  if (AS.test(p)) return 'compile';
  if (AR.test(p)) return 'archive';
  if (COMPRESS.test(p)) return 'compress';
  return 'other';
}

// When a line does several things (`rm -f x.a; ar …`, `ld …; gzip`), the
// stage that names its real work: the rarer, more specific stages first.
const PRIORITY: readonly Stage[] = ['kallsyms', 'btf', 'link', 'archive', 'compress', 'compile'];

/** The build stage of a recipe line, from the programs its command runs. */
export function stageOf(command: string): Stage {
  const found = new Set(simpleCommands(command).map(stageOfCommand));
  return PRIORITY.find((s) => found.has(s)) ?? 'other';
}

/** A line whose real work is running make (`make -f scripts/Makefile.build obj=fs`): its time is its children's. */
export function runsSubMake(command: string): boolean {
  const first = simpleCommands(command).find((c) => !SETUP.has(c.program));
  return first !== undefined && /^g?make$/.test(first.program);
}
