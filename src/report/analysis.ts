// What a recorded build did, in the shapes `kbx trace` and `kbx report` show:
// job lanes, the critical path, the slowest lines, hit rate by directory and
// time by stage. Pure: a BuildRecord in, plain data out (sizes, which read
// the files, are in sizes.ts).
import { posix } from 'node:path';
import type { BuildRecord, LineRecord } from '../builds/record.js';
import { parseMakeArgs } from '../cli/make.js';
import { runsSubMake, stageOf, STAGES, type Stage } from './command.js';

export const durationUs = (l: LineRecord): number => Math.max(0, l.endUs - l.startUs);

/** The directories the build wrote into: make's directory and O= (most specific last). */
export function buildRoots(rec: BuildRecord): string[] {
  return parseMakeArgs(rec.args, rec.dir, {}).roots;
}

/** A path as the developer names it: relative to the build's O= tree or directory when inside one. */
export function displayPath(path: string, roots: readonly string[]): string {
  for (const root of [...roots].sort((a, b) => b.length - a.length)) {
    if (path === root) return '.';
    if (path.startsWith(root.endsWith('/') ? root : `${root}/`)) return path.slice(root.length).replace(/^\/+/, '');
  }
  return path;
}

/** The file a line is for: its first output that is not a hidden helper (kbuild's .foo.o.cmd, .foo.o.d). */
export function primaryOutput(rec: BuildRecord, line: LineRecord): string | undefined {
  const outs = line.outputs.map((i) => rec.paths[i]).filter((p): p is string => p !== undefined);
  return outs.find((p) => !posix.basename(p).startsWith('.')) ?? outs[0];
}

/** A short name for a line: the target it wrote, else the start of its command. */
export function lineLabel(rec: BuildRecord, line: LineRecord, roots: readonly string[]): string {
  const out = primaryOutput(rec, line);
  if (out) return displayPath(out, roots);
  const one = line.command.replace(/\s+/g, ' ').trim();
  return one.length > 60 ? `${one.slice(0, 59)}…` : one || '(empty line)';
}

export interface LaneLayout {
  /** lane[i]: line i's lane, 0-based within its group. */
  lane: number[];
  /**
   * subMake[i]: line i runs a sub-make. Its span is its children's work, and
   * under the jobserver a sub-make lends its job slot to its children, so
   * these lines get lanes of their own ("make lanes") apart from the work
   * lanes, and are left out of the critical path, slowest lines and stages.
   */
  subMake: boolean[];
  workLanes: number;
  makeLanes: number;
}

/** Greedy lanes: in start order, each line takes the lowest-numbered lane of its group free at its start. */
export function lanes(rec: BuildRecord): LaneLayout {
  const n = rec.lines.length;
  const lane = new Array<number>(n).fill(0);
  const subMake = rec.lines.map((l) => l.kind === 'recursive' && runsSubMake(l.command));
  const order = [...rec.lines.keys()].sort((a, b) => rec.lines[a]!.startUs - rec.lines[b]!.startUs || a - b);
  // laneEnds[g][k]: when lane k of group g (0 work, 1 make) becomes free.
  const laneEnds: number[][] = [[], []];
  for (const i of order) {
    const l = rec.lines[i]!;
    const ends = laneEnds[subMake[i] ? 1 : 0]!;
    let k = ends.findIndex((end) => end <= l.startUs);
    if (k < 0) k = ends.length;
    ends[k] = Math.max(l.startUs, l.endUs);
    lane[i] = k;
  }
  return { lane, subMake, workLanes: laneEnds[0]!.length, makeLanes: laneEnds[1]!.length };
}

export interface CriticalPath {
  /** Line indexes, first to last: each read a file the one before it wrote after that one had ended. */
  lines: number[];
  /** The sum of their durations. */
  us: number;
}

/**
 * The longest chain of lines by duration in the read-after-write graph: line
 * B depends on line A when B read a file A wrote and A ended before B
 * started. Lines with no such dependency start chains. Only lines for which
 * `include` holds take part. Lines kbx did not trace (pass-through, trivial,
 * recursive) have no recorded files, so a chain can start or end at one but
 * never passes through it.
 */
export function criticalPath(rec: BuildRecord, include: (i: number) => boolean = () => true): CriticalPath {
  const ls = rec.lines;
  const idx = [...ls.keys()].filter(include);
  if (!idx.length) return { lines: [], us: 0 };
  const byStart = [...idx].sort((a, b) => ls[a]!.startUs - ls[b]!.startUs || ls[a]!.endUs - ls[b]!.endUs || a - b);
  const byEnd = [...idx].sort((a, b) => ls[a]!.endUs - ls[b]!.endUs || ls[a]!.startUs - ls[b]!.startUs || a - b);
  const dist = new Map<number, number>();
  const prev = new Map<number, number>();
  // best.get(path): of the lines that wrote the path and had ended, the one ending the longest chain.
  const best = new Map<number, number>();
  let next = 0;
  for (const b of byStart) {
    const start = ls[b]!.startUs;
    // A line is added once it has ended before b starts (and its own chain is known).
    while (next < byEnd.length && ls[byEnd[next]!]!.endUs <= start && dist.has(byEnd[next]!)) {
      const a = byEnd[next++]!;
      for (const p of ls[a]!.outputs) {
        const cur = best.get(p);
        if (cur === undefined || dist.get(a)! > dist.get(cur)!) best.set(p, a);
      }
    }
    let from = -1;
    let longest = 0;
    for (const p of ls[b]!.inputs) {
      const a = best.get(p);
      if (a !== undefined && a !== b && (from < 0 || dist.get(a)! > longest)) {
        from = a;
        longest = dist.get(a)!;
      }
    }
    dist.set(b, durationUs(ls[b]!) + longest);
    if (from >= 0) prev.set(b, from);
  }
  let end = idx[0]!;
  for (const i of idx) if (dist.get(i)! > dist.get(end)!) end = i;
  const chain: number[] = [];
  for (let i: number | undefined = end; i !== undefined; i = prev.get(i)) chain.push(i);
  return { lines: chain.reverse(), us: dist.get(end)! };
}

/** The `count` longest lines (by duration) for which `include` holds, longest first. */
export function slowestLines(rec: BuildRecord, count: number, include: (i: number) => boolean = () => true): number[] {
  return [...rec.lines.keys()]
    .filter(include)
    .sort((a, b) => durationUs(rec.lines[b]!) - durationUs(rec.lines[a]!) || a - b)
    .slice(0, count);
}

/** The directory a line's work belongs to: its target's, else its working directory's, cut to `depth` components. */
export function lineDirectory(rec: BuildRecord, line: LineRecord, roots: readonly string[], depth = 2): string {
  const out = primaryOutput(rec, line);
  const dir = out ? posix.dirname(displayPath(out, roots)) : displayPath(line.cwd, roots);
  if (posix.isAbsolute(dir)) return '/' + dir.split('/').filter(Boolean).slice(0, depth).join('/');
  return dir.split('/').slice(0, depth).join('/');
}

export interface DirectoryRow {
  dir: string;
  lines: number;
  hits: number;
  misses: number;
  /** hits / (hits + misses): of the lines kbx could look up, how many it restored; undefined when none. */
  hitRate: number | undefined;
  /** Time the lines took in this build, and the recipe time the hits saved. */
  us: number;
  savedUs: number;
}

/** Lines grouped by directory, most time first. */
export function hitRateByDirectory(rec: BuildRecord, roots: readonly string[], include: (i: number) => boolean = () => true, depth = 2): DirectoryRow[] {
  const rows = new Map<string, DirectoryRow>();
  rec.lines.forEach((l, i) => {
    if (!include(i)) return;
    const dir = lineDirectory(rec, l, roots, depth);
    let row = rows.get(dir);
    if (!row) rows.set(dir, (row = { dir, lines: 0, hits: 0, misses: 0, hitRate: undefined, us: 0, savedUs: 0 }));
    row.lines++;
    row.us += durationUs(l);
    if (l.kind === 'hit') {
      row.hits++;
      row.savedUs += l.savedUs ?? 0;
    } else if (l.kind === 'miss') row.misses++;
  });
  for (const r of rows.values()) r.hitRate = r.hits + r.misses ? r.hits / (r.hits + r.misses) : undefined;
  return [...rows.values()].sort((a, b) => b.us - a.us || a.dir.localeCompare(b.dir));
}

export interface StageRow {
  stage: Stage;
  lines: number;
  /** Summed durations: lines that ran side by side all count, so the stages add up to more than the wall time. */
  us: number;
}

/** Time by stage, in the order of STAGES (every stage listed, also those with no lines). */
export function timeByStage(
  rec: BuildRecord,
  include: (i: number) => boolean = () => true,
  stageOfLine: (i: number) => Stage = (i) => stageOf(rec.lines[i]!.command),
): StageRow[] {
  const rows = new Map<Stage, StageRow>(STAGES.map((s) => [s, { stage: s, lines: 0, us: 0 }]));
  rec.lines.forEach((l, i) => {
    if (!include(i)) return;
    const row = rows.get(stageOfLine(i))!;
    row.lines++;
    row.us += durationUs(l);
  });
  return [...rows.values()];
}

export interface BuildAnalysis {
  roots: string[];
  layout: LaneLayout;
  /** Lines that did work of their own (all but the sub-makes). */
  work: (i: number) => boolean;
  labels: string[];
  /** lineStages[i]: the stage of line i, from its command. */
  lineStages: Stage[];
  critical: CriticalPath;
  slowest: number[];
  directories: DirectoryRow[];
  stages: StageRow[];
  /** From the build's start to its end. */
  wallUs: number;
}

export function analyzeBuild(rec: BuildRecord, slowestCount = 50): BuildAnalysis {
  const roots = buildRoots(rec);
  const layout = lanes(rec);
  const work = (i: number) => !layout.subMake[i];
  const lineStages = rec.lines.map((l) => stageOf(l.command));
  return {
    roots,
    layout,
    work,
    labels: rec.lines.map((l) => lineLabel(rec, l, roots)),
    lineStages,
    critical: criticalPath(rec, work),
    slowest: slowestLines(rec, slowestCount, work),
    directories: hitRateByDirectory(rec, roots, work),
    stages: timeByStage(rec, work, (i) => lineStages[i]!),
    wallUs: Math.max(0, (rec.endMs - rec.startMs) * 1000),
  };
}
