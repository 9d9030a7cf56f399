// Pseudo-inputs for the programs a line executed: whether each may still be
// executed. A program's bytes are a content input, but exec also needs its
// execute permission, which no digest holds: after `chmod -x scripts/gen.sh`
// plain make fails that line (126, Permission denied), and a hit would
// restore what the script made before. Only the execute bits are keyed, not
// the whole mode: git checks out 0644 or 0755 whatever the umask, so two
// checkouts of one tree share these values, and the read and write bits of a
// file whose bytes a line could read change nothing it makes.
//
// The same holds for a file whose execute permission a line asked about
// (`[ -x tool ] && ./tool`, a PATH search passing over a file it cannot run):
// what the line did depended on the answer.
//
// An `exec` entry: p the path handed to exec (a script, not its interpreter;
// a symlink is followed as exec follows it) or asked about, v `x` when any
// execute bit is set, `-` when none, or what else is there now (`absent`,
// `other`).
import { statSync } from 'node:fs';
import type { PathEntry } from './key.js';

/** The value of an `exec` pseudo-input now. */
export function execValue(p: string): string {
  let st;
  try {
    st = statSync(p, { throwIfNoEntry: false });
  } catch {
    return 'absent'; // ENOTDIR, EACCES: exec would fail too
  }
  if (!st) return 'absent';
  if (!st.isFile()) return 'other';
  return (st.mode & 0o111) !== 0 ? 'x' : '-';
}

/**
 * The entries a line adds for the programs it executed (accesses.ts
 * `execed`) and the paths whose execute permission it asked about
 * (`execProbed`: `[ -x f ]`, a PATH candidate it passed over), but not for
 * `skip` (compiler wrappers a line is keyed without: wrappers.ts). A probed
 * directory adds nothing: X_OK asks for its search permission, and its
 * existence entry already says it is a directory. The tracer logs absolute
 * paths; any other is left out.
 */
export function execInputs(execed: readonly string[], probed: readonly string[], skip: (p: string) => boolean): PathEntry[] {
  const out = new Map<string, PathEntry>();
  const add = (p: string, ran: boolean) => {
    if (out.has(p) || !p.startsWith('/') || skip(p)) return;
    const v = execValue(p);
    if (ran || v !== 'other') out.set(p, { k: 'exec', p, v });
  };
  for (const p of execed) add(p, true);
  for (const p of probed) add(p, false);
  return [...out.values()].sort((a, b) => (a.p < b.p ? -1 : a.p > b.p ? 1 : 0));
}
