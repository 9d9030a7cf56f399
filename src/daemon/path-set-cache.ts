// Path sets kept in memory between lookups. A kernel compile's path set is
// tens of kilobytes of JSON (hundreds of headers and absent include probes),
// and reading and parsing it was most of the daemon's time on a warm
// rebuild. The same paths and digests recur across thousands of sets, so
// sets are held as arrays of ids into one string table: the whole tinyconfig
// kernel fits in a few megabytes. The store stays the source of truth; a set
// written by another daemon sharing the directory is seen after this cache
// forgets the command. Paths are kept as stored (`@make/x.c`: root-names.ts)
// and put under the lookup's roots as they are checked.
import { currentValue, type Mismatch, type PathEntry } from '../fingerprint/key.js';
import { pseudoValue } from '../fingerprint/time-inputs.js';
import type { FileState } from '../fingerprint/file-state.js';
import type { LineProjections } from '../fingerprint/projection.js';
import type { RootNames } from '../fingerprint/root-names.js';
import type { PathSets, Store } from '../store/store.js';

export interface CompactSet {
  strong: string;
  /** 1 for a content entry, 0 for an existence entry. */
  content: Uint8Array;
  paths: Uint32Array;
  values: Uint32Array;
  /** Entries that are not files (the date, mtimes: time-inputs.ts); only a few sets have any. */
  pseudo?: PathEntry[];
}

export interface CompactRecord {
  /** PathSetCache.epoch when the record was last looked up or written. */
  usedEpoch?: number;
  command: string;
  cwd: string;
  uncacheable?: string;
  rules?: number;
  sets: CompactSet[];
}

const MAX_RECORDS = 100_000;
// Below this many strings the table is never compacted (a few megabytes).
const MIN_COMPACT = 20_000;

export class PathSetCache {
  private records = new Map<string, CompactRecord>();
  private strings: string[] = [];
  private ids = new Map<string, number>();
  /** Strings in use after the last compaction: compact again when the table has doubled. */
  private liveStrings = 0;
  /** Advanced at every build start; records remember the epoch they were last used in. */
  epoch = 0;
  /** By roots (RootNames.key), by string id: the path a stored path names under them (null: none). */
  private absolute = new Map<string, Array<string | null | undefined>>();

  constructor(private readonly store: Store) {}

  private intern(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.strings.length;
      this.strings.push(s);
      this.ids.set(s, id);
    }
    return id;
  }

  private compact(rec: PathSets): CompactRecord {
    // Digests of files that changed pile up in a long-lived daemon: start over now and then.
    if (this.strings.length > 4_000_000) this.forgetAll();
    return {
      command: rec.command,
      cwd: rec.cwd,
      uncacheable: rec.uncacheable,
      rules: rec.rules,
      sets: rec.sets.map((s) => this.compactSet(s.strong, s.entries)),
    };
  }

  private compactSet(strong: string, entries: readonly PathEntry[]): CompactSet {
    const files = entries.filter((e) => e.k === 'c' || e.k === 'e');
    const set: CompactSet = {
      strong,
      content: Uint8Array.from(files, (e) => (e.k === 'c' ? 1 : 0)),
      paths: Uint32Array.from(files, (e) => this.intern(e.p)),
      values: Uint32Array.from(files, (e) => this.intern(e.v)),
    };
    // Any other kind, known or not (the store is untrusted), is checked as a pseudo-input.
    if (files.length < entries.length) set.pseudo = entries.filter((e) => e.k !== 'c' && e.k !== 'e').map(({ k, p, v }) => ({ k, p, v }));
    return set;
  }

  /** The clock pseudo-inputs are valued with (a test moves it to another day). */
  now: () => number = Date.now;

  /** `wrapperEnv`: the line's (LineRequest.wrapperEnv); an `env` entry never holds without it. */
  private pseudoMismatches(set: CompactSet, names: RootNames, firstOnly: boolean, wrapperEnv?: string): Mismatch[] {
    const out: Mismatch[] = [];
    if (!set.pseudo) return out;
    const nowMs = this.now();
    for (const stored of set.pseudo) {
      let entry = stored;
      let now: string | undefined;
      if (stored.k === 'root') now = names.rootValue(stored.p) ?? 'no-such-root';
      else if (stored.k === 'date' || stored.k === 'who') now = pseudoValue(stored.k, stored.p, nowMs);
      else if (stored.k === 'env') now = stored.p === 'wrappers' ? wrapperEnv : undefined;
      else {
        const p = names.toAbsolute(stored.p);
        if (p !== undefined) entry = { ...stored, p };
        now = p === undefined ? 'no-such-root' : pseudoValue(stored.k, p, nowMs);
      }
      if (now !== undefined && now === entry.v) continue;
      out.push({ entry, now: now ?? 'unknown-kind' });
      if (firstOnly) break;
    }
    return out;
  }

  private remember(weak: string, rec: CompactRecord): void {
    this.records.delete(weak);
    if (this.records.size >= MAX_RECORDS) {
      // Least recently used first: Map keeps insertion order, and a hit re-inserts.
      this.records.delete(this.records.keys().next().value!);
    }
    rec.usedEpoch = this.epoch;
    this.records.set(weak, rec);
  }

  /** Records kept, and strings in the table (kbx daemon status). */
  get counts(): { records: number; strings: number } {
    return { records: this.records.size, strings: this.strings.length };
  }

  /**
   * Forgets the records not used since `epoch` (the store keeps them), then,
   * when the string table has doubled since it was last compacted, rebuilds it
   * from the records left: the paths and digests of trees no longer built.
   */
  forgetUnusedSince(epoch: number): void {
    for (const [weak, rec] of this.records) if ((rec.usedEpoch ?? 0) < epoch) this.records.delete(weak);
    if (this.strings.length < Math.max(MIN_COMPACT, 2 * this.liveStrings)) return;
    const old = this.strings;
    this.strings = [];
    this.ids.clear();
    this.absolute.clear(); // indexed by the string ids that change here
    const remap = (ids: Uint32Array) => {
      for (let i = 0; i < ids.length; i++) ids[i] = this.intern(old[ids[i]!]!);
    };
    for (const rec of this.records.values())
      for (const set of rec.sets) {
        remap(set.paths);
        remap(set.values);
      }
    this.liveStrings = this.strings.length;
  }

  get(weak: string): CompactRecord | undefined {
    let rec = this.records.get(weak);
    if (!rec) {
      const stored = this.store.getPathSets(weak);
      if (!stored) return undefined;
      rec = this.compact(stored);
    }
    this.remember(weak, rec);
    return rec;
  }

  /** Writes a record to the store as the bytes given (encodePathSets's, checked by the caller) and keeps it. */
  putEncoded(weak: string, rec: PathSets, data: Buffer): void {
    if (this.store.putPathSetsEncoded) this.store.putPathSetsEncoded(weak, data);
    else this.store.putPathSets(weak, rec);
    this.remember(weak, this.compact(rec));
  }

  /** Writes a record to the store and keeps it. */
  put(weak: string, rec: PathSets): void {
    this.store.putPathSets(weak, rec);
    this.remember(weak, this.compact(rec));
  }

  /** Entry i of a set under these roots: its path made absolute, and what it holds now. */
  private check(state: FileState, set: CompactSet, i: number, names: RootNames, parts?: LineProjections): Mismatch {
    const kind = set.content[i] ? 'c' : 'e';
    const p = this.pathUnder(set.paths[i]!, names);
    const v = this.strings[set.values[i]!]!;
    // A role these roots lack (or a hostile name): never holds.
    if (p === null) return { entry: { k: kind, p: this.strings[set.paths[i]!]!, v }, now: 'no-such-root' };
    return { entry: { k: kind, p, v }, now: currentValue(state, kind, p, v, parts) };
  }

  /** The path string `id` names under these roots. Hot: every input of every lookup, so an array index, not a map. */
  private pathUnder(id: number, names: RootNames): string | null {
    let table = this.absolute.get(names.key);
    if (!table) {
      if (this.absolute.size >= 16) this.absolute.clear();
      this.absolute.set(names.key, (table = []));
    }
    // Grown in order: an array written far past its end becomes a dictionary.
    while (table.length <= id) table.push(undefined);
    let p = table[id];
    if (p === undefined) p = table[id] = names.toAbsolute(this.strings[id]!) ?? null;
    return p;
  }

  /**
   * The first entry of a set that no longer holds under these roots (paths in
   * it absolute). `parts`: the inputs the line's command lets a projection
   * value (projection.ts).
   */
  firstMismatch(state: FileState, set: CompactSet, names: RootNames, parts?: LineProjections, wrapperEnv?: string): Mismatch | undefined {
    // Pseudo-inputs first: the date is a string compare, and the likeliest to differ.
    if (set.pseudo) {
      const [diff] = this.pseudoMismatches(set, names, true, wrapperEnv);
      if (diff) return diff;
    }
    for (let i = 0; i < set.paths.length; i++) {
      const m = this.check(state, set, i, names, parts);
      if (m.now !== m.entry.v) return m;
    }
    return undefined;
  }

  /** A set not kept here (one from a shared store) in the form a hit names (the build record reads it). */
  compactOf(strong: string, entries: readonly PathEntry[]): CompactSet {
    return this.compactSet(strong, entries);
  }

  /** Whether every entry of a set not kept here (one from a shared store) holds now. */
  holds(state: FileState, strong: string, entries: readonly PathEntry[], names: RootNames, parts?: LineProjections, wrapperEnv?: string): boolean {
    return this.firstMismatch(state, this.compactSet(strong, entries), names, parts, wrapperEnv) === undefined;
  }

  /** Every entry of a set that no longer holds (for explaining a miss; slower than firstMismatch). */
  mismatches(state: FileState, set: CompactSet, names: RootNames, parts?: LineProjections, wrapperEnv?: string): Mismatch[] {
    const out = this.pseudoMismatches(set, names, false, wrapperEnv);
    for (let i = 0; i < set.paths.length; i++) {
      const m = this.check(state, set, i, names, parts);
      if (m.now !== m.entry.v) out.push(m);
    }
    return out;
  }

  /**
   * Whether every entry of a set holds when its file entries are valued by
   * `value` instead of the tree (replay: the tree as earlier lines will leave
   * it); paths are given absolute under these roots.
   */
  holdsAs(set: CompactSet, names: RootNames, value: (kind: 'c' | 'e', path: string, stored: string) => string, wrapperEnv?: string): boolean {
    if (set.pseudo && this.pseudoMismatches(set, names, true, wrapperEnv).length) return false;
    for (let i = 0; i < set.paths.length; i++) {
      const v = this.strings[set.values[i]!]!;
      const p = this.pathUnder(set.paths[i]!, names);
      if (p === null) return false; // a role these roots lack: never holds
      if (value(set.content[i] ? 'c' : 'e', p, v) !== v) return false;
    }
    return true;
  }

  /** The paths whose content a set depends on (the files the line read, programs included), absolute under these roots. */
  contentPaths(set: CompactSet, names: RootNames): string[] {
    const out: string[] = [];
    for (let i = 0; i < set.paths.length; i++) {
      if (!set.content[i]) continue;
      out.push(this.pathUnder(set.paths[i]!, names) ?? this.strings[set.paths[i]!]!);
    }
    return out;
  }

  forgetAll(): void {
    this.records.clear();
    this.strings = [];
    this.ids.clear();
    this.liveStrings = 0;
    this.absolute.clear();
  }
}
