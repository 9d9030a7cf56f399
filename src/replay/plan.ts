// Which lines of a recorded build replay can answer before make runs, and what
// each output path must hold afterwards (ARCHITECTURE.md, Replay). Reads the
// tree and the store, changes nothing: apply.ts does the writing.
//
// The walk goes through the record in order, keeping an overlay of what the
// lines replayed so far will leave (a file's digest, a path's absence, a
// directory's new entries). A line is replayed when its stored path set
// holds against the overlay and the tree, and none of the paths it reads is
// an output of a line that is not replayed (everything downstream of a line
// that must run again runs again). Then each output path must end as the
// recorded build left it (a later line kbx did not see, or make itself, may
// have changed it) and hold either nothing (restore), exactly that (refresh),
// or else its writers are not replayed: a file that differs is make's to
// judge, never overwritten. The walk repeats without those writers until no
// such conflict is left.
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import type { BuildRecord } from '../builds/record.js';
import { EMPTY_DIGEST, listingDigest, type FileState } from '../fingerprint/file-state.js';
import { ABSENT_OR_EMPTY, ABSENT_OR_FILE, absentOrEmpty, currentValue } from '../fingerprint/key.js';
import type { CompactSet, PathSetCache } from '../daemon/path-set-cache.js';
import type { Entry, Store } from '../store/store.js';
import { refusal, underRoots } from '../daemon/restore.js';
import { RootNames } from '../fingerprint/root-names.js';

export type Final =
  | { kind: 'file'; digest: string; mode: number }
  | { kind: 'absent' }
  | { kind: 'dir'; mode: number }
  | { kind: 'link'; target: string };

export type Action = 'restore' | 'keep' | 'mkdir';

export interface PlannedPath {
  path: string;
  final: Final;
  /** Index in the record of the last line that writes it. */
  order: number;
  /** Record indexes of the replayed lines that write or delete it. */
  writers: number[];
  action: Action;
}

export interface PlannedLine {
  index: number;
  entry: Entry;
  set: CompactSet;
}

export interface Plan {
  lines: PlannedLine[];
  paths: PlannedPath[];
  /** A line that wrote no file but printed, which no longer holds: see walk(). */
  printer?: string;
}

export interface PlanContext {
  store: Store;
  pathSets: PathSetCache;
  state: FileState;
  roots: readonly string[];
  /** Entries read so far, by strong fingerprint: a plan walks the record again after each conflict. */
  entries?: Map<string, Entry | undefined>;
}

/** The value an output path is recorded with at a build's end (ReplayBasis.ends). */
export function encodeFinal(f: Final): string {
  return f.kind === 'file' ? f.digest : f.kind === 'link' ? `link:${f.target}` : f.kind;
}

/** What a path holds now, encoded as ReplayBasis.ends values are. */
export function valueNow(state: FileState, p: string): { value: string; mode?: number } {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return { value: 'absent' };
  }
  if (st.isSymbolicLink()) return { value: `link:${readlinkSync(p)}` };
  if (st.isDirectory()) return { value: 'dir' };
  if (!st.isFile()) return { value: 'other' };
  return { value: state.content(p), mode: st.mode & 0o777 };
}

const MAX_ROUNDS = 8;

/** Plans a replay of `rec`, or says why none is possible. `ends` maps a path to its value at the recorded build's end. */
export function planReplay(
  rec: BuildRecord,
  ends: ReadonlyMap<string, string>,
  produced: readonly string[],
  ctx: PlanContext,
  forced = new Set<number>(),
  /** make read kbuild's makefiles: make reruns a target whose command changed (its .cmd), so $(shell …) results need no check. */
  kbuild = false,
): Plan | { why: string } {
  const allOutputs = new Set<string>();
  for (const l of rec.lines) for (const k of l.outputs) allOutputs.add(resolve(rec.paths[k]!));
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const plan = walk(rec, ctx, forced, kbuild ? ends : undefined);
    if (plan.printer && !kbuild) return { why: `a line whose output make may read ($(shell …)) no longer holds: ${plan.printer.slice(0, 200)}` };
    let conflicts = 0;
    for (const pp of plan.paths) {
      const action = decide(pp, ends.get(pp.path), ctx.state);
      if (action) pp.action = action;
      else {
        for (const w of pp.writers) if (!forced.has(w)) forced.add(w), conflicts++;
      }
    }
    if (conflicts) continue;
    const planned = new Set(plan.paths.map((pp) => pp.path));
    for (const p of produced) {
      if (planned.has(p) || kbuildLocal(p, allOutputs)) continue;
      if (valueNow(ctx.state, p).value === ends.get(p)) continue;
      return { why: `make reads ${p}, which replay cannot put back as the build left it` };
    }
    return plan;
  }
  return { why: `outputs still conflict after ${MAX_ROUNDS} rounds` };
}

/**
 * A kbuild target's command file `D/.X.cmd`, or the target `D/X` itself, when
 * the build wrote both: the .cmd defines only X's command, prerequisites and
 * rule, so whatever make finds there changes what make does for X alone
 * (which replay restores with its .cmd, or leaves for make to judge).
 */
function kbuildLocal(p: string, outputs: ReadonlySet<string>): boolean {
  const dir = dirname(p);
  const name = basename(p);
  const m = /^\.(.+)\.cmd$/.exec(name);
  if (m) return outputs.has(join(dir, m[1]!));
  return outputs.has(join(dir, `.${name}.cmd`));
}

/** What to do with a planned path given what it must end as and holds now; undefined: a conflict. */
function decide(pp: PlannedPath, end: string | undefined, state: FileState): Action | undefined {
  // A path the line deleted last (kbuild's compiles remove their .d file) has
  // no recorded end: the build's ends list what lines wrote. Absent now, there
  // is nothing to do; anything there is make's to judge.
  if (end === undefined && pp.final.kind === 'absent') return valueNow(state, pp.path).value === 'absent' ? 'keep' : undefined;
  if (end !== encodeFinal(pp.final)) return undefined; // changed after its line, by something kbx did not see
  const now = valueNow(state, pp.path);
  switch (pp.final.kind) {
    case 'file':
      if (now.value === 'absent') return 'restore';
      return now.value === pp.final.digest && now.mode === pp.final.mode ? 'keep' : undefined;
    case 'absent':
      return now.value === 'absent' ? 'keep' : undefined;
    case 'dir':
      return now.value === 'dir' ? 'keep' : now.value === 'absent' ? 'mkdir' : undefined;
    case 'link':
      return now.value === end ? 'keep' : now.value === 'absent' ? 'restore' : undefined;
  }
}

function readEntry(ctx: PlanContext, strong: string): Entry | undefined {
  const memo = (ctx.entries ??= new Map());
  if (!memo.has(strong)) memo.set(strong, ctx.store.getEntry(strong));
  return memo.get(strong);
}

/** Every output of a line exists now as the recorded build left it. */
function isSettled(outputs: readonly string[], entry: Entry | undefined, ends: ReadonlyMap<string, string>, state: FileState): boolean {
  const all = new Set([...outputs, ...(entry?.outputs ?? []).map((o) => resolve(o.path))]);
  if (!all.size) return false;
  for (const p of all) {
    const end = ends.get(p);
    if (end === undefined || end === 'absent' || valueNow(state, p).value !== end) return false;
  }
  return true;
}

/** The stored entry of a strong fingerprint under this build's roots, when it may be restored here. */
function usable(ctx: PlanContext, strong: string, names: RootNames): Entry | undefined {
  const stored = readEntry(ctx, strong);
  // Stored entries name files by their build root (@make/…): made absolute under this build's roots.
  const named = stored && underRoots(stored, names);
  const entry = typeof named === 'string' ? undefined : named;
  // A hard link a line made (linkOf) is restored by linking it again, which replay does not do: such lines are left to make.
  const links = entry?.outputs.some((o) => o.kind === 'file' && o.linkOf !== undefined);
  return entry && !links && entry.exit === 0 && refusal(entry, ctx.roots) === undefined ? entry : undefined;
}

/** What the recorded run printed (a $(shell …) line: what make read), or undefined when its entry is gone. */
function recordedStdout(ctx: PlanContext, strong: string, names: RootNames): string | undefined {
  return usable(ctx, strong, names)?.stdout;
}

/**
 * `settled`: in a kbuild tree, the recorded ends. A line none of whose runs
 * holds, but whose every output is in the tree now as the recorded build left
 * it (a generated header after make clean: its filechk line tests the header
 * it writes; kernel.release: its line lists the build directory, which make
 * clean changed), does not stop the lines that read those outputs: their
 * sets are checked against what is there. If make reruns the line and it
 * changes an output, the output becomes newer than every file replay dated,
 * and make rebuilds what depends on it: in kbuild every line's reads of
 * generated files are its prerequisites (fixdep's .cmd dependencies, the
 * archives' and links' real prerequisites). Outside kbuild nothing says so,
 * and such a line stops everything downstream.
 */
function walk(rec: BuildRecord, ctx: PlanContext, forced: ReadonlySet<number>, settled?: ReadonlyMap<string, string>): Plan {
  const overlay = new Map<string, Final>();
  const children = new Map<string, Map<string, boolean>>();
  const blocked = new Set<string>();
  const paths = new Map<string, PlannedPath>();
  const lines: PlannedLine[] = [];
  let printerChanged: string | undefined;
  const names = new RootNames(ctx.roots);

  const put = (p: string, f: Final, i: number) => {
    overlay.set(p, f);
    const dir = dirname(p);
    let c = children.get(dir);
    if (!c) children.set(dir, (c = new Map()));
    c.set(basename(p), f.kind !== 'absent');
    const pp = paths.get(p);
    if (pp) {
      pp.final = f;
      pp.order = i;
      pp.writers.push(i);
    } else paths.set(p, { path: p, final: f, order: i, writers: [i], action: 'keep' });
  };
  const listing = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      names = [];
    }
    const set = new Set(names);
    for (const [name, exists] of children.get(dir) ?? []) {
      if (exists) set.add(name);
      else set.delete(name);
    }
    return listingDigest(set);
  };
  // The tree does not change during the walk (it only reads): each path's
  // value now is taken once, however many lines read it (a kernel's headers:
  // hundreds each). What earlier lines of the walk leave comes first.
  const resolved = new Map<string, string>();
  const treeValues = new Map<string, string>();
  const treeValue = (kind: 'c' | 'e', path: string, stored: string): string => {
    const key = `${kind}${stored === ABSENT_OR_FILE ? '?' : stored.startsWith(ABSENT_OR_EMPTY) ? stored : ''}${path}`;
    let v = treeValues.get(key);
    if (v === undefined) treeValues.set(key, (v = currentValue(ctx.state, kind, path, stored)));
    return v;
  };
  const valueAs = (kind: 'c' | 'e', path: string, stored: string): string => {
    let p = resolved.get(path);
    if (p === undefined) resolved.set(path, (p = resolve(path)));
    if (blocked.has(p)) return '\0blocked';
    const o = overlay.get(p);
    if (o) {
      if (kind === 'c' && stored.startsWith(ABSENT_OR_EMPTY)) return o.kind === 'absent' || (o.kind === 'file' && o.digest === EMPTY_DIGEST && absentOrEmpty(o.mode) === stored) ? stored : '\0';
      if (kind === 'c') return o.kind === 'file' ? o.digest : o.kind === 'absent' ? 'absent' : o.kind === 'dir' ? listing(p) : '\0link';
      if (stored === ABSENT_OR_FILE) return o.kind === 'file' || o.kind === 'absent' ? ABSENT_OR_FILE : '\0';
      return o.kind === 'link' ? '\0link' : o.kind === 'file' && o.digest === EMPTY_DIGEST ? 'empty' : o.kind;
    }
    if (kind === 'c' && stored.startsWith('dir:') && children.has(p)) return listing(p);
    return treeValue(kind, path, stored);
  };

  rec.lines.forEach((line, i) => {
    if (line.kind !== 'hit' && line.kind !== 'miss') return;
    const block = (entry?: Entry) => {
      for (const k of line.outputs) blocked.add(resolve(rec.paths[k]!));
      for (const o of entry?.outputs ?? []) blocked.add(resolve(o.path));
      for (const d of entry?.deleted ?? []) blocked.add(resolve(d));
    };
    if (forced.has(i) || !line.weak) return block();
    // The recorded run's set first, then the command's other sets in store
    // order, as a lookup would take them: a line whose recorded set keyed a
    // probe of its own output (absent after make clean) may have another
    // stored run that holds. Whichever holds, its outputs must end as the
    // recorded build left them (planReplay's check), or its line is not replayed.
    const sets = ctx.pathSets.get(line.weak)?.sets ?? [];
    const recorded = sets.find((s) => s.strong === line.strong);
    // Replay runs only under the recorded build's environment and make arguments,
    // so what wrappers add to the line's environment is what the recorded run held.
    const wrapperEnv = recorded?.pseudo?.find((e) => e.k === 'env')?.v;
    let set: CompactSet | undefined;
    let entry: Entry | undefined;
    for (const s of recorded ? [recorded, ...sets.filter((x) => x !== recorded)] : []) {
      const e = usable(ctx, s.strong, names);
      if (e && ctx.pathSets.holdsAs(s, names, valueAs, wrapperEnv)) {
        set = s;
        entry = e;
        break;
      }
      if (s === recorded) entry = e;
    }
    // A line that wrote no file but printed may be make's $(shell …), whose
    // output can be in the command texts of the lines replayed (a version
    // string in CFLAGS): outside kbuild nothing would make rerun them. Make
    // parses after replay, so the line is checked against the tree as replay
    // leaves it; one that no longer holds (or cannot be checked) stops replay.
    const printer = !line.outputs.length && (!entry || entry.stdout !== '');
    if (!set || !entry) {
      if (printer) printerChanged ??= line.command;
      if (settled && isSettled(line.outputs.map((k) => resolve(rec.paths[k]!)), entry, settled, ctx.state)) {
        for (const d of entry?.deleted ?? []) blocked.add(resolve(d));
        return;
      }
      return block(entry);
    }
    if (printer && (!line.strong || entry.stdout !== recordedStdout(ctx, line.strong, names))) printerChanged ??= line.command;
    for (const d of entry.deleted) put(resolve(d), { kind: 'absent' }, i);
    for (const o of entry.outputs) {
      const p = resolve(o.path);
      put(p, o.kind === 'file' ? { kind: 'file', digest: o.digest, mode: o.mode & 0o777 } : o.kind === 'link' ? { kind: 'link', target: o.target } : { kind: 'dir', mode: o.mode & 0o777 }, i);
    }
    lines.push({ index: i, entry, set });
  });
  return { lines, paths: [...paths.values()].sort((a, b) => a.order - b.order), ...(printerChanged !== undefined ? { printer: printerChanged } : {}) };
}
