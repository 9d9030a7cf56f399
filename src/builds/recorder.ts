// The daemon's record of one build in progress: the lines it answered (hits
// and misses) as they finish, with paths and environments interned; at the
// end, merged with the shim's events file into a BuildRecord.
import { BUILD_FORMAT, type BuildRecord, type LineKind, type LineRecord, type ReplaySpan } from './record.js';

// Line starts come from the shims' CLOCK_REALTIME, ends of hits and misses
// from here: both must be the same clock. performance.now() is monotonic and
// fine-grained but drifts from the wall clock; Date.now() is the wall clock
// in whole milliseconds. calibrateClock() pins one to the other at the moment
// Date.now() ticks (so to within microseconds), at every build start.
let offsetMs = performance.timeOrigin;

export function calibrateClock(): void {
  const first = Date.now();
  let now = first;
  let perf = performance.now();
  for (let spins = 0; now === first && spins < 1e6; spins++) {
    perf = performance.now();
    now = Date.now();
  }
  if (now !== first) offsetMs = now - perf;
}

/** Wall-clock microseconds since the epoch. */
export function nowUs(): number {
  return Math.round((offsetMs + performance.now()) * 1000);
}

const KINDS: LineKind[] = ['trivial', 'recursive', 'pass', 'fallback', 'hit', 'miss'];

export interface BuildEnd {
  dir: string;
  args: string[];
  exit: number;
  endMs: number;
  /** Lines the shim recorded (parseShimEvents). */
  shimLines: LineRecord[];
}

export class BuildRecorder {
  private lines: LineRecord[] = [];
  private paths: string[] = [];
  private pathIds = new Map<string, number>();
  private envs: string[][] = [];
  private envIds = new Map<string, number>();
  readonly startMs: number;
  /** What replay did before make ran (kbx make's replay request). */
  replay?: ReplaySpan;
  /** Digest of kbx make's environment as keys take it (build-start), for the replay basis. */
  envDigest?: string;

  constructor(readonly id: string, startMs?: number) {
    this.startMs = startMs ?? Date.now();
  }

  path(p: string): number {
    let id = this.pathIds.get(p);
    if (id === undefined) {
      id = this.paths.length;
      this.paths.push(p);
      this.pathIds.set(p, id);
    }
    return id;
  }

  /** The index of an environment, by its digest; `vars` is asked for only the first time. */
  env(digest: string, vars: () => string[]): number {
    let id = this.envIds.get(digest);
    if (id === undefined) {
      id = this.envs.length;
      this.envs.push(vars());
      this.envIds.set(digest, id);
    }
    return id;
  }

  /**
   * Adds the lines replay answered from another build's record (their path
   * and environment indexes are that record's), dated within the replay span,
   * so that the next replay finds them here too.
   */
  addReplayed(from: { lines: LineRecord[]; paths: string[]; envs: string[][] }, indexes: readonly number[], startUs: number, endUs: number, strongs?: readonly string[]): void {
    const step = indexes.length ? Math.max(0, (endUs - startUs) / indexes.length) : 0;
    indexes.forEach((i, k) => {
      const l = from.lines[i]!;
      const at = Math.floor(startUs + k * step);
      this.lines.push({
        ...l,
        kind: 'hit',
        strong: strongs?.[k] ?? l.strong,
        startUs: at,
        endUs: at,
        env: l.env === undefined ? undefined : this.env(`replayed:${from.envs[l.env]!.join('\0')}`, () => from.envs[l.env!]!),
        inputs: l.inputs.map((x) => this.path(from.paths[x]!)),
        outputs: l.outputs.map((x) => this.path(from.paths[x]!)),
        why: undefined,
        replayed: true,
      });
    });
  }

  add(line: LineRecord): void {
    this.lines.push(line);
  }

  get size(): number {
    return this.lines.length;
  }

  finish(end: BuildEnd): BuildRecord {
    const lines = withoutRerunReplays([...this.lines, ...end.shimLines]).sort((a, b) => a.startUs - b.startUs);
    const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<LineKind, number>;
    for (const l of lines) counts[l.kind]++;
    const via: Record<string, number> = {};
    for (const l of lines) for (const w of l.wrappers ?? []) via[w] = (via[w] ?? 0) + 1;
    return {
      format: BUILD_FORMAT,
      id: this.id,
      dir: end.dir,
      args: end.args,
      startMs: this.startMs,
      endMs: end.endMs,
      exit: end.exit,
      counts,
      ...(Object.keys(via).length ? { missesVia: via } : {}),
      curve: progressCurve(lines, this.startMs),
      lines,
      paths: this.paths,
      envs: this.envs,
      ...(this.replay ? { replay: this.replay } : {}),
    };
  }
}

/**
 * The lines without the replayed copies of a command make ran in the same
 * build (a FORCE target, kbuild's filechk), and without a second replayed copy
 * of one command: otherwise each record holds one more copy than the record
 * it replayed, and every replay walks them all. The line make ran is the one
 * recorded; a dropped copy only means the next replay leaves it to make.
 */
export function withoutRerunReplays(lines: readonly LineRecord[]): LineRecord[] {
  const ran = new Set<string>();
  for (const l of lines) if (!l.replayed && l.weak) ran.add(l.weak);
  const replayed = new Set<string>();
  return lines.filter((l) => {
    if (!l.replayed || !l.weak) return true;
    if (ran.has(l.weak) || replayed.has(l.weak)) return false;
    replayed.add(l.weak);
    return true;
  });
}

/** curve[i]: ms after start when i % of the lines had finished. */
export function progressCurve(lines: readonly LineRecord[], startMs: number): number[] {
  const ends = lines.map((l) => l.endUs / 1000 - startMs).sort((a, b) => a - b);
  const curve: number[] = [];
  for (let i = 0; i <= 100; i++) {
    const k = Math.ceil((i / 100) * ends.length) - 1;
    curve.push(k < 0 ? 0 : Math.max(0, Math.round(ends[k]!)));
  }
  return curve;
}
