// The heart of kbx: for one recipe line, find a stored run whose observed
// inputs all still hold (hit: restore its outputs), or let the shim run it
// under the tracer and store what it did (miss).
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { FileState } from '../fingerprint/file-state.js';
import { strongFingerprint, weakFingerprint, type LineRequest, type Mismatch, type PathEntry } from '../fingerprint/key.js';
import { classifyAccesses, type InputSpec } from '../observe/accesses.js';
import { untraceableProgram } from '../observe/untraceable.js';
import { parseTraceLog } from '../observe/trace-log.js';
import type { Entry, PathSets, Store, StoredOutput } from '../store/store.js';
import { sha256 } from '../util/hash.js';
import type { InputChange, MissWhy } from '../builds/record.js';
import { restoreEntry } from './restore.js';
import { PathSetCache, type CompactSet } from './path-set-cache.js';

export type LookupResult =
  | { kind: 'hit'; exit: number; stdout: Buffer; stderr: Buffer; savedUs: number; entry: Entry; set: CompactSet }
  | { kind: 'miss'; action: PendingAction; why: MissWhy; whyText: string }
  | { kind: 'pass'; reason: string };

export interface PendingAction {
  id: string;
  /** Path prefixes this line's tools keep private state under (ccache, distcc). */
  ignore: string[];
  buildId: string;
  weak: string;
  req: LineRequest;
  roots: string[];
  traceLog: string;
  startedMs: number;
}

export interface DoneReport {
  status: string;
  stdout: Buffer;
  stderr: Buffer;
  elapsedUs: number;
}

/** The outcome of a miss, for counting: 'stored', or why nothing was stored. */
export interface RecordResult {
  outcome: 'stored' | 'not-stored' | 'uncacheable';
  reason?: string;
  /** Work left after the shim may go on: compressing and writing blobs. */
  persist: Promise<void>;
  /** What the trace showed, when it could be read: files read (content) and written. */
  observed?: { inputs: string[]; outputs: string[] };
}

// Bumped whenever the rules that find a line uncacheable change, so that a
// line judged by older rules gets another chance.
export const RULES_VERSION = 4;

// Reasons found by a single run that hold for every later run of the same command.
const LASTING = /^(writes-outside-tree|reads-stdin|uses-terminal|reads-\/|runs-|static-binary|untraceable|modifies-input|nondeterministic)/;

function isExecutable(p: string): boolean {
  try {
    const st = statSync(p);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

function insideAny(p: string, roots: string[]): boolean {
  const abs = resolve(p);
  return roots.some((r) => abs === r || abs.startsWith(r.endsWith('/') ? r : r + '/'));
}

export class LineCache {
  readonly state = new FileState();
  readonly pathSets: PathSetCache;
  private nextId = 0;
  private untraceableCache = new Map<string, string | undefined>();

  constructor(
    private readonly store: Store,
    private readonly cfg: Config,
    private readonly tmpDir: string,
  ) {
    this.pathSets = new PathSetCache(store);
  }

  lookup(req: LineRequest, roots: string[], buildId: string): LookupResult {
    const weak = weakFingerprint(req);
    const rec = this.pathSets.get(weak);
    if (rec?.uncacheable && rec.rules === RULES_VERSION) {
      this.ranUnseen();
      return { kind: 'pass', reason: rec.uncacheable.split(':')[0]! };
    }
    let firstDiff: Mismatch | undefined;
    for (const set of rec?.sets ?? []) {
      const diff = this.pathSets.firstMismatch(this.state, set);
      if (diff) {
        firstDiff ??= diff;
        continue;
      }
      const entry = this.store.getEntry(set.strong);
      if (!entry) continue;
      const restored = restoreEntry(this.store, this.state, entry);
      if (!restored) continue; // a blob was evicted or corrupt: run the line
      return { kind: 'hit', exit: entry.exit, stdout: restored.stdout, stderr: restored.stderr, savedUs: entry.durationUs, entry, set };
    }
    const id = `${process.pid}-${++this.nextId}`;
    return {
      kind: 'miss',
      action: { id, buildId, ignore: [], weak, req, roots, traceLog: `${this.tmpDir}/trace-${id}.log`, startedMs: Date.now() },
      why: !rec ? { kind: 'new-command' } : firstDiff ? this.explainMiss(rec.sets) : { kind: 'unavailable' },
      whyText: firstDiff ? `${firstDiff.entry.p} was ${firstDiff.entry.v.slice(0, 16)}, now ${firstDiff.now.slice(0, 16)}` : rec ? 'stored outputs unavailable' : 'new command',
    };
  }

  /** Of the stored runs of a command, the one with the fewest changed inputs, and those changes. */
  private explainMiss(sets: readonly CompactSet[]): MissWhy {
    let best: { set: CompactSet; diffs: Mismatch[] } | undefined;
    for (const set of sets) {
      const diffs = this.pathSets.mismatches(this.state, set);
      if (!best || diffs.length < best.diffs.length) best = { set, diffs };
    }
    if (!best) return { kind: 'unavailable' };
    const changes = best.diffs.map(({ entry, now }): InputChange => {
      const absentNow = now === 'absent';
      const change: InputChange['change'] =
        entry.k === 'c' ? (absentNow ? 'disappeared' : 'content') : entry.v === 'absent' ? 'appeared' : absentNow ? 'disappeared' : 'type';
      const c: InputChange = { path: entry.p, change, was: entry.v, now };
      if (entry.k === 'c' && isExecutable(entry.p)) c.program = true;
      return c;
    });
    return { kind: 'inputs', changes, closestFrom: this.store.getEntry(best.set.strong)?.buildId ?? '' };
  }

  private inputValue(spec: InputSpec): string | undefined {
    if (spec.kind === 'e') {
      if (spec.startAbsent) return 'absent';
      const now = this.state.existence(spec.path);
      return now === 'absent' ? 'file' : now; // it existed when probed; the line removed it since
    }
    if (spec.pre) return this.state.contentBefore(spec.path, spec.pre);
    return this.state.content(spec.path);
  }

  private untraceable(path: string): string | undefined {
    if (!this.untraceableCache.has(path)) this.untraceableCache.set(path, untraceableProgram(path));
    return this.untraceableCache.get(path);
  }

  private learnUncacheable(action: PendingAction, reason: string): void {
    const rec: PathSets = { command: action.req.command, cwd: action.req.cwd, uncacheable: reason, rules: RULES_VERSION, sets: [] };
    this.pathSets.put(action.weak, rec);
  }

  /** A line ran without kbx seeing what it wrote: stop trusting anything checked before. */
  ranUnseen(): void {
    this.state.newGeneration();
  }

  /**
   * Called when the shim reports the line finished. Reads everything the entry
   * needs before returning (the next recipe line may change these files); the
   * blob writes continue in `persist`. Anything not stored may have written
   * files kbx did not see, so it starts a new generation.
   */
  record(action: PendingAction, done: DoneReport): RecordResult {
    const observed = { inputs: [] as string[], outputs: [] as string[] };
    const res = this.recordTrace(action, done, observed);
    res.observed = observed;
    if (res.outcome !== 'stored') this.ranUnseen();
    return res;
  }

  private recordTrace(action: PendingAction, done: DoneReport, observed: { inputs: string[]; outputs: string[] }): RecordResult {
    const none = Promise.resolve();
    let log: Buffer;
    try {
      log = readFileSync(action.traceLog);
    } catch {
      return { outcome: 'not-stored', reason: 'no-trace', persist: none };
    } finally {
      rmSync(action.traceLog, { force: true });
    }
    if (!/^\d+$/.test(done.status)) return { outcome: 'not-stored', reason: done.status.startsWith('sig') ? 'killed' : 'output-too-big', persist: none };
    const { events, bad } = parseTraceLog(log);
    const acc = classifyAccesses(events, bad, {
      ignorePrefixes: [...this.cfg.ignorePaths, this.cfg.dir, ...action.ignore],
      uncacheablePrograms: this.cfg.uncacheablePrograms,
    });
    for (const spec of acc.inputs) if (spec.kind === 'c') observed.inputs.push(spec.path);
    observed.outputs.push(...acc.written.filter((p) => existsSync(p)));
    if (!acc.uncacheable) {
      const prog = acc.execed.find((p) => this.untraceable(p));
      if (prog) acc.uncacheable = `${this.untraceable(prog)}: ${prog}`;
    }
    if (acc.uncacheable) {
      if (LASTING.test(acc.uncacheable)) {
        this.learnUncacheable(action, acc.uncacheable);
        return { outcome: 'uncacheable', reason: acc.uncacheable, persist: none };
      }
      return { outcome: 'not-stored', reason: acc.uncacheable, persist: none };
    }

    const entries: PathEntry[] = [];
    for (const spec of acc.inputs) {
      const v = this.inputValue(spec);
      if (v === undefined) return { outcome: 'not-stored', reason: 'unknown-prior-content', persist: none };
      entries.push({ k: spec.kind, p: spec.path, v });
    }

    // Inputs are valued; now drop what kbx knew of the paths the line changed.
    for (const p of [...acc.written, ...acc.deleted]) this.state.forget(p);
    const outputs: StoredOutput[] = [];
    const blobs = new Map<string, Buffer>();
    const removedByLine = new Set([...acc.deleted, ...acc.gone]);
    for (const p of acc.written) {
      let st;
      try {
        st = lstatSync(p);
      } catch {
        // Written and removed again by the line (itself or a directory above it): a temporary.
        if (removedByLine.has(p) || [...removedByLine].some((d) => p.startsWith(d + '/'))) continue;
        // Gone although the line left it: something else removed it (make deleting a
        // target after another job failed, a second build in the same tree). What
        // the line made is unknown; storing "no output" would restore nothing.
        return { outcome: 'not-stored', reason: `output-vanished: ${p}`, persist: none };
      }
      if (!insideAny(p, action.roots)) {
        const reason = `writes-outside-tree: ${p}`;
        this.learnUncacheable(action, reason);
        return { outcome: 'uncacheable', reason, persist: none };
      }
      if (st.isSymbolicLink()) outputs.push({ kind: 'link', path: p, target: readlinkSync(p) });
      else if (st.isDirectory()) outputs.push({ kind: 'dir', path: p });
      else if (st.isFile()) {
        const data = readFileSync(p);
        const digest = sha256(data);
        blobs.set(digest, data);
        outputs.push({ kind: 'file', path: p, digest, mode: st.mode & 0o7777, size: data.length });
        this.state.noteContent(p, digest);
      }
    }
    // Directories first so that restoring creates them before the files inside.
    outputs.sort((a, b) => (a.kind === 'dir' ? 0 : 1) - (b.kind === 'dir' ? 0 : 1));
    const deleted = acc.deleted.filter((p) => insideAny(p, action.roots) && !outputs.some((o) => o.path === p));

    const stdoutDigest = done.stdout.length ? sha256(done.stdout) : '';
    const stderrDigest = done.stderr.length ? sha256(done.stderr) : '';
    if (stdoutDigest) blobs.set(stdoutDigest, done.stdout);
    if (stderrDigest) blobs.set(stderrDigest, done.stderr);

    const entry: Entry = {
      outputs,
      deleted,
      stdout: stdoutDigest,
      stderr: stderrDigest,
      exit: Number(done.status),
      durationUs: done.elapsedUs,
      createdMs: Date.now(),
      buildId: action.buildId,
    };
    const strong = strongFingerprint(action.weak, entries);

    // Same inputs, different outputs: the line depends on something kbx cannot see.
    const previous = this.store.getEntry(strong);
    if (previous && !sameOutputs(previous, entry)) {
      this.learnUncacheable(action, 'nondeterministic');
      return { outcome: 'uncacheable', reason: 'nondeterministic', persist: none };
    }

    const persist = (async () => {
      for (const [digest, data] of blobs) await this.store.putBlob(digest, data);
      this.store.putEntry(strong, entry);
      const old = this.store.getPathSets(action.weak);
      const rec: PathSets = old && !old.uncacheable ? old : { command: action.req.command, cwd: action.req.cwd, sets: [] };
      rec.sets = [{ strong, entries }, ...rec.sets.filter((s) => s.strong !== strong)].slice(0, this.cfg.pathSetsPerCommand);
      this.pathSets.put(action.weak, rec);
    })();
    return { outcome: 'stored', persist };
  }
}

function sameOutputs(a: Entry, b: Entry): boolean {
  const key = (e: Entry) =>
    JSON.stringify([e.exit, e.stdout, e.stderr, e.deleted, e.outputs.map((o) => (o.kind === 'file' ? [o.path, o.digest, o.mode] : o))]);
  return key(a) === key(b);
}
