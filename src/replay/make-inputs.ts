// What make itself read when it decided what to run (docs/PROTOCOL.md section
// 3, "Make log"): the makefiles and included files, the includes it found
// absent, and its $(wildcard) and include patterns with how many names they
// matched. Replay is allowed only while these hold (ARCHITECTURE.md, Replay):
// then make parses the same rules and commands as in the recorded build.
//
// Values: a file make read is valued by its content at the recorded build's
// end (make reads its makefiles again after remaking one, so the end is what
// its last parse saw); an absent include and a pattern without wildcards by
// what make found when it looked (the build makes some of them later); a
// pattern with wildcards by the names it matches at the end.
//
// Paths that lines of the build wrote (kbuild's .cmd files, a generated
// makefile, the targets kbuild's $(wildcard $(targets)) looks for) are not
// compared here: replay itself puts them back as the build left them, and
// planReplay refuses to replay at all when one of them cannot be (plan.ts).
import { readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { FileState } from '../fingerprint/file-state.js';
import { sha256 } from '../util/hash.js';

export interface MakeRead {
  k: 'c' | 'a' | 'g';
  p: string;
  /** g: how many names the pattern matched when make looked. */
  n?: number;
}

export type MakeInput = { k: 'c' | 'a' | 'g'; p: string; v: string };

/** Parses a make log; a line that is not r, a or g (a `!`, a torn last line) makes it unusable. */
export function parseMakeLog(buf: Buffer): { reads: MakeRead[] } | { bad: string } {
  const text = buf.toString('utf8');
  if (text.length && !text.endsWith('\n')) return { bad: 'make log ends mid-line' };
  const seen = new Set<string>();
  const reads: MakeRead[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    let read: MakeRead | undefined;
    const m = /^g (\d+) (\/.*)$/.exec(line);
    if (m) read = { k: 'g', p: resolve(m[2]!), n: Number(m[1]) };
    else if (/^[ra] \//.test(line)) read = { k: line[0] === 'r' ? 'c' : 'a', p: resolve(line.slice(2)) };
    else return { bad: `make log: ${line.slice(0, 200)}` };
    const key = `${read.k}${read.p}`;
    if (seen.has(key)) continue; // the first look decides an absent include or a pattern
    seen.add(key);
    reads.push(read);
  }
  return { reads };
}

const MAGIC = /[*?[]/;

/** fnmatch(3) of one name, without FNM_PERIOD's exception for a pattern that starts with a dot. */
function nameMatcher(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '\\' && i + 1 < pattern.length) re += escape(pattern[++i]!);
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body[0] === '!' || body[0] === '^') body = '^' + body.slice(1);
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += escape(ch);
  }
  return new RegExp(`^${re}$`);
}

function escape(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * The paths a wildcard pattern matches now, less the paths the build wrote, as
 * one digest. Wildcards may stand in any component (kbuild's top Makefile
 * looks for every `*_defconfig` in each directory under `arch/x86/configs`):
 * each is matched against the names in the directories matched so far, as
 * glob(3) does.
 */
export function globValue(pattern: string, produced: ReadonlySet<string>): string {
  const parts = pattern.split('/').filter(Boolean);
  let dirs = ['/'];
  let i = 0;
  for (; i < parts.length && !MAGIC.test(parts[i]!); i++) dirs = [join(dirs[0]!, parts[i]!)];
  const list = (d: string) => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  for (; i < parts.length; i++) {
    const part = parts[i]!;
    const next: string[] = [];
    if (!MAGIC.test(part)) {
      for (const d of dirs) if (list(d).includes(part)) next.push(join(d, part));
    } else {
      const re = nameMatcher(part);
      const hidden = part.startsWith('.');
      for (const d of dirs) for (const n of list(d)) if ((hidden || !n.startsWith('.')) && re.test(n)) next.push(join(d, n));
    }
    dirs = next;
  }
  const hits = dirs.filter((p) => !produced.has(p));
  return `m:${sha256(hits.sort().join('\0'))}`;
}

function valueNow(state: FileState, r: { k: string; p: string }, produced: ReadonlySet<string>): string {
  if (r.k === 'c') return state.content(r.p);
  if (r.k === 'a') return state.exists(r.p) ? 'present' : 'absent';
  if (MAGIC.test(r.p)) return globValue(r.p, produced);
  return state.exists(r.p) ? 'n1' : 'n0';
}

/** kbuild's command file of target D/X: D/.X.cmd. */
export function cmdFileOf(target: string): string {
  return join(dirname(target), `.${basename(target)}.cmd`);
}

/**
 * kbuild's `existing-targets := $(wildcard $(targets))` and `-include` of each
 * one's `D/.X.cmd`, for a target X that no cached line wrote (the link of
 * vmlinux passes through the shim): whether X exists decides only whether make
 * reads its .cmd, and a .cmd defines X's command, prerequisites and rule alone.
 * Replay never writes X, so make judges X by what it finds there, as without
 * replay; neither read is part of the gate. Recognised by the pair: a literal
 * look for D/X and a read of D/.X.cmd (in the log, or the .cmd exists at the
 * build's end because X was made after make looked).
 */
function kbuildTargetRead(r: MakeRead, looked: ReadonlySet<string>, read: ReadonlySet<string>, state: FileState): boolean {
  if (r.k === 'g') return read.has(cmdFileOf(r.p)) || state.exists(cmdFileOf(r.p));
  const m = /^\.(.+)\.cmd$/.exec(basename(r.p));
  return !!m && looked.has(join(dirname(r.p), m[1]!));
}

/**
 * Values make's reads at the end of the recorded build. Returns the inputs
 * the gate compares and the reads that are outputs of the build's lines.
 */
export function valueMakeReads(reads: readonly MakeRead[], produced: ReadonlySet<string>, state: FileState): { inputs: MakeInput[]; producedReads: string[] } {
  const inputs: MakeInput[] = [];
  const producedReads: string[] = [];
  const looked = new Set(reads.filter((r) => r.k === 'g' && !MAGIC.test(r.p)).map((r) => r.p));
  const read = new Set(reads.filter((r) => r.k !== 'g').map((r) => r.p));
  for (const r of reads) {
    const literal = r.k !== 'g' || !MAGIC.test(r.p);
    if (literal && produced.has(r.p)) {
      producedReads.push(r.p);
      continue;
    }
    if (literal && kbuildTargetRead(r, looked, read, state)) continue;
    let v: string;
    if (r.k === 'a') v = 'absent';
    else if (r.k === 'g' && literal) v = (r.n ?? 0) > 0 ? 'n1' : 'n0';
    else v = valueNow(state, r, produced);
    inputs.push({ k: r.k, p: r.p, v });
  }
  return { inputs, producedReads };
}

/** The first of make's inputs that does not hold now, described; undefined when all hold. */
export function firstChangedMakeInput(inputs: readonly MakeInput[], produced: ReadonlySet<string>, state: FileState): string | undefined {
  for (const i of inputs) {
    const now = valueNow(state, i, produced);
    if (now !== i.v || now === 'unknown') return `${i.p} (${i.k === 'c' ? 'content' : i.k === 'a' ? 'was absent' : 'pattern matches'} changed)`;
  }
  return undefined;
}
