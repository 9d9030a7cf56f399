// Replay's no-op shortcut (ARCHITECTURE.md, Replay): at a build's end the
// record keeps one digest of the stats (inode, size, mtime) of every path its
// lines wrote or read and every file make read. When the tree still stats the
// same before the next make, it is as that build left it: a plan would keep
// every output as it is and date none (no input is newer than it was when
// make last judged), so there is nothing to plan, read or hash.
//
// Skipping replay is always safe (make then judges the tree alone, as without
// replay); the digest only has to say when a plan would find nothing to do.
import { lstatSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BuildRecord } from '../builds/record.js';
import { sha256 } from '../util/hash.js';

/** The paths whose stats the digest covers, in a fixed order. */
export function watchedPaths(rec: BuildRecord): string[] {
  const idx = new Set<number>();
  for (const l of rec.lines) {
    if (l.kind !== 'hit' && l.kind !== 'miss') continue;
    for (const k of l.outputs) idx.add(k);
    for (const k of l.inputs) idx.add(k);
  }
  const paths = new Set<string>();
  for (const k of idx) paths.add(resolve(rec.paths[k]!));
  for (const i of rec.basis?.makeInputs ?? []) if (i.k === 'c') paths.add(i.p);
  return [...paths].sort();
}

function statOf(p: string) {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

function statValue(st: ReturnType<typeof statOf>): string {
  if (!st) return '-';
  // A directory by kind alone: lines write temporary files in output directories.
  if (st.isDirectory()) return 'd';
  return `${st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o'}${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** One digest of the stats of `paths` now. */
export function statsDigest(paths: readonly string[]): string {
  const h: string[] = [];
  for (const p of paths) h.push(`${p}\0${statValue(statOf(p))}`);
  return `s1:${sha256(h.join('\n'))}`;
}

/**
 * The file system's clock now: the ctime of a file written in `dir` (a change
 * is dated by the kernel's coarse clock, which lags the wall clock by up to a
 * tick, so Date.now() cannot be compared with ctimes). 0 (every path counts as
 * changed since) if it cannot write, or if the date is not this machine's
 * (an NFS server dates files by its own clock).
 */
export function fsNow(dir: string): bigint {
  const marker = join(dir, '.build-ended');
  try {
    writeFileSync(marker, '');
    const ctime = lstatSync(marker, { bigint: true }).ctimeNs;
    return Math.abs(Number(ctime / 1_000_000n) - Date.now()) < 1000 ? ctime : 0n;
  } catch {
    return 0n;
  }
}

/**
 * The first of `paths` changed (its ctime: content, mode, links, a directory's
 * entries) after `since` (fsNow), or undefined. The record of a build is
 * written after `kbx make` returned, and by then the user may have run
 * `make clean` or edited a makefile: a record valued from that tree would
 * take it for the build's end, and replay would restore outputs of the old
 * makefile over the new one. A change in the same clock tick as `since`
 * (a few ms after make exited) is not seen.
 */
export function changedSince(paths: Iterable<string>, since: bigint): string | undefined {
  for (const p of paths) {
    const st = statOf(p);
    if (st && st.ctimeNs > since) return p;
  }
  return undefined;
}

/** The record's lines a no-op carries into the new build's record: every hit and stored miss. */
export function carriedLines(rec: BuildRecord): number[] {
  const out: number[] = [];
  rec.lines.forEach((l, i) => {
    if ((l.kind === 'hit' || l.kind === 'miss') && l.weak && l.strong) out.push(i);
  });
  return out;
}
