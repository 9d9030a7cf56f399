// Replay before make (ARCHITECTURE.md, Replay): find the last recorded build
// of the same directory, arguments and environment whose make inputs still
// hold, plan which of its lines hold (plan.ts) and put their outputs in place
// (apply.ts). Make then runs as usual and finds those targets up to date.
// Anything unexpected means no replay: make runs every line as without it.
import { resolve } from 'node:path';
import { listBuilds, loadBuild } from '../builds/archive.js';
import type { BuildRecord, ReplaySpan } from '../builds/record.js';
import { nowUs } from '../builds/recorder.js';
import { firstChangedMakeInput } from './make-inputs.js';
import { planReplay, type Plan, type PlanContext } from './plan.js';
import { applyPlan, fetchBlobs } from './apply.js';
import { producedPaths } from './basis.js';
import { RootNames } from '../fingerprint/root-names.js';
import { carriedLines, statsDigest, watchedPaths } from './unchanged.js';

export interface ReplayRequest {
  dir: string;
  args: string[];
  envDigest: string;
}

/** make's arguments less -j, which changes neither what make reads nor what it runs. */
export function argsKey(args: readonly string[]): string {
  return args.filter((x) => !/^(-j\d*|--jobs(=\d+)?)$/.test(x)).join('\0');
}

// Builds of the same invocation looked at, newest first: the last one may have
// been made from another state (an incremental build after a clean one).
const CANDIDATES = 4;
// kbx make waits 600 s for the reply, then starts make: a replay that has not
// begun writing by this time gives up, so it never writes while make runs.
const WRITE_DEADLINE_MS = 120_000;

/** Why the record cannot be replayed now, or its plan. */
function planFor(rec: BuildRecord, req: ReplayRequest, ctx: PlanContext, forced: Set<number>): Plan | { why: string } {
  const basis = rec.basis;
  if (!basis) return { why: 'not recorded for replay' };
  if (basis.envDigest !== req.envDigest) return { why: 'the environment changed' };
  if (!basis.makeInputs) return { why: basis.unknown ?? 'make inputs unknown' };
  const produced = producedPaths(rec);
  const changed = firstChangedMakeInput(basis.makeInputs, produced, ctx.state);
  if (changed) return { why: `make input changed: ${changed}` };
  const ends = new Map(basis.ends.map(([k, v]) => [resolve(rec.paths[k]!), v]));
  const producedReads = basis.produced.map((k) => resolve(rec.paths[k]!));
  const kbuild = basis.makeInputs.some((i) => i.p.endsWith('/scripts/Kbuild.include'));
  return planReplay(rec, ends, producedReads, ctx, forced, kbuild);
}

/**
 * The number of paths checked when the tree stats as the newest build of these
 * goals left it (unchanged.ts): nothing to plan. Undefined otherwise.
 */
function unchangedSince(rec: BuildRecord, req: ReplayRequest): number | undefined {
  const basis = rec.basis;
  if (!basis?.stats || !basis.makeInputs || basis.envDigest !== req.envDigest) return undefined;
  const paths = watchedPaths(rec);
  return statsDigest(paths) === basis.stats ? paths.length : undefined;
}

export interface Replayed {
  span: ReplaySpan;
  /** The record replayed, the indexes of its lines that were, and the stored run each was replayed from. */
  source?: BuildRecord;
  indexes?: number[];
  strongs?: string[];
}

export async function replayBuild(kbxDir: string, req: ReplayRequest, ctx: PlanContext): Promise<Replayed> {
  const startUs = nowUs();
  const deadline = Date.now() + WRITE_DEADLINE_MS;
  const hashedBefore = ctx.state.hashedFiles;
  const span = (s: Partial<ReplaySpan>): Replayed => ({ span: { startUs, endUs: nowUs(), lines: 0, restored: 0, refreshed: 0, hashed: ctx.state.hashedFiles - hashedBefore, ...s } });
  // A build in which make ran no line (nothing to do) has nothing to replay.
  const metas = listBuilds(kbxDir)
    .filter((m) => m.dir === req.dir && argsKey(m.args) === argsKey(req.args) && m.counts.hit + m.counts.miss > 0)
    .slice(0, CANDIDATES);
  if (!metas.length) return span({ why: 'no recorded build of these goals' });
  let why = '';
  for (const meta of metas) {
    let rec: BuildRecord;
    try {
      rec = loadBuild(kbxDir, meta.id);
    } catch {
      continue;
    }
    if (meta === metas[0]) {
      const same = unchangedSince(rec, req);
      if (same) {
        const indexes = carriedLines(rec);
        return { ...span({ from: rec.id, lines: indexes.length, unchanged: same }), source: rec, indexes };
      }
    }
    const forced = new Set<number>();
    // A blob evicted since: its writers are not replayed (bounded: each round forces at least one line).
    for (let round = 0; round < 4; round++) {
      const plan = planFor(rec, req, ctx, forced);
      if ('why' in plan) {
        why ||= plan.why;
        break;
      }
      const { blobs, missing } = await fetchBlobs(ctx.store, plan);
      if (missing.length) {
        for (const pp of missing) for (const w of pp.writers) forced.add(w);
        continue;
      }
      if (Date.now() > deadline) return span({ why: `planning took over ${WRITE_DEADLINE_MS / 1000} s` });
      const done = await applyPlan(plan, blobs, ctx.state, ctx.pathSets, new RootNames(ctx.roots));
      return { ...span({ from: rec.id, lines: plan.lines.length, ...done }), source: rec, indexes: plan.lines.map((l) => l.index), strongs: plan.lines.map((l) => l.set.strong) };
    }
  }
  return span({ why: why || 'no recorded build could be read' });
}
