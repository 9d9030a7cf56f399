// What a build's record keeps for replaying it later (ReplayBasis): make's
// inputs from the make log, valued, and what each output of the build's
// lines held at its end. Computed by the daemon when the build ends.
import { dirname, resolve } from 'node:path';
import type { BuildRecord, ReplayBasis } from '../builds/record.js';
import type { FileState } from '../fingerprint/file-state.js';
import { parseMakeLog, valueMakeReads } from './make-inputs.js';
import { valueNow } from './plan.js';
import { changedSince, statsDigest, watchedPaths } from './unchanged.js';

/** Resolved output paths of the record's hits and misses. */
export function producedPaths(rec: BuildRecord): Set<string> {
  const out = new Set<string>();
  for (const l of rec.lines) if (l.kind === 'hit' || l.kind === 'miss') for (const k of l.outputs) out.add(resolve(rec.paths[k]!));
  return out;
}

/**
 * `ended`: the file system's clock when make had exited (unchanged.ts fsNow).
 * A path the record values that changed since (the user's next command ran
 * while the record was being written) leaves the build without a basis: the
 * next build is not replayed, make judges the tree.
 */
export function computeBasis(rec: BuildRecord, makeLog: Buffer | undefined, envDigest: string, state: FileState, ended: bigint): ReplayBasis {
  const index = new Map<string, number>();
  rec.paths.forEach((p, i) => index.set(resolve(p), i));
  const indexOf = (p: string) => {
    let i = index.get(p);
    if (i === undefined) {
      i = rec.paths.push(p) - 1;
      index.set(p, i);
    }
    return i;
  };
  const ends: Array<[number, string]> = [];
  const seen = new Set<number>();
  for (const l of rec.lines) {
    if (l.kind !== 'hit' && l.kind !== 'miss') continue;
    for (const k of l.outputs) {
      const i = indexOf(resolve(rec.paths[k]!));
      if (seen.has(i)) continue;
      seen.add(i);
      ends.push([i, valueNow(state, rec.paths[i]!).value]);
    }
  }
  const basis: ReplayBasis = { envDigest, produced: [], ends };
  if (!makeLog) return { ...basis, unknown: 'no make log' };
  const parsed = parseMakeLog(makeLog);
  if ('bad' in parsed) return { ...basis, unknown: parsed.bad };
  const { inputs, producedReads } = valueMakeReads(parsed.reads, producedPaths(rec), state);
  const full: ReplayBasis = { ...basis, makeInputs: inputs, produced: producedReads.map(indexOf) };
  const watched = watchedPaths({ ...rec, basis: full });
  const stats = statsDigest(watched);
  // Checked after valuing: a change before or during it is dated after `ended`.
  const absentOnes = inputs.filter((i) => i.k !== 'c').map((i) => dirname(i.p));
  const late = changedSince([...watched, ...absentOnes], ended);
  if (late) return { ...basis, unknown: `${late} changed after the build ended, before its record was written` };
  return { ...full, stats };
}
