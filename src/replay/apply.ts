// Carries out a replay plan: fetches every blob first (in parallel; a missing
// or corrupt one sends its writers back to the planner), then writes the
// files that are missing under a temporary name and renames them, and gives
// each output that make must find up to date a fresh mtime, in the record's
// order, each a little later than the one before.
import { lstatSync, statSync, utimesSync } from 'node:fs';
import { mkdir, rename, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FileState } from '../fingerprint/file-state.js';
import { isSystemPath } from '../fingerprint/file-state.js';
import type { Store } from '../store/store.js';
import type { Plan, PlannedPath } from './plan.js';
import type { PathSetCache } from '../daemon/path-set-cache.js';
import type { RootNames } from '../fingerprint/root-names.js';
import { setDirMode } from '../daemon/restore.js';

const PARALLEL = 32;
// Successive outputs are dated this far apart: make compares mtimes, and the
// file system keeps nanoseconds, but a double of seconds since 1970 only
// about a quarter of a microsecond.
const STEP_NS = 10_000n;

async function eachLimited<T>(items: readonly T[], fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
}

/** Fetches the blobs of every file the plan restores; returns them, or the paths whose blob is gone. */
export async function fetchBlobs(store: Store, plan: Plan): Promise<{ blobs: Map<string, Buffer>; missing: PlannedPath[] }> {
  const blobs = new Map<string, Buffer>();
  const missing: PlannedPath[] = [];
  const wanted = plan.paths.filter((pp) => pp.action === 'restore' && pp.final.kind === 'file');
  await eachLimited(wanted, async (pp) => {
    const digest = (pp.final as { digest: string }).digest;
    if (blobs.has(digest)) return;
    const data = store.getBlobAsync ? await store.getBlobAsync(digest) : store.getBlob(digest);
    if (data) blobs.set(digest, data);
    else missing.push(pp);
  });
  return { blobs, missing: missing.filter((pp) => !blobs.has((pp.final as { digest: string }).digest)) };
}

export interface Applied {
  restored: number;
  refreshed: number;
}

/** Writes what the plan restores and dates the outputs; blobs from fetchBlobs. */
export async function applyPlan(plan: Plan, blobs: ReadonlyMap<string, Buffer>, state: FileState, pathSets: PathSetCache, names: RootNames): Promise<Applied> {
  const restore = plan.paths.filter((pp) => pp.action !== 'keep');
  // Directories first, then files and links: parents before what goes inside.
  for (const pp of restore) if (pp.final.kind === 'dir') await mkdir(pp.path, { recursive: true });
  await eachLimited(
    restore.filter((pp) => pp.final.kind !== 'dir'),
    async (pp) => {
      const tmp = `${pp.path}.kbx-tmp.${process.pid}`;
      await mkdir(dirname(pp.path), { recursive: true });
      await rm(tmp, { force: true });
      if (pp.final.kind === 'file') {
        await writeFile(tmp, blobs.get(pp.final.digest)!, { flag: 'wx', mode: pp.final.mode });
        await chmod(tmp, pp.final.mode); // the umask filtered writeFile's mode
      } else if (pp.final.kind === 'link') await symlink(pp.final.target, tmp);
      await rename(tmp, pp.path);
    },
  );

  // Dates: a restored file, and a kept one older than any input of its line
  // (as dated after this replay), gets the next time; others keep theirs.
  const restoredSet = new Set(restore.map((pp) => pp.path));
  const inputsOf = new Map<number, string[]>();
  for (const l of plan.lines) inputsOf.set(l.index, pathSets.contentPaths(l.set, names));
  const newTime = new Map<string, bigint>();
  const statCache = new Map<string, bigint>();
  const mtimeOf = (p: string): bigint => {
    const t = newTime.get(p);
    if (t !== undefined) return t;
    let m = statCache.get(p);
    if (m === undefined) {
      try {
        m = statSync(p, { bigint: true }).mtimeNs;
      } catch {
        m = 0n;
      }
      statCache.set(p, m);
    }
    return m;
  };
  const files = plan.paths.filter((pp) => pp.final.kind === 'file');
  const base = BigInt(Date.now()) * 1_000_000n - STEP_NS * BigInt(files.length + 1);
  let k = 0n;
  let refreshed = 0;
  for (const pp of files) {
    let touch = restoredSet.has(pp.path);
    if (!touch) {
      const own = mtimeOf(pp.path);
      touch = (inputsOf.get(pp.order) ?? []).some((i) => i !== pp.path && !isSystemPath(i) && mtimeOf(i) >= own);
      if (touch) refreshed++;
    }
    if (!touch) continue;
    const t = base + STEP_NS * ++k;
    newTime.set(pp.path, t);
    const sec = Number(t / 1_000_000_000n) + Number(t % 1_000_000_000n) / 1e9;
    utimesSync(pp.path, sec, sec);
    newTime.set(pp.path, lstatSync(pp.path, { bigint: true }).mtimeNs);
    state.noteContent(pp.path, pp.final.kind === 'file' ? pp.final.digest : '');
  }
  // Directories replay made get the line's mode last (restore.ts says why).
  for (const pp of restore) if (pp.final.kind === 'dir') setDirMode(pp.path, pp.final.mode);
  for (const pp of restore) if (pp.final.kind !== 'file') state.forget(pp.path);
  return { restored: restore.filter((pp) => pp.final.kind !== 'dir').length, refreshed };
}
