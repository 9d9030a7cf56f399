// Questions asked of recorded builds: which lines touched a file (kbx steps)
// and why the lines that wrote it ran (kbx explain). Pure: records in, plain
// data out; src/cli/inspect.ts prints it.
import type { BuildRecord, InputChange, LineRecord } from './record.js';

export interface Step {
  index: number;
  line: LineRecord;
  read: boolean;
  wrote: boolean;
}

/** The lines of a build that read or wrote one of `paths` (the same file by different names), in start order. */
export function stepsFor(rec: BuildRecord, paths: readonly string[]): Step[] {
  const ids = new Set(paths.map((p) => rec.paths.indexOf(p)).filter((i) => i >= 0));
  if (ids.size === 0) return [];
  const out: Step[] = [];
  rec.lines.forEach((line, index) => {
    const read = line.inputs.some((i) => ids.has(i));
    const wrote = line.outputs.some((i) => ids.has(i));
    if (read || wrote) out.push({ index, line, read, wrote });
  });
  return out;
}

/** The first of `candidates` that some line of the build read or wrote. */
export function pickPath(rec: BuildRecord, candidates: readonly string[]): string | undefined {
  const known = new Set(rec.paths);
  return candidates.find((c) => known.has(c));
}

export type WordDiff = Array<{ op: '=' | '-' | '+'; text: string }>;

/** A word-level diff (longest common subsequence) of two command lines. */
export function wordDiff(a: string, b: string, separator: RegExp = /\s+/): WordDiff {
  const x = a.split(separator).filter(Boolean);
  const y = b.split(separator).filter(Boolean);
  const n = x.length;
  const m = y.length;
  // lcs[i][j]: length of the LCS of x[i..] and y[j..].
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: WordDiff = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) {
      out.push({ op: '=', text: x[i++]! });
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) out.push({ op: '-', text: x[i++]! });
    else out.push({ op: '+', text: y[j++]! });
  }
  return out;
}

/** git's --word-diff style: [-removed-]{+added+}, long unchanged runs shortened to their ends. */
export function formatWordDiff(diff: WordDiff, context = 3): string {
  const out: string[] = [];
  for (let i = 0; i < diff.length; ) {
    if (diff[i]!.op !== '=') {
      const w = diff[i++]!;
      out.push(w.op === '-' ? `[-${w.text}-]` : `{+${w.text}+}`);
      continue;
    }
    let j = i;
    while (j < diff.length && diff[j]!.op === '=') j++;
    const run = diff.slice(i, j).map((w) => w.text);
    const head = i === 0 ? 0 : context;
    const tail = j === diff.length ? 0 : context;
    if (run.length > head + tail + 1) out.push(...run.slice(0, head), '…', ...run.slice(run.length - tail));
    else out.push(...run);
    i = j;
  }
  return out.join(' ');
}

export interface EnvDiff {
  /** NAME=value of variables only one side has. */
  added: string[];
  removed: string[];
  /** Variables both have with different values: the values' word diff (words split at white space and ':'). */
  changed: Array<{ name: string; words: WordDiff }>;
}

const nameOf = (v: string): string => (v.includes('=') ? v.slice(0, v.indexOf('=')) : v);

export function envDiff(before: readonly string[], after: readonly string[]): EnvDiff {
  const split = (vars: readonly string[]) => new Map(vars.map((v) => [nameOf(v), v.slice(nameOf(v).length + 1)]));
  const a = split(before);
  const b = split(after);
  const changed: EnvDiff['changed'] = [];
  for (const [name, value] of b) {
    const old = a.get(name);
    if (old !== undefined && old !== value) changed.push({ name, words: wordDiff(old, value, /[\s:]+/) });
  }
  return {
    added: after.filter((v) => !a.has(nameOf(v))),
    removed: before.filter((v) => !b.has(nameOf(v))),
    changed,
  };
}

/** Why one line that wrote the file ran (or was restored). */
export type Reason =
  | { kind: 'hit'; from: string; savedUs: number }
  | { kind: 'inputs'; changes: InputChange[]; closestFrom: string; causes: Cause[]; matches?: { from: string; changes: InputChange[] } }
  | { kind: 'unavailable' }
  | { kind: 'changed-command'; previous: { build: string; line: LineRecord }; words: WordDiff; cwd?: [string, string]; env: EnvDiff }
  | { kind: 'first-time' }
  | { kind: 'not-cached'; lineKind: LineRecord['kind']; reason?: string };

/** A changed input that this build itself rewrote, and why that line ran. */
export interface Cause {
  path: string;
  line: LineRecord;
  reason: Reason;
}

export interface Explanation {
  line: LineRecord;
  reason: Reason;
}

/**
 * Explains the lines of `rec` that wrote `path`. `older` are earlier builds,
 * newest first, searched when a command is new (to diff it against the run
 * that last wrote the same file).
 */
export function explain(rec: BuildRecord, path: string, older: () => Iterable<BuildRecord>): Explanation[] {
  const id = rec.paths.indexOf(path);
  if (id < 0) return [];
  return rec.lines.filter((l) => l.outputs.includes(id)).map((line) => ({ line, reason: reasonFor(rec, line, path, older, new Set()) }));
}

function reasonFor(rec: BuildRecord, line: LineRecord, path: string, older: () => Iterable<BuildRecord>, seen: Set<LineRecord>): Reason {
  seen.add(line);
  if (line.kind === 'hit') return { kind: 'hit', from: line.from ?? '', savedUs: line.savedUs ?? 0 };
  if (line.kind !== 'miss') return { kind: 'not-cached', lineKind: line.kind, reason: line.reason };
  const why = line.why ?? { kind: 'new-command' };
  if (why.kind === 'unavailable') return why;
  if (why.kind === 'inputs') {
    const causes: Cause[] = [];
    for (const c of why.changes) {
      const pid = rec.paths.indexOf(c.path);
      // The last line of this build that wrote the changed input and started before this one.
      const writer =
        pid < 0 ? undefined : rec.lines.filter((l) => l.outputs.includes(pid) && l.startUs < line.startUs && !seen.has(l)).at(-1);
      if (writer) causes.push({ path: c.path, line: writer, reason: reasonFor(rec, writer, c.path, older, seen) });
    }
    const reason: Reason = { kind: 'inputs', changes: why.changes, closestFrom: why.closestFrom, causes };
    if (why.matches) reason.matches = why.matches;
    return reason;
  }
  // A command kbx had not seen: compare with the line that last wrote the same file.
  for (const prev of older()) {
    const pid = prev.paths.indexOf(path);
    if (pid < 0) continue;
    // Of the lines that wrote the file there (a compile and an in-place patch, say), the most similar command.
    const writers = prev.lines.filter((l) => l.outputs.includes(pid) && (l.kind === 'hit' || l.kind === 'miss'));
    if (!writers.length) continue;
    const before = writers
      .map((l) => ({ l, same: wordDiff(l.command, line.command).filter((w) => w.op === '=').length }))
      .reduce((a, b) => (b.same > a.same ? b : a)).l;
    const env = envDiff(before.env !== undefined ? prev.envs[before.env] ?? [] : [], line.env !== undefined ? rec.envs[line.env] ?? [] : []);
    return {
      kind: 'changed-command',
      previous: { build: prev.id, line: before },
      words: wordDiff(before.command, line.command),
      ...(before.cwd !== line.cwd ? { cwd: [before.cwd, line.cwd] as [string, string] } : {}),
      env,
    };
  }
  return { kind: 'first-time' };
}

/** The changed inputs at the bottom of an explanation: what the developer changed. */
export function rootCauses(reason: Reason): InputChange[] {
  if (reason.kind !== 'inputs') return [];
  const out: InputChange[] = [];
  for (const c of reason.changes) {
    const cause = reason.causes.find((x) => x.path === c.path);
    const deeper = cause ? rootCauses(cause.reason) : [];
    // A changed input whose writer ran for another reason (a new command, an uncacheable generator) is itself the cause.
    if (deeper.length) out.push(...deeper);
    else out.push(c);
  }
  return out;
}
