// What a build's record keeps for replaying it later (ReplayBasis): make's
// inputs from the make log, valued, and what each output of the build's
// lines held at its end. Computed by the daemon when the build ends.
import { resolve } from 'node:path';
import type { BuildRecord, ReplayBasis } from '../builds/record.js';
import type { FileState } from '../fingerprint/file-state.js';
import { parseMakeLog, valueMakeReads } from './make-inputs.js';
import { valueNow } from './plan.js';
import { statsDigest, watchedPaths } from './unchanged.js';

/** Resolved output paths of the record's hits and misses. */
export function producedPaths(rec: BuildRecord): Set<string> {
  const out = new Set<string>();
  for (const l of rec.lines) if (l.kind === 'hit' || l.kind === 'miss') for (const k of l.outputs) out.add(resolve(rec.paths[k]!));
  return out;
}

export function computeBasis(rec: BuildRecord, makeLog: Buffer | undefined, envDigest: string, state: FileState): ReplayBasis {
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
  return { ...full, stats: statsDigest(watchedPaths({ ...rec, basis: full })) };
}
