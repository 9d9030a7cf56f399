// The heart of kbx: for one recipe line, find a stored run whose observed
// inputs all still hold (hit: restore its outputs), or let the shim run it
// under the tracer and store what it did (miss).
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { FileState, listingDigest } from '../fingerprint/file-state.js';
import { absentOrEmpty, ABSENT_OR_FILE, lstatNow, replaceableNow, strongFingerprint, weakFingerprint, type LineRequest, type Mismatch, type PathEntry } from '../fingerprint/key.js';
import { classifyAccesses, entriesChanged, renameDestinations, unkeyedFailure, type Accesses, type ClassifyOptions, type InputSpec } from '../observe/accesses.js';
import { untraceableProgram } from '../observe/untraceable.js';
import { shimPath } from '../native/build.js';
import { parseTraceLog, type TraceEvent } from '../observe/trace-log.js';
import { TimeMacroScanner } from '../observe/time-macros.js';
import { timeMacroInputs } from '../fingerprint/time-inputs.js';
import { identityInputs, identitiesUsed } from '../fingerprint/identity-inputs.js';
import { execInputs } from '../fingerprint/exec-inputs.js';
import { CompilerVariableScanner, namesCompilerVariable } from '../observe/compiler-variables.js';
import type { Entry, PathSets, Store, StoredOutput } from '../store/store.js';
import { sha256 } from '../util/hash.js';
import type { InputChange, MissWhy } from '../builds/record.js';
import { restoreEntry } from './restore.js';
import { insideRoots, linkDestination, locate, realRoots } from '../util/roots.js';
import { PathSetCache, type CompactSet } from './path-set-cache.js';
import { refusal, underRoots } from './restore.js';
import type { Filled, RemoteStore } from '../store/remote/remote-store.js';
import { RootNames, type NamedRoot } from '../fingerprint/root-names.js';
import { WRAPPER_NAMES, ranCompilerOrWrapper, simpleCommands, stripWrappers, type WrapperName } from '../fingerprint/wrappers.js';
import { restoredCmdFile, savedCommands, storedCmdFile } from '../kernel/cmd-file.js';
import { Projections, type LineProjections, type ProjectionRule } from '../fingerprint/projection.js';
import { LinkPartners, changedSinceExceptLinks, isLinkedInode, linkedInodes, restoreOrder, wroteThroughLink } from './hard-links.js';

export type LookupResult =
  | { kind: 'hit'; exit: number; stdout: Buffer; stderr: Buffer; savedUs: number; entry: Entry; set: CompactSet; names: RootNames; weak: string }
  | { kind: 'miss'; action: PendingAction; why: MissWhy; whyText: string }
  | { kind: 'pass'; reason: string };

export interface PendingAction {
  id: string;
  /** Path prefixes this line's tools keep private state under (ccache, distcc). */
  ignore: string[];
  /** Wrappers whose words the key took out of the line's environment (`CC=distcc gcc`): key.ts EnvDigests.wrappers. */
  envWrappers?: WrapperName[];
  buildId: string;
  weak: string;
  req: LineRequest;
  roots: string[];
  /** The same roots by role: what the entry's paths are named by. */
  names: RootNames;
  traceLog: string;
  /** The file name of the make that runs the build (KBX_MAKE): a run that started it is not stored. */
  makeName?: string;
  /**
   * When the line started, µs since the epoch on the wall clock: the shim's
   * start (server.ts), else the lookup. An input changed at or after it may
   * have been read in its older version.
   */
  startUs: number;
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
  /** stored: the strong fingerprint it is stored under. */
  strong?: string;
  /** The compiler wrappers the line ran (their programs in the trace). */
  wrappers?: WrapperName[];
}

const stripText = (t: string) => stripWrappers(t).text;

// What a wrapper prints about itself (distcc and icecream falling back to a
// local compile, an empty host list): whole lines, each naming the wrapper.
const WRAPPER_MESSAGE = /^(?:distcc\[\d+\] |ICECC\[\d+\] |ccache: |sccache: )[^\n]*(?:\n|$)/gm;

function withoutWrapperMessages(out: Buffer): Buffer {
  if (out.length === 0) return out;
  const text = out.toString('latin1');
  const kept = text.replace(WRAPPER_MESSAGE, '');
  return kept.length === text.length ? out : Buffer.from(kept, 'latin1');
}

/** The wrappers among the programs a trace shows running (x: program images). */
function wrappersRun(events: readonly { op: string; path: string }[]): WrapperName[] {
  const out = new Set<WrapperName>();
  for (const ev of events) {
    if (ev.op !== 'x') continue;
    const base = ev.path.slice(ev.path.lastIndexOf('/') + 1);
    const w = WRAPPER_NAMES.find((n) => n === base);
    if (w) out.add(w);
  }
  return [...out];
}

// Bumped whenever the rules that find a line uncacheable change, so that a
// line judged by older rules gets another chance.
export const RULES_VERSION = 4;

// Files and path sets stay in the daemon's memory while one of this many
// last builds used them (any tree): a developer switching between a few
// trees keeps all of them warm.
export const KEEP_BUILDS = 10;

const HEX64 = /^[0-9a-f]{64}$/;

// Reasons found by a single run that hold for every later run of the same command.
const LASTING = /^(writes-outside-tree|reads-stdin|uses-terminal|reads-\/|runs-|static-binary|untraceable|modifies-input|nondeterministic|network)/;

function isExecutable(p: string): boolean {
  try {
    const st = statSync(p);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Where a path the line wrote or deleted really is (the directories above it
 * resolved through symlinks: util/roots.ts), or undefined when that is
 * outside the build roots (`real`: realRoots of the line's roots). A symlink
 * is inside only if it also leads inside: restore.ts refuses any other, so
 * storing one would only miss every time.
 */
function insideAny(p: string, real: readonly string[], st?: Stats): string | undefined {
  const at = locate(p);
  if (at === undefined || !insideRoots(at, real, st?.isDirectory() ?? false)) return undefined;
  if (st?.isSymbolicLink()) {
    const dest = linkDestination(at, readlinkSync(p));
    if (dest === undefined || !insideRoots(dest, real, true)) return undefined;
  }
  return at;
}

function parentSetgid(p: string): boolean {
  try {
    return (statSync(dirname(p)).mode & 0o2000) !== 0;
  } catch {
    return false;
  }
}

export class LineCache {
  readonly state = new FileState();
  readonly pathSets: PathSetCache;
  private nextId = 0;
  private untraceableCache = new Map<string, string | undefined>();
  /** FileState generation and PathSetCache epoch at each of the last KEEP_BUILDS build starts, oldest first. */
  private buildStarts: Array<{ gen: number; epoch: number }> = [];
  private readonly timeMacros = new TimeMacroScanner();
  private readonly compilerVariables = new CompilerVariableScanner();

  /** A compiler or wrapper ran, or the text or a text file the line read names $CC and the like (compiler-variables.ts). */
  private mayUseCompilerVariables(command: string, execed: readonly string[], entries: readonly PathEntry[]): boolean {
    if (ranCompilerOrWrapper(execed) || namesCompilerVariable(command)) return true;
    return entries.some((e) => e.k === 'c' && this.compilerVariables.scan(e.p, e.v) !== false);
  }
  private readonly rootNames = new Map<string, RootNames>();
  /** Which roots each input's bytes hold, by roots and content digest: a kernel build reads the same headers thousands of times. */
  private readonly inputRoots = new Map<string, number[]>();
  /** The wrappers the trace recordTrace read last showed (set there, read by record). */
  private lastWrappers: WrapperName[] = [];
  /** Told when a stored entry is refused at restore (it names paths outside the build roots). */
  onRefused?: (buildId: string, why: string) => void;
  /** Inputs valued by the part of a file the line's tools read (projection.ts). */
  private readonly projections: Projections;

  constructor(
    private readonly store: Store,
    private readonly cfg: Config,
    private readonly tmpDir: string,
    /** Shared stores asked on a local miss and sent new entries. */
    private readonly remote?: RemoteStore,
    /** Rules that value some inputs by a projection (the daemon gives the kernel's: src/kernel/btf). */
    projectionRules: readonly ProjectionRule[] = [],
  ) {
    this.pathSets = new PathSetCache(store);
    this.projections = new Projections(projectionRules);
  }

  /**
   * The roots a content input's bytes hold. A file naming the root can lead a
   * line to the root's files by that name (a list of paths, a tool with a
   * path built in): in another checkout the same bytes name the first one,
   * which the relative key would not check. The bytes the line read: the
   * file, or if the line changed it since, the store's copy of the version it
   * read (stored by the line that wrote it); neither: every root.
   */
  private rootsInInput(path: string, digest: string, names: RootNames): NamedRoot[] {
    const key = `${names.key}\0${digest}`;
    let found = this.inputRoots.get(key);
    if (found === undefined) {
      let data: Buffer | undefined;
      try {
        data = readFileSync(path);
        if (sha256(data) !== digest) data = this.store.getBlob(digest);
      } catch {
        data = this.store.getBlob(digest);
      }
      if (!data) return names.roots;
      found = names.embeddedIn(data).map((r) => r.index);
      if (this.inputRoots.size >= 200_000) this.inputRoots.clear();
      this.inputRoots.set(key, found);
    }
    return names.roots.filter((r) => found.includes(r.index));
  }

  /** The build roots (KBX_ROOTS) by role; one object per set of roots (it resolves them once). */
  namesFor(roots: readonly string[]): RootNames {
    const key = roots.join(':');
    let names = this.rootNames.get(key);
    if (!names) {
      if (this.rootNames.size >= 64) this.rootNames.clear();
      names = new RootNames(roots);
      this.rootNames.set(key, names);
    }
    return names;
  }

  /**
   * A local hit or pass is answered at once, as without remotes (the hot
   * path stays synchronous); only a local miss with a remote still up waits
   * for the remotes, and a run one holds is restored from the bytes it sent.
   */
  lookup(req: LineRequest, roots: string[], buildId: string): LookupResult | Promise<LookupResult> {
    const names = this.namesFor(roots);
    const weak = weakFingerprint(req, names);
    const local = this.lookupLocal(req, roots, buildId, names, weak);
    if (local.kind !== 'pass') this.remote?.noteLookup(buildId, weak);
    if (local.kind !== 'miss' || !this.remote?.active) return local;
    const parts = this.projections.forLookup(req.command, req.cwd);
    const filled = this.remote.lookup({
      weak,
      buildId,
      holds: (strong, entries) => this.pathSets.holds(this.state, strong, entries, names, parts, req.wrapperEnv),
      refusal: (entry) => {
        const here = underRoots(entry, names);
        return typeof here === 'string' ? here : refusal(here, roots);
      },
      install: (remote, set, encoded) => {
        const old = this.store.getPathSets(weak);
        // A new command whose record holds only sets that were checked: kept as the remote sent it (no re-encoding).
        if (!old && encoded && !remote.uncacheable && remote.sets[0]?.strong === set.strong && remote.sets.length <= this.cfg.pathSetsPerCommand) {
          this.pathSets.putEncoded(weak, remote, encoded);
          return;
        }
        const rec: PathSets = old && !old.uncacheable ? old : { command: remote.command, cwd: remote.cwd, sets: [] };
        rec.sets = [set, ...rec.sets.filter((s) => s.strong !== set.strong)].slice(0, this.cfg.pathSetsPerCommand);
        this.pathSets.put(weak, rec);
      },
    });
    return filled.then((found) => (found ? this.restoreRemote(req, roots, buildId, names, weak, found) ?? local : local));
  }

  /**
   * A run a remote holds, restored from the entry and the blobs it verified
   * (the local copy is written after the answer) with every check a local
   * entry's restore makes; undefined if the restore refused it.
   */
  private restoreRemote(req: LineRequest, roots: string[], buildId: string, names: RootNames, weak: string, found: Filled): LookupResult | undefined {
    const { entry, set } = found;
    const restored = restoreEntry(withBlobs(this.store, found.blobs), this.state, entry, {
      roots,
      names,
      refused: (why) => this.onRefused?.(buildId, why),
      rewrite: cmdFiles(req.command),
    });
    if (!restored) return undefined;
    const compact = this.pathSets.compactOf(set.strong, set.entries);
    return { kind: 'hit', exit: entry.exit, stdout: restored.stdout, stderr: restored.stderr, savedUs: entry.durationUs, entry: restored.entry, set: compact, names, weak };
  }

  /** The lookup in the local store alone. */
  lookupLocal(req: LineRequest, roots: string[], buildId: string, names = this.namesFor(roots), weak = weakFingerprint(req, names)): LookupResult {
    const rec = this.pathSets.get(weak);
    if (rec?.uncacheable && rec.rules === RULES_VERSION) {
      this.ranUnseen();
      return { kind: 'pass', reason: rec.uncacheable.split(':')[0]! };
    }
    let firstDiff: Mismatch | undefined;
    const parts = rec?.sets.length ? this.projections.forLookup(req.command, req.cwd) : undefined;
    for (const set of rec?.sets ?? []) {
      const diff = this.pathSets.firstMismatch(this.state, set, names, parts, req.wrapperEnv);
      if (diff) {
        firstDiff ??= diff;
        continue;
      }
      const entry = this.store.getEntry(set.strong);
      if (!entry || (entry.exit !== 0 && !replayableFailure(entry))) continue; // a failure stored by an older kbx is not replayed
      const restored = restoreEntry(this.store, this.state, entry, {
        roots,
        names,
        refused: (why) => this.onRefused?.(buildId, why),
        rewrite: cmdFiles(req.command),
      });
      if (!restored) continue; // a blob was evicted or corrupt: run the line
      return { kind: 'hit', exit: entry.exit, stdout: restored.stdout, stderr: restored.stderr, savedUs: entry.durationUs, entry: restored.entry, set, names, weak };
    }
    const id = `${process.pid}-${++this.nextId}`;
    return {
      kind: 'miss',
      action: { id, buildId, ignore: [], weak, req, roots, names, traceLog: `${this.tmpDir}/trace-${id}.log`, startUs: Date.now() * 1000 },
      why: !rec ? { kind: 'new-command' } : firstDiff ? this.explainMiss(rec.sets, names, parts, req.wrapperEnv) : { kind: 'unavailable' },
      whyText: firstDiff ? `${firstDiff.entry.p} was ${firstDiff.entry.v.slice(0, 16)}, now ${firstDiff.now.slice(0, 16)}` : rec ? 'stored outputs unavailable' : 'new command',
    };
  }

  /**
   * Of the stored runs of a command, the one with the fewest changed inputs,
   * and those changes. When a file it read has since gone back to what
   * another stored run read (an edit reverted), that run too, with the inputs
   * the tree differs from it in: the change that matters is there.
   */
  private explainMiss(sets: readonly CompactSet[], names: RootNames, parts: LineProjections | undefined, wrapperEnv: string | undefined): MissWhy {
    const all = sets.map((set) => ({ set, diffs: this.pathSets.mismatches(this.state, set, names, parts, wrapperEnv) }));
    let best: (typeof all)[number] | undefined;
    for (const run of all) if (!best || run.diffs.length < best.diffs.length) best = run;
    if (!best) return { kind: 'unavailable' };
    const changesOf = (diffs: Mismatch[]) =>
      diffs.map(({ entry, now }): InputChange => {
        const absentNow = now === 'absent';
        const change: InputChange['change'] =
          entry.k === 'c' ? (absentNow ? 'disappeared' : 'content') : entry.v === 'absent' ? 'appeared' : absentNow ? 'disappeared' : 'type';
        // A run keyed with its build root (its outputs named it): named by the root as it is now.
        const path = entry.k === 'root' ? (names.toAbsolute(entry.p) ?? entry.p) : entry.p;
        const c: InputChange = { path, change, was: entry.v, now };
        if (entry.k === 'c' && isExecutable(entry.p)) c.program = true;
        return c;
      });
    const why: MissWhy = { kind: 'inputs', changes: changesOf(best.diffs), closestFrom: this.store.getEntry(best.set.strong)?.buildId ?? '' };
    const reverted = new Set(best.diffs.filter((d) => d.entry.k === 'c' && d.now !== 'absent').map((d) => d.entry.p));
    let match: (typeof all)[number] | undefined;
    for (const run of all) {
      if (run === best || (match && match.diffs.length <= run.diffs.length)) continue;
      // It read one of those files as it is now: the file is in the set, and holds.
      if (run.diffs.some((d) => reverted.has(d.entry.p))) continue;
      const read = new Set(this.pathSets.contentPaths(run.set, names));
      if ([...reverted].some((p) => read.has(p))) match = run;
    }
    if (match) why.matches = { from: this.store.getEntry(match.set.strong)?.buildId ?? '', changes: changesOf(match.diffs) };
    return why;
  }

  /**
   * A line that changed a file in place, in a version kbx never hashed (a tree
   * built without kbx: kbuild's module BTF line rewrites the .ko plain make
   * left), cannot be keyed this time. Hashing what it left there makes that
   * version known, so that the next run of such a line (make reruns it after
   * every relink of vmlinux) can be keyed and stored; without this, every run
   * would find the version before it unknown. Inside the build roots only.
   */
  private hashChangedInPlace(acc: Accesses, roots: readonly string[]): void {
    const real = realRoots(roots);
    for (const spec of acc.inputs) {
      if (spec.kind === 'c' && spec.pre && insideAny(spec.path, real) !== undefined) this.state.content(spec.path);
    }
  }

  private inputValue(spec: InputSpec, linked: Set<string>, parts: LineProjections | undefined): string | undefined {
    // The line left a file of its own there (replacers.ts says why its probe may be keyed so).
    if (spec.replaced && replaceableNow(spec.path)) return ABSENT_OR_FILE;
    if (spec.kind === 'e') {
      if (spec.startAbsent) return 'absent';
      const now = this.state.existence(spec.path);
      return now === 'absent' ? 'file' : now; // it existed when probed; the line removed it since
    }
    if (spec.createdEmpty) {
      // Keyed with the bits the line left; a line that removed the file again keys its absence.
      const st = lstatNow(spec.path);
      if (st !== 'absent' && st?.isFile()) return absentOrEmpty(st.mode);
    }
    if (spec.pre) return this.state.contentBefore(spec.path, spec.pre);
    // A file the line hard-linked (`ln big.bin alias`): the link changed its ctime, not its bytes.
    if (linked.size && isLinkedInode(spec.path, linked)) return this.state.contentAfterLink(spec.path);
    const proj = parts?.get(spec.path);
    return proj ? this.state.projected(spec.path, proj) : this.state.content(spec.path);
  }

  /**
   * A content input changed at or after the line's start (as ccache checks):
   * the line may have read the older version while the key holds the newer
   * one, and every clean rebuild would restore the stale output. Returns the
   * first such path. An input the line itself changed is judged by its stat
   * before that change; a directory whose entries the line itself changed
   * cannot be judged by its times and is left out.
   *
   * No margin on the comparison: file times come from the kernel's coarse
   * clock, which trails the shim's CLOCK_REALTIME by less than a tick, so a
   * file written before the line started (the previous recipe line's object,
   * a millisecond earlier) always dates before the start and is stored. An
   * edit within a tick after the start may date just before it; it is missed
   * only if the line had already read the file, which takes longer than a tick
   * (asking the daemon, starting the shell and the tool). A margin would
   * refuse the common case instead.
   */
  private inputChangedDuringLine(acc: Accesses, startUs: number, ownDirs: Map<string, unknown>): string | undefined {
    const sinceNs = BigInt(Math.floor(startUs)) * 1000n;
    // `ln input output` changes the input's ctime, not its bytes.
    let linked: Set<string> | undefined;
    const linkedByLine = () => (linked ??= linkedInodes(acc.written));
    for (const spec of acc.inputs) {
      if (spec.kind !== 'c') continue;
      if (spec.pre) {
        if (spec.pre.mtimeNs >= sinceNs) return spec.path;
        continue;
      }
      if (ownDirs.has(resolve(spec.path)) && this.state.existence(spec.path) === 'dir') continue;
      if (this.state.changedSince(spec.path, sinceNs) && changedSinceExceptLinks(spec.path, sinceNs, linkedByLine)) return spec.path;
    }
    return undefined;
  }

  private untraceable(path: string): string | undefined {
    // kbx's own shim, run as `$(SHELL) …` by a traced line: static, but it
    // only execs the real shell there, which the tracer enters.
    if (path === shimPath) return undefined;
    if (!this.untraceableCache.has(path)) this.untraceableCache.set(path, untraceableProgram(path));
    return this.untraceableCache.get(path);
  }

  private learnUncacheable(action: PendingAction, reason: string): void {
    const rec: PathSets = { command: action.req.command, cwd: action.req.cwd, uncacheable: reason, rules: RULES_VERSION, sets: [] };
    this.pathSets.put(action.weak, rec);
  }

  /** A build starts: every path is checked again, and what the oldest builds alone used may be forgotten at its end. */
  startBuild(): void {
    this.state.newGeneration();
    this.pathSets.epoch++;
    this.buildStarts.push({ gen: this.state.generation, epoch: this.pathSets.epoch });
    if (this.buildStarts.length > KEEP_BUILDS) this.buildStarts.shift();
  }

  /**
   * Forgets, from memory only, the files and path sets no build among the
   * last KEEP_BUILDS looked at: without this a daemon serving build trees
   * that come and go (a checkout or temporary directory per build) keeps
   * every path it ever saw. Run after a build ends, off the critical path.
   */
  forgetOldBuilds(): void {
    const oldest = this.buildStarts[0];
    if (!oldest || this.buildStarts.length < KEEP_BUILDS) return;
    this.state.forgetCheckedBefore(oldest.gen);
    this.pathSets.forgetUnusedSince(oldest.epoch);
    if (this.untraceableCache.size > 10_000) this.untraceableCache.clear();
  }

  /** Sizes of what the daemon keeps in memory (kbx daemon status --json). */
  memoryCounts(): Record<string, number> {
    const sets = this.pathSets.counts;
    return {
      knownFiles: this.state.size,
      knownExistences: this.state.existenceCount,
      pathSetRecords: sets.records,
      pathSetStrings: sets.strings,
      untraceablePrograms: this.untraceableCache.size,
      inputRoots: this.inputRoots.size,
    };
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
    if (this.lastWrappers.length) res.wrappers = this.lastWrappers;
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
    const wrappers = (this.lastWrappers = wrappersRun(events));
    const classify = {
      ignorePrefixes: [...this.cfg.ignorePaths, this.cfg.dir, ...action.ignore],
      uncacheablePrograms: this.cfg.uncacheablePrograms,
      makeName: action.makeName,
      command: action.req.command,
    };
    const acc = classifyAccesses(events, bad, classify);
    for (const spec of acc.inputs) if (spec.kind === 'c') observed.inputs.push(spec.path);
    observed.outputs.push(...acc.written.filter((p) => existsSync(p)));
    if (!acc.uncacheable) {
      const prog = acc.execed.find((p) => this.untraceable(p));
      if (prog) acc.uncacheable = `${this.untraceable(prog)}: ${prog}`;
    }
    // The wrappers this line is keyed without (its text runs a wrapped compile:
    // wrappers.ts); a line keyed with them keeps all they did.
    const textWrappers = stripWrappers(action.req.command).wrappers;
    const keyedWithout = new Set<string>([...textWrappers, ...(action.envWrappers ?? [])]);
    const wrapped = wrappers.some((w) => keyedWithout.has(w));
    // A wrapper's own program, by its file name: no part of the key (wrappers.ts).
    const wrapperProgram = (p: string) => keyedWithout.has(p.slice(p.lastIndexOf('/') + 1));
    // sccache hands the compile to its server, a process the tracer is not in:
    // what the compiler read is nowhere in this trace.
    if (wrappers.includes('sccache')) acc.uncacheable = 'sccache-server';
    if (acc.uncacheable) {
      // Not learned when a wrapper the key leaves out ran: the verdict may be the
      // wrapper's (sccache reads /sys/fs/cgroup), and CC=gcc builds share this key.
      if (LASTING.test(acc.uncacheable) && !wrapped) {
        this.learnUncacheable(action, acc.uncacheable);
        return { outcome: 'uncacheable', reason: acc.uncacheable, persist: none };
      }
      return { outcome: 'not-stored', reason: acc.uncacheable, persist: none };
    }
    // A failure may come from what no key holds (an OOM-killed cc1, a full disk,
    // a flaky tool): replaying it would fail every build until the inputs change.
    // Only a failure whose every cause is keyed is stored (keyedFailure).
    const failed = done.status !== '0';
    if (failed && !keyedFailure(Number(done.status), events, classify)) return { outcome: 'not-stored', reason: 'exit-nonzero', persist: none };
    if (wrapped) {
      // What the wrapper said about itself is no part of what the line makes:
      // a hit for CC=gcc must not print it, and a run that fell back must store
      // what a run on the farm stores (the same object).
      done = { ...done, stdout: withoutWrapperMessages(done.stdout), stderr: withoutWrapperMessages(done.stderr) };
      // The wrapper's own program is no part of the key (wrappers.ts): the compiler it ran is.
      acc.inputs = acc.inputs.filter((spec) => !(spec.kind === 'c' && wrapperProgram(spec.path)));
    }
    // A write in place through one name of a file changed its other names too, and a
    // hit, which writes a new file, would not: such a line runs every time.
    if (wroteThroughLink(events)) return { outcome: 'not-stored', reason: 'writes-through-link', persist: none };

    const entries: PathEntry[] = [];
    const changedEntries = entriesChanged(events);
    const linked = linkedInodes(acc.written);
    const parts = this.projections.forRun(action.req.command, action.req.cwd, acc.execed);
    for (const spec of acc.inputs) {
      let v = this.inputValue(spec, linked, parts);
      if (v === undefined) {
        this.hashChangedInPlace(acc, action.roots);
        return { outcome: 'not-stored', reason: 'unknown-prior-content', persist: none };
      }
      // A listing the line changed itself: the key is the listing before the line.
      const own = v.startsWith('dir:') ? changedEntries.get(resolve(spec.path)) : undefined;
      if (own) v = listingBefore(spec.path, own);
      entries.push({ k: spec.kind, p: spec.path, v });
    }
    // After valuing: a change between that and this stat shows here too.
    const changed = this.inputChangedDuringLine(acc, action.startUs, changedEntries);
    if (changed) return { outcome: 'not-stored', reason: `input-changed: ${changed}`, persist: none };
    // The shim started the shell before the tracer was there: its bytes are an input too.
    const shell = action.req.shell;
    if (shell && !entries.some((e) => e.k === 'c' && e.p === shell)) entries.push({ k: 'c', p: shell, v: this.state.content(shell) });
    // A compile naming __DATE__/__TIME__/__TIMESTAMP__: key the date or mtimes, or store nothing.
    const line = { execed: acc.execed, entries, env: action.req.timeEnv ?? {}, command: action.req.command, startedMs: action.startUs / 1000, nowMs: this.pathSets.now() };
    const timeInputs = timeMacroInputs(line, this.timeMacros, this.state);
    if (typeof timeInputs === 'string') return { outcome: 'not-stored', reason: timeInputs, persist: none };
    entries.push(...timeInputs);
    // A line that printed the host's or the user's name: key who that is (identity-inputs.ts).
    entries.push(...identityInputs(identitiesUsed(acc.execed, acc.askedHost ?? []), entries, this.state));
    // The programs it ran, and those whose execute bit it asked about (`[ -x f ]`): keyed with
    // their execute bits (exec-inputs.ts).
    entries.push(...execInputs(acc.execed, acc.execProbed, wrapperProgram));
    // Not a wrapped compile, but it ran a compiler or a wrapper, or may read $CC itself: what it
    // made may depend on the wrappers its environment names (`$CC --version` through distcc
    // names another gcc; `echo "$CC"`), which its weak key is taken without.
    if (action.req.wrapperEnv !== undefined && textWrappers.length === 0 && this.mayUseCompilerVariables(action.req.command, acc.execed, entries)) {
      entries.push({ k: 'env', p: 'wrappers', v: action.req.wrapperEnv });
    }

    // Inputs are valued; now drop what kbx knew of the paths the line changed.
    for (const p of [...acc.written, ...acc.deleted]) this.state.forget(p);
    const outputs: StoredOutput[] = [];
    const blobs = new Map<string, Buffer>();
    const kept = new Set<string>();
    const real = realRoots(action.roots); // once per run, not once per output
    let saved: Map<string, string> | undefined; // the commands the line saves in .cmd files (kernel/cmd-file.ts)
    // An output with a second name: the input or earlier output it is a hard link of (hard-links.ts).
    const partners = new LinkPartners(() => {
      const value = new Map(entries.map((e) => [e.p, e.v]));
      return acc.inputs.flatMap((spec) => {
        const digest = value.get(spec.path);
        const at = spec.kind === 'c' && !spec.pre && digest && HEX64.test(digest) ? insideAny(spec.path, real) : undefined;
        return at && digest ? [{ path: spec.path, at, digest }] : [];
      });
    });
    // Keeps one output where it really is; why not, for what an entry cannot
    // hold (a fifo, a socket, a device) or what lies outside the build roots.
    const keep = (p: string, st: Stats): string | undefined => {
      if (kept.has(p)) return undefined;
      if (!st.isFile() && !st.isDirectory() && !st.isSymbolicLink()) return `output-special: ${p}`;
      // An entry holds permission bits only (the decoder refuses more): a hit
      // would give `chmod 4755 tool` 0755, `mkdir -m 1777 tmp` 0777. A setgid
      // bit a directory inherited from its parent, mkdir gives a restore too.
      if (!st.isSymbolicLink() && st.mode & 0o7000 && !(st.isDirectory() && (st.mode & 0o7000) === 0o2000 && parentSetgid(p))) return `output-setid: ${p}`;
      const at = insideAny(p, real, st);
      if (at === undefined) return `writes-outside-tree: ${p}`;
      kept.add(p).add(at);
      // A hard link of an input (`ln big.bin alias`): its bytes are the input's, hashed
      // already, and the store needs no copy of them (a restore links it, or misses).
      const input = st.isFile() ? partners.inputOf(p, at, st.nlink) : undefined;
      if (input) {
        outputs.push({ kind: 'file', path: at, digest: input.digest, mode: st.mode & 0o777, size: st.size, linkOf: input.at });
        this.state.noteContent(p, input.digest);
      } else if (st.isFile()) {
        const data = readFileSync(p);
        const onDisk = sha256(data);
        this.state.noteContent(p, onDisk);
        // A kbuild .cmd file is stored as written without a wrapper (kernel/cmd-file.ts): no link of anything.
        const cmdFile = storedCmdFile(p, data, (saved ??= savedCommands(simpleCommands(action.req.command))), stripText);
        const bytes = cmdFile ?? data;
        const digest = cmdFile ? sha256(cmdFile) : onDisk;
        blobs.set(digest, bytes);
        const linkOf = cmdFile ? undefined : partners.linkOf(p, at, digest, st.nlink);
        outputs.push({ kind: 'file', path: at, digest, mode: st.mode & 0o777, size: bytes.length, ...(linkOf !== undefined && { linkOf }) });
      } else {
        outputs.push(st.isDirectory() ? { kind: 'dir', path: at, mode: st.mode & 0o777 } : { kind: 'link', path: at, target: readlinkSync(p) });
        this.state.forget(p);
      }
      return undefined;
    };
    const renamedInto = renameDestinations(events);
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
      // A directory renamed into place (mkdir t; cp src t/x; mv t out) holds what the
      // line wrote under the old name: all of it is output. A directory the line
      // made with mkdir holds its own writes, already listed, and perhaps files
      // other jobs of a parallel make wrote there, which are not this line's.
      const why = keep(p, st) ?? (st.isDirectory() && renamedInto.has(p) ? keepTree(p, keep) : undefined);
      if (why?.startsWith('writes-outside-tree')) {
        this.learnUncacheable(action, why);
        return { outcome: 'uncacheable', reason: why, persist: none };
      }
      if (why) return { outcome: 'not-stored', reason: why, persist: none };
    }
    // Directories first so that restoring creates them before the files inside; links of other outputs after those.
    outputs.sort(restoreOrder);
    // A file outside the tree that the line removed, and had not made itself
    // (a temporary in /tmp is made and removed by the line), is a change a hit
    // could not repeat.
    const ownTemporaries = new Set(acc.gone);
    const deleted: string[] = [];
    for (const p of acc.deleted) {
      const at = insideAny(p, real);
      if (at === undefined && !ownTemporaries.has(p)) {
        const reason = `writes-outside-tree: ${p}`;
        this.learnUncacheable(action, reason);
        return { outcome: 'uncacheable', reason, persist: none };
      }
      if (at !== undefined && !kept.has(at)) deleted.push(at);
    }

    // Keyed without its wrapper, the line must not leave the wrapper's name in
    // what a hit restores to a build without it (`echo $CC > file`).
    for (const w of keyedWithout) {
      const word = Buffer.from(`${w} `);
      if ([...blobs.values(), done.stdout, done.stderr].some((data) => data.includes(word))) return { outcome: 'not-stored', reason: 'wrapper-in-output', persist: none };
    }

    // MAKEFLAGS keys kbx's shim by its name, not its install path
    // (normalizeMakeflags): a line that wrote that path (`echo $(MAKEFLAGS)`)
    // must not restore it on a machine where kbx lives elsewhere.
    const shim = Buffer.from(shimPath);
    if ([...blobs.values(), done.stdout, done.stderr].some((data) => data.includes(shim))) return { outcome: 'not-stored', reason: 'shim-path-in-output', persist: none };

    const stdoutDigest = done.stdout.length ? sha256(done.stdout) : '';
    const stderrDigest = done.stderr.length ? sha256(done.stderr) : '';
    if (stdoutDigest) blobs.set(stdoutDigest, done.stdout);
    if (stderrDigest) blobs.set(stderrDigest, done.stderr);

    // Paths under a build root are stored by its role (root-names.ts), so another
    // checkout finds them. What the line printed or wrote may hold a root itself
    // (debug info, __FILE__, a warning): the set then holds only under that root.
    const names = action.names;
    const stored: PathEntry[] = entries.map((e) => (e.k === 'date' || e.k === 'who' || e.k === 'env' ? e : { k: e.k, p: names.toStored(e.p), v: e.v }));
    const embedded = new Set(outputs.flatMap((o) => (o.kind === 'link' ? names.embeddedIn(o.target) : [])));
    for (const data of blobs.values()) for (const r of names.embeddedIn(data)) embedded.add(r);
    for (const e of entries) if (e.k === 'c' && HEX64.test(e.v)) for (const r of this.rootsInInput(e.p, e.v, names)) embedded.add(r);
    for (const r of [...embedded].sort((a, b) => a.index - b.index)) stored.push({ k: 'root', p: r.token, v: names.rootValue(r.token)! });

    const entry: Entry = {
      outputs: outputs.map((o) => (o.kind === 'file' && o.linkOf !== undefined ? { ...o, path: names.toStored(o.path), linkOf: names.toStored(o.linkOf) } : { ...o, path: names.toStored(o.path) })),
      deleted: deleted.map((p) => names.toStored(p)),
      stdout: stdoutDigest,
      stderr: stderrDigest,
      exit: Number(done.status),
      ...(failed && { keyedFailure: true as const }),
      durationUs: done.elapsedUs,
      createdMs: Date.now(),
      buildId: action.buildId,
    };
    const strong = strongFingerprint(action.weak, stored);

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
      rec.sets = [{ strong, entries: stored }, ...rec.sets.filter((s) => s.strong !== strong)].slice(0, this.cfg.pathSetsPerCommand);
      this.pathSets.put(action.weak, rec);
      this.remote?.upload({ weak: action.weak, strong, entry, entries: stored, command: action.req.command, cwd: action.req.cwd, buildId: action.buildId });
    })();
    return { outcome: 'stored', persist, strong };
  }
}

/**
 * A run that exited non-zero may be stored when nothing but its keyed inputs
 * can have made it fail (PROTOCOL.md section 6, "Stored failures"): it exited
 * 1..125 (126 and 127 are exec failures, 128 and up a shell's report of a
 * child killed by a signal), it touched no path no key holds (an ignored
 * prefix, /proc/self), it changed no file at all, not even a temporary (a
 * full disk, a quota, a read-only file system fail writes), and the tracer
 * saw no failure a key cannot hold (`f`: a call failing with EACCES, EMFILE,
 * EIO..., a failed fork, a child killed by a signal: the OOM killer, a
 * timeout). Those failures cost a run on every build otherwise: kbuild's
 * `$(shell cat include/config/kernel.release)` in the source directory.
 */
export function keyedFailure(status: number, events: readonly TraceEvent[], opts: ClassifyOptions): boolean {
  return keyableStatus(status) && unkeyedFailure(events, opts) === undefined;
}

const keyableStatus = (status: number): boolean => status >= 1 && status <= 125;

/** A stored failure this kbx stored by the rule above (an older kbx stored failures without it). */
function replayableFailure(entry: Entry): boolean {
  return entry.keyedFailure === true && keyableStatus(entry.exit) && entry.outputs.length === 0 && entry.deleted.length === 0;
}

/** The kbuild .cmd files a hit writes with the command the current line saves (kernel/cmd-file.ts). */
function cmdFiles(command: string) {
  let saved: Map<string, string> | undefined;
  return {
    applies: (p: string) => /\/\.[^/]+\.cmd$/.test(p),
    apply: (p: string, data: Buffer) => restoredCmdFile(p, data, (saved ??= savedCommands(simpleCommands(command))), stripText),
  };
}

/** The listing of dir before the line, from the listing now and the entries the line created or removed. */
function listingBefore(dir: string, own: Map<string, boolean>): string {
  const names = new Set(readdirSync(dir));
  for (const [name, existed] of own) {
    if (existed) names.add(name);
    else names.delete(name);
  }
  return listingDigest(names);
}

/** Keeps everything under dir, symlinks not followed; returns the first entry keep refused. */
function keepTree(dir: string, keep: (p: string, st: Stats) => string | undefined): string | undefined {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    const why = keep(p, st) ?? (st.isDirectory() ? keepTree(p, keep) : undefined);
    if (why) return why;
  }
  return undefined;
}

/** The store, with blobs already in memory (verified against their digest) read from there. */
function withBlobs(store: Store, blobs: ReadonlyMap<string, Buffer>): Store {
  return {
    getPathSets: (weak) => store.getPathSets(weak),
    putPathSets: (weak, rec) => store.putPathSets(weak, rec),
    getEntry: (strong) => store.getEntry(strong),
    putEntry: (strong, entry) => store.putEntry(strong, entry),
    getBlob: (digest) => blobs.get(digest) ?? store.getBlob(digest),
    putBlob: (digest, data) => store.putBlob(digest, data),
  };
}

function sameOutputs(a: Entry, b: Entry): boolean {
  const key = (e: Entry) =>
    JSON.stringify([e.exit, e.stdout, e.stderr, e.deleted, e.outputs.map((o) => (o.kind === 'file' ? [o.path, o.digest, o.mode] : o))]);
  return key(a) === key(b);
}
