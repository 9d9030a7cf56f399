// What kbx keeps of each build (docs/PROTOCOL.md, section 6): every recipe
// line make ran, with its timing, kind, command, and the files it read and
// wrote. `kbx steps`, `kbx explain`, `kbx trace` and `kbx report` read it;
// `kbx make` reads the previous build's curve for its progress estimate.

export const BUILD_FORMAT = 1;

/**
 * trivial: done inside the shim; recursive: runs make; pass: run by the real
 * shell without the cache (reason says why); fallback: the daemon could not
 * be asked; hit: outputs restored; miss: run under the tracer.
 */
export type LineKind = 'trivial' | 'recursive' | 'pass' | 'fallback' | 'hit' | 'miss';

/** One input that differs from the closest stored run of the same command. */
export interface InputChange {
  path: string;
  /** content: digest changed; appeared/disappeared/type: existence changed. */
  change: 'content' | 'appeared' | 'disappeared' | 'type';
  /** Stored value: a content digest, or 'absent', 'file', 'dir', 'link'. */
  was: string;
  now: string;
  /** The path was run as a program by the line. */
  program?: true;
}

/** Why a line missed, decided when it was looked up. */
export type MissWhy =
  /** No stored run has this command, directory, terminal flags and environment. */
  | { kind: 'new-command' }
  /**
   * Runs of this command were stored; the closest one (fewest changes) differs in these inputs.
   * `matches`: another stored run that read what a changed input holds now (an edit reverted),
   * and the only inputs in which the tree differs from it.
   */
  | { kind: 'inputs'; changes: InputChange[]; closestFrom: string; matches?: { from: string; changes: InputChange[] } }
  /** A stored run matched, but its outputs could not be restored (evicted or corrupt). */
  | { kind: 'unavailable' };

export interface LineRecord {
  kind: LineKind;
  /** Wall-clock microseconds since the epoch. */
  startUs: number;
  endUs: number;
  /** Exit status; 128+N for a signal; -1 when unknown. */
  exit: number;
  cwd: string;
  command: string;
  /** Index into BuildRecord.envs: the environment that entered the key (hits, misses). */
  env?: number;
  /** Indexes into BuildRecord.paths: files whose content the line read, programs included. */
  inputs: number[];
  /** Indexes into BuildRecord.paths: files, links and directories the line left (hits: restored). */
  outputs: number[];
  /** pass: the daemon's reason; miss: not stored because … (when it was not stored). */
  reason?: string;
  /** hit: the build whose run was restored. */
  from?: string;
  /** hit: how long the restored run took when it ran. */
  savedUs?: number;
  /** miss: why it missed. */
  why?: MissWhy;
  /** hit, or a stored miss: the weak and strong fingerprints of the run restored or stored (replay finds it by them). */
  weak?: string;
  strong?: string;
  /** hit: answered by replay before make ran, not by a shim. */
  replayed?: true;
  /** miss: the compiler wrappers its trace showed running (distcc, icecc, ccache, sccache). */
  wrappers?: string[];
}

/** What replay (src/replay/) needs of a build besides its lines (ARCHITECTURE.md, Replay). */
export interface ReplayBasis {
  /** Digest of kbx make's own environment, as environments enter keys. */
  envDigest: string;
  /** What make read when deciding, valued (src/replay/make-inputs.ts); absent when it could not be known. */
  makeInputs?: Array<{ k: 'c' | 'a' | 'g'; p: string; v: string }>;
  /** Why makeInputs is absent. */
  unknown?: string;
  /** Outputs of this build's lines that make read (.cmd files, included makefiles), as indexes into paths. */
  produced: number[];
  /** Each output path of a hit or miss (index into paths) and what it held at the build's end: a digest, 'absent', 'dir', 'link:<target>' or 'other'. */
  ends: Array<[number, string]>;
  /** Digest of the stats (inode, size, mtime) at the build's end of every path its hits and misses wrote or read and every file make read (src/replay/unchanged.ts). */
  stats?: string;
}

/** What replay did before make ran. */
export interface ReplaySpan {
  startUs: number;
  endUs: number;
  /** The build replayed; undefined when none could be. */
  from?: string;
  lines: number;
  restored: number;
  refreshed: number;
  /** Paths stat'ed to find the tree as the replayed build left it (then nothing was planned); absent when it was not. */
  unchanged?: number;
  /** Files hashed while replaying. */
  hashed?: number;
  /** Why nothing was replayed, or why replay stopped early. */
  why?: string;
}

export interface BuildMeta {
  format: number;
  id: string;
  /** Directory make ran in (after -C), and make's arguments as given to kbx make. */
  dir: string;
  args: string[];
  startMs: number;
  endMs: number;
  exit: number;
  /** Lines by kind. */
  counts: Record<LineKind, number>;
  /** Misses by the compiler wrapper they ran (LineRecord.wrappers); absent when none ran one. */
  missesVia?: Record<string, number>;
  /** curve[i]: milliseconds after the start when i % of the lines had finished (i = 0..100). */
  curve: number[];
}

export interface BuildRecord extends BuildMeta {
  /** Lines in order of start time. */
  lines: LineRecord[];
  /** Path strings the lines refer to by index. */
  paths: string[];
  /** Environments (sorted NAME=value, kbx's own and volatile variables left out) the lines refer to by index. */
  envs: string[][];
  /** For replaying this build later; missing in records of builds that kbx make did not log. */
  basis?: ReplayBasis;
  /** What replay did before this build's make ran. */
  replay?: ReplaySpan;
}
