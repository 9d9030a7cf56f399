// Shared stores layered under the local one (DESIGN.md §6). A local miss asks
// each remote in order for the command's bundle (wire.ts: its path sets, with
// the entries and the newest run's small blobs inline, so a hit is one
// request: on loopback each request costs about 0.5 ms of CPU), then for the
// entry and blobs the bundle lacks. What a remote gives is untrusted: blobs
// are verified against their digest before they are written anywhere,
// records pass the local store's decoder, and a set must hash to the strong
// fingerprint it names. The lookup restores a remote hit from the verified
// bytes it fetched, with every check a local entry gets (restore.ts), and its
// copy in the local store is written after the answer (local-fill.ts). A new entry is
// uploaded in the background: blobs, then the entry, then the path set, so a
// reader never finds an entry whose blobs were never written.
//
// A build reads ahead (read-ahead.ts) from the list of commands the last
// build of the same tree looked up, and leaves its own list at its end.
//
// Faults never fail or stall a build: the first timeout or error takes a
// backend out until the next build starts (every line, not one), said once in
// the log and in kbx make's summary, and counted under `remote <name> …`.
// A sharded backend fails shard by shard: a dead shard's keys miss (counted
// under `remote <shard> out-miss`), the live shards' keys still hit, and a
// key stays on its shard (moved, it would be written where readers never
// look).
import { sha256 } from '../../util/hash.js';
import { strongFingerprint, type PathEntry } from '../../fingerprint/key.js';
import type { LocalStore } from '../local/local-store.js';
import { entryBlobs, type Entry, type PathSet, type PathSets } from '../store.js';
import { RemoteError, type RemoteBackend } from './backend.js';
import { LocalFill } from './local-fill.js';
import { ReadAhead, type DecodedBundle } from './read-ahead.js';
import {
  INLINE_BLOB_BYTES, INLINE_TOTAL_BYTES, MAX_BUILD_LINES, buildLinesKey, decodeBuildLines, decodeBundle, decodeRemoteEntry, decodeRemotePathSets,
  encodeBuildLines, encodeBundle, encodeEntry, encodePathSets, entryKey, pathSetsKey, type Bundle,
} from './wire.js';

export interface RemoteEvents {
  /** Adds to a counter, globally and for the build when it is still running. */
  count(buildId: string, name: string, n?: number): void;
  log(msg: string): void;
}

/** What a lookup that missed locally lets the layer ask and do. */
export interface FillRequest {
  weak: string;
  buildId: string;
  /** Whether every input of a set (as stored: paths named by their root) holds now. */
  holds(strong: string, entries: readonly PathEntry[]): boolean;
  /** Why the entry must not be restored here (outside the build roots), or undefined. */
  refusal(entry: Entry): string | undefined;
  /**
   * Adds the set to the local path sets of weak; called after the answer,
   * once the entry and its blobs are in the local store. `encoded`: the
   * record's bytes as the remote sent them, when every set in it was found to
   * hash to its fingerprint (the local store may keep them as they are).
   */
  install(record: PathSets, set: PathSet, encoded?: Buffer): void;
}

/**
 * A run a remote holds for the line, with the blobs it needs that the local
 * store lacks (verified): the lookup restores it from them. Its local copy
 * is queued (local-fill.ts).
 */
export interface Filled {
  strong: string;
  set: PathSet;
  entry: Entry;
  blobs: Map<string, Buffer>;
}

export interface UploadJob {
  weak: string;
  strong: string;
  entry: Entry;
  entries: PathEntry[];
  command: string;
  cwd: string;
  buildId: string;
}

/** One server of a remote: the whole remote, or one of its shards. A fault takes out the part that failed, alone. */
interface Part {
  name: string;
  /** Why it is out for the rest of the build. */
  down?: string;
  /** Why it takes no writes for the rest of the build (403, full), while reads go on. */
  writesOff?: string;
}

interface Remote {
  backend: RemoteBackend;
  name: string;
  /** One part, or one per shard in the backend's order. */
  parts: Part[];
}

export interface RemoteStatus {
  name: string;
  /** For a shard: the remote it is one shard of. */
  shardOf?: string;
  down?: string;
  writesOff?: string;
}

// Uploads wait in memory for their turn; beyond this much they are dropped
// (counted), so a slow server never makes the daemon grow without bound.
const MAX_QUEUED_BYTES = 64 << 20;
const UPLOADERS = 4;
const BLOB_FETCHES = 4;
// A blob this large is uploaded only after a HEAD says the server lacks it.
const HEAD_FIRST_BYTES = 64 << 10;
// Sets of one command looked at per remote lookup (the record may hold more).
const MAX_REMOTE_SETS = 32;

// Builds whose lookups are followed at once (a daemon serves a few builds side by side).
const MAX_BUILDS = 16;

const DOWN = Symbol('down');

type BlobFetch = Buffer | 'missing' | { corrupt: number } | typeof DOWN;

/** One build's lookups, for the list it leaves, and what it reads ahead. */
interface BuildLines {
  first: string;
  seen: Set<string>;
  order: string[];
  /** The list the last build of the tree left, when one was found. */
  previous?: string[];
  ahead?: { remote: Remote; reader: ReadAhead };
  stored: number;
}

function decodes(entry: Buffer): boolean {
  try {
    decodeRemoteEntry(entry);
    return true;
  } catch {
    return false;
  }
}

/** Every part out: nothing more is asked of the remote in this build. */
function out(r: Remote): boolean {
  return r.parts.every((p) => p.down);
}

/** A remote that takes uploads: not read-only, and a part of it still takes writes. */
function writable(r: Remote): boolean {
  return !r.backend.spec.readOnly && r.parts.some((p) => !p.down && !p.writesOff);
}

export class RemoteStore {
  private readonly remotes: Remote[];
  private readonly fills = new Map<string, Promise<Filled | undefined>>();
  private readonly blobFetches = new Map<string, Promise<BlobFetch>>();
  private readonly builds = new Map<string, BuildLines>();
  private readonly side = new Set<Promise<unknown>>();
  private queue: Array<{ job: UploadJob; bytes: number }> = [];
  private queuedBytes = 0;
  private running = 0;
  private idle: Array<() => void> = [];
  /** Local copies of remote hits, written after the answers. */
  readonly fill: LocalFill;
  /**
   * The decoded record of a command a remote hit came from, until its local
   * copy is in (or given up): the same command looked up again meanwhile
   * (`mkdir -p out` before every compile) is checked against it, not fetched again.
   */
  private readonly settling = new Map<string, { remote: Remote; decoded: DecodedBundle }>();

  constructor(
    private readonly local: LocalStore,
    backends: RemoteBackend[],
    private readonly events: RemoteEvents,
    private readonly setsPerCommand: number,
  ) {
    this.fill = new LocalFill(local, events);
    this.remotes = backends.map((backend) => ({
      backend,
      name: backend.spec.display,
      parts: backend.shards ? backend.shards.names.map((name) => ({ name })) : [{ name: backend.spec.display }],
    }));
  }

  /** Whether any remote may still answer in this build. */
  get active(): boolean {
    return this.remotes.some((r) => !out(r));
  }

  /** A new build gives every backend (every shard) another chance. */
  startBuild(): void {
    for (const r of this.remotes) {
      for (const p of r.parts) {
        p.down = undefined;
        p.writesOff = undefined;
      }
    }
  }

  status(): RemoteStatus[] {
    return this.remotes.flatMap((r) =>
      r.parts.map(({ name, down, writesOff }) => ({
        name,
        ...(r.backend.shards ? { shardOf: r.name } : {}),
        ...(down ? { down } : {}),
        ...(writesOff ? { writesOff } : {}),
      })),
    );
  }

  /** The part that holds key: a shard never stands in for another. */
  private partOf(r: Remote, key: string): Part {
    return r.backend.shards ? r.parts[r.backend.shards.of(key)]! : r.parts[0]!;
  }

  private count(r: Remote | Part, buildId: string, what: string, n = 1): void {
    this.events.count(buildId, `remote ${r.name} ${what}`, n);
  }

  /** Counted and said once per part: requests already in flight when it went out fail quietly. */
  private fault(r: Remote, p: Part, buildId: string, err: unknown, writing: boolean): void {
    if (p.down) return;
    const e = err instanceof RemoteError ? err : new RemoteError(`${p.name}: ${(err as Error).message}`, 'error');
    if (writing && (e.kind === 'forbidden' || e.kind === 'full')) {
      if (p.writesOff) return;
      p.writesOff = e.message;
      this.count(p, buildId, 'error');
      this.events.log(`remote ${p.name} takes no writes for the rest of the build: ${e.message}`);
      return;
    }
    p.down = e.message;
    this.count(p, buildId, e.kind === 'timeout' ? 'timeout' : 'error');
    const shard = r.backend.shards ? ` (a shard of ${r.name}: its keys miss, the other shards' keys still hit)` : '';
    this.events.log(`remote ${p.name} is out for the rest of the build${shard}: ${e.message}`);
  }

  /** One request for key; a failure takes out the part that holds it, and a part out answers DOWN at once. */
  private async call<T>(r: Remote, key: string, buildId: string, writing: boolean, op: () => Promise<T>): Promise<T | typeof DOWN> {
    const p = this.partOf(r, key);
    if (p.down || (writing && p.writesOff)) return DOWN;
    try {
      return await op();
    } catch (err) {
      this.fault(r, p, buildId, err, writing);
      return DOWN;
    }
  }

  private async get(r: Remote, buildId: string, kind: 'cas' | 'ac', key: string): Promise<Buffer | undefined | typeof DOWN> {
    const data = await this.call(r, key, buildId, false, () => r.backend.get(kind, key));
    if (data instanceof Buffer) this.count(r, buildId, 'bytes-down', data.length);
    return data;
  }

  // ---- reads ----

  /** Asks the remotes for a line that missed locally: the run one put in the local store, if one holds. */
  lookup(req: FillRequest): Promise<Filled | undefined> {
    let p = this.fills.get(req.weak);
    if (!p) {
      p = this.lookupAll(req).finally(() => this.fills.delete(req.weak));
      this.fills.set(req.weak, p);
    }
    return p;
  }

  private async lookupAll(req: FillRequest): Promise<Filled | undefined> {
    for (const r of this.remotes) {
      if (out(r)) continue;
      let found: Filled | Part | undefined;
      try {
        found = await this.fillFrom(r, req);
      } catch (err) {
        // A local write failed, or a bug: the line runs, the backend is left alone.
        this.events.log(`remote lookup in ${r.name} failed: ${(err as Error).stack}`);
        found = undefined;
      }
      if (found && 'entry' in found) {
        this.count(r, req.buildId, 'hit');
        return found;
      }
      // A key on a shard that is out, while others serve: a miss of its own.
      if (found) {
        if (!out(r)) this.count(found, req.buildId, 'out-miss');
      } else if (!out(r)) this.count(r, req.buildId, 'miss');
    }
    return undefined;
  }

  /** A record, from what the build's read-ahead fetched (and decoded) if it did, else asked now. */
  private async record(r: Remote, buildId: string, key: string): Promise<{ data: Buffer | undefined | typeof DOWN; decoded?: DecodedBundle }> {
    const b = this.builds.get(buildId);
    const early = b?.ahead?.remote === r ? b.ahead.reader.take(key) : undefined;
    if (early) {
      const data = await early.bytes;
      return data === null ? { data: DOWN } : { data, decoded: early.decoded };
    }
    return { data: await this.get(r, buildId, 'ac', key) };
  }

  /** The run found, or the part that was out when a request needed it. */
  private async fillFrom(r: Remote, req: FillRequest): Promise<Filled | Part | undefined> {
    const settled = this.settling.get(req.weak);
    let decoded = settled?.remote === r ? settled.decoded : undefined;
    if (!decoded) {
      const got = await this.record(r, req.buildId, pathSetsKey(req.weak));
      if (got.data === DOWN) return this.partOf(r, pathSetsKey(req.weak));
      if (got.data === undefined) return undefined;
      try {
        const bundle = got.decoded?.bundle ?? decodeBundle(got.data);
        decoded = got.decoded ?? { bundle, rec: decodeRemotePathSets(bundle.pathSets), verified: new Set(), entries: new Map() };
      } catch (err) {
        this.corrupt(r, req.buildId, `path sets of ${req.weak.slice(0, 12)}`, err);
        return undefined;
      }
    }
    const { bundle, rec } = decoded;
    for (const set of rec.sets.slice(0, MAX_REMOTE_SETS)) {
      // A set names its entry by the hash of the inputs it lists: one that does not is forged or damaged.
      if (!decoded.verified.has(set.strong) && strongFingerprint(req.weak, set.entries) !== set.strong) {
        this.corrupt(r, req.buildId, `path set ${set.strong.slice(0, 12)}`, new Error('its inputs do not hash to the fingerprint it names'));
        continue;
      }
      if (!req.holds(set.strong, set.entries)) continue;
      let entry = decoded.entries.get(set.strong);
      if (!entry) {
        const got = bundle.entries.get(set.strong) ?? (await this.record(r, req.buildId, entryKey(set.strong))).data;
        if (got === DOWN) return this.partOf(r, entryKey(set.strong));
        if (got === undefined) {
          this.count(r, req.buildId, 'entry-missing');
          continue;
        }
        try {
          entry = decodeRemoteEntry(got);
        } catch (err) {
          this.corrupt(r, req.buildId, `entry ${set.strong.slice(0, 12)}`, err);
          continue;
        }
      }
      if (entry.exit !== 0) continue;
      const why = req.refusal(entry);
      if (why !== undefined) {
        this.count(r, req.buildId, 'hostile-entry');
        this.events.log(`refused an entry from ${r.name}: ${why}`);
        continue;
      }
      const blobs = await this.fetchBlobs(r, req.buildId, entry, bundle.blobs);
      if (blobs === false) continue;
      if (!(blobs instanceof Map)) return blobs;
      decoded.verified.add(set.strong);
      if (bundle.entries.has(set.strong)) decoded.entries.set(set.strong, entry);
      const mine = { remote: r, decoded };
      this.settling.set(req.weak, mine);
      void this.fill
        .entry(req.buildId, set.strong, entry, blobs, () =>
          req.install(rec, set, rec.sets.every((s) => decoded.verified.has(s.strong)) ? bundle.pathSets : undefined),
        )
        .finally(() => this.settling.get(req.weak) === mine && this.settling.delete(req.weak));
      return { strong: set.strong, set, entry, blobs };
    }
    return undefined;
  }

  private corrupt(r: Remote, buildId: string, what: string, err: unknown): void {
    this.count(r, buildId, 'corrupt');
    this.events.log(`refused ${what} from ${r.name}: ${(err as Error).message}`);
  }

  /**
   * The entry's blobs the local store lacks, verified (from the bundle, the
   * blobs on their way to the local store, or fetched now); false if one is
   * missing or does not verify, the part that was out if one was.
   */
  private async fetchBlobs(r: Remote, buildId: string, entry: Entry, inline: Map<string, Buffer>): Promise<Map<string, Buffer> | false | Part> {
    const got = new Map<string, Buffer>();
    const digests: string[] = [];
    for (const digest of entryBlobs(entry).keys()) {
      const waiting = this.fill.pendingBlob(digest);
      if (waiting) {
        got.set(digest, waiting);
        continue;
      }
      if (this.local.hasBlob(digest)) continue;
      const data = inline.get(digest);
      if (!data) {
        digests.push(digest);
        continue;
      }
      if (sha256(data) !== digest) {
        this.corrupt(r, buildId, `blob ${digest.slice(0, 12)}`, new Error(`its ${data.length} bytes inline do not hash to its name`));
        return false;
      }
      got.set(digest, data);
    }
    let result: true | false | Part = true;
    let next = 0;
    const worker = async () => {
      while (result === true && next < digests.length) {
        const digest = digests[next++]!;
        const data = await this.fetchBlob(r, buildId, digest);
        if (data === DOWN) result = this.partOf(r, digest);
        else if (data === 'missing') {
          this.count(r, buildId, 'blob-missing');
          result = false;
        } else if (Buffer.isBuffer(data)) got.set(digest, data);
        else {
          this.corrupt(r, buildId, `blob ${digest.slice(0, 12)}`, new Error(`its ${data.corrupt} bytes do not hash to its name`));
          result = false;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(BLOB_FETCHES, digests.length) }, worker));
    const done: true | false | Part = result;
    return done === true ? got : done;
  }

  /** One blob, once it hashes to its name; a lookup and the read-ahead asking at once share the request. */
  private fetchBlob(r: Remote, buildId: string, digest: string): Promise<BlobFetch> {
    let p = this.blobFetches.get(digest);
    if (!p) {
      p = (async (): Promise<BlobFetch> => {
        const data = await this.get(r, buildId, 'cas', digest);
        if (data === DOWN) return DOWN;
        if (data === undefined) return 'missing';
        if (sha256(data) !== digest) return { corrupt: data.length };
        return data;
      })().finally(() => this.blobFetches.delete(digest));
      this.blobFetches.set(digest, p);
    }
    return p;
  }

  // ---- the list of a build's lookups, and reading ahead from the last one ----

  /**
   * Every lookup of a build (local hits too) that did not pass through. The
   * first one names the list; it reads the last list left under that name
   * and starts reading ahead from it.
   */
  noteLookup(buildId: string, weak: string): void {
    let b = this.builds.get(buildId);
    if (!b) {
      if (this.builds.size >= MAX_BUILDS) this.endBuild(this.builds.keys().next().value!, false);
      b = { first: weak, seen: new Set(), order: [], stored: 0 };
      this.builds.set(buildId, b);
      this.track(this.startReadAhead(buildId, b));
    }
    if (b.order.length < MAX_BUILD_LINES && !b.seen.has(weak)) {
      b.seen.add(weak);
      b.order.push(weak);
    }
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err) => this.events.log(`remote read-ahead or list failed: ${(err as Error).stack}`)).finally(() => this.side.delete(q));
    this.side.add(q);
  }

  private async startReadAhead(buildId: string, b: BuildLines): Promise<void> {
    for (const r of this.remotes) {
      if (out(r)) continue;
      const data = await this.get(r, buildId, 'ac', buildLinesKey(b.first));
      if (data === DOWN || data === undefined) continue;
      try {
        b.previous = decodeBuildLines(data).lines;
      } catch (err) {
        this.corrupt(r, buildId, `list of lines ${b.first.slice(0, 12)}`, err);
        continue;
      }
      if (this.builds.get(buildId) !== b) return; // the build ended meanwhile
      const reader = new ReadAhead(b.previous, {
        get: async (key) => {
          const got = await this.get(r, buildId, 'ac', key);
          return got === DOWN ? null : got;
        },
        // Into the local store before the next (the read-ahead goes no faster than the disk takes).
        blob: async (digest) => {
          await this.fill.roomForMore();
          const data = await this.fetchBlob(r, buildId, digest);
          if (data === DOWN) return null;
          if (Buffer.isBuffer(data)) await this.fill.blob(buildId, digest, data);
          return true;
        },
        knownLocally: (weak) => this.local.hasPathSets(weak),
        out: () => out(r),
        hasBlob: (digest) => this.fill.has(digest),
      });
      b.ahead = { remote: r, reader };
      reader.start();
      return;
    }
  }

  /**
   * The build ended: the read-ahead stops, and the writable remotes get its
   * list of lookups followed by the rest of the last list (an incremental
   * build looks up few lines; the next fresh runner needs them all). A build
   * that stored nothing and found a list leaves it as it is.
   */
  endBuild(buildId: string, upload = true): void {
    const b = this.builds.get(buildId);
    if (!b) return;
    this.builds.delete(buildId);
    if (b.ahead) this.count(b.ahead.remote, buildId, 'read-ahead-used', b.ahead.reader.used);
    b.ahead?.reader.stop();
    if (!upload || (b.stored === 0 && b.previous) || !b.order.length) return;
    const lines = [...b.order, ...(b.previous ?? []).filter((w) => !b.seen.has(w))].slice(0, MAX_BUILD_LINES);
    const data = encodeBuildLines({ lines });
    for (const r of this.remotes) {
      if (!writable(r)) continue;
      this.track(
        this.call(r, buildLinesKey(b.first), buildId, true, () => r.backend.put('ac', buildLinesKey(b.first), data)).then((done) => {
          if (done !== DOWN) this.count(r, buildId, 'bytes-up', data.length);
        }),
      );
    }
  }

  // ---- writes ----

  /** Queues a stored run for upload to every writable remote; never waits. */
  upload(job: UploadJob): void {
    const targets = this.remotes.filter(writable);
    if (!targets.length) return;
    let bytes = 1024;
    for (const e of job.entries) bytes += e.p.length + e.v.length + 16;
    if (this.queuedBytes + bytes > MAX_QUEUED_BYTES) {
      for (const r of targets) this.count(r, job.buildId, 'upload-dropped');
      return;
    }
    const b = this.builds.get(job.buildId);
    if (b) b.stored++;
    this.queue.push({ job, bytes });
    this.queuedBytes += bytes;
    this.pump();
  }

  private pump(): void {
    while (this.running < UPLOADERS && this.queue.length) {
      const { job, bytes } = this.queue.shift()!;
      this.running++;
      void this.uploadAll(job).finally(() => {
        this.running--;
        this.queuedBytes -= bytes;
        this.pump();
        if (this.running === 0 && !this.queue.length) for (const f of this.idle.splice(0)) f();
      });
    }
  }

  /** Resolves when every queued upload (and list of lines) has been sent or given up. */
  async flush(): Promise<void> {
    if (this.running !== 0 || this.queue.length) await new Promise<void>((resolve) => this.idle.push(resolve));
    await Promise.all([...this.side]);
    await this.fill.flush();
  }

  private async uploadAll(job: UploadJob): Promise<void> {
    for (const r of this.remotes) {
      if (!writable(r)) continue;
      try {
        await this.uploadTo(r, job);
      } catch (err) {
        this.events.log(`upload to ${r.name} failed: ${(err as Error).stack}`);
      }
    }
  }

  private async uploadTo(r: Remote, job: UploadJob): Promise<void> {
    const { entry, buildId } = job;
    const digests = entryBlobs(entry).keys();
    // Blobs first: a reader that finds the entry finds its blobs. A blob, the
    // entry or the path set on a shard that is out ends the job there.
    const inline = new Map<string, Buffer>();
    let inlineBytes = 0;
    for (const digest of digests) {
      const data = this.local.getBlob(digest);
      if (!data) {
        this.count(r, buildId, 'upload-skipped'); // evicted (or removed as corrupt) since: the entry is not uploaded
        return;
      }
      if (data.length <= INLINE_BLOB_BYTES && inlineBytes + data.length <= INLINE_TOTAL_BYTES) {
        inline.set(digest, data);
        inlineBytes += data.length;
      }
      if (data.length > HEAD_FIRST_BYTES && r.backend.has) {
        const has = await this.call(r, digest, buildId, false, () => r.backend.has!('cas', digest));
        if (has === DOWN) return;
        if (has) continue;
      }
      if ((await this.call(r, digest, buildId, true, () => r.backend.put('cas', digest, data))) === DOWN) return;
      this.count(r, buildId, 'bytes-up', data.length);
    }
    const entryData = encodeEntry(entry);
    if ((await this.call(r, entryKey(job.strong), buildId, true, () => r.backend.put('ac', entryKey(job.strong), entryData))) === DOWN) return;
    this.count(r, buildId, 'bytes-up', entryData.length);
    // The path set last, merged with what the server holds: of two writers at
    // once one set may be lost (a miss later), never a record made unreadable.
    const key = pathSetsKey(job.weak);
    const old = await this.get(r, buildId, 'ac', key);
    if (old === DOWN) return;
    let sets: PathSet[] = [];
    let oldEntries = new Map<string, Buffer>();
    if (old) {
      try {
        const b = decodeBundle(old);
        const rec = decodeRemotePathSets(b.pathSets);
        if (!rec.uncacheable) sets = rec.sets;
        oldEntries = b.entries;
      } catch {
        /* a damaged record is replaced */
      }
    }
    const rec: PathSets = {
      command: job.command,
      cwd: job.cwd,
      sets: [{ strong: job.strong, entries: job.entries }, ...sets.filter((s) => s.strong !== job.strong)].slice(0, this.setsPerCommand),
    };
    const entries = new Map([[job.strong, entryData]]);
    for (const s of rec.sets) {
      // Carried over only when it decodes: a damaged one is fetched (and judged) under its own key.
      const e = oldEntries.get(s.strong);
      if (e && !entries.has(s.strong) && decodes(e)) entries.set(s.strong, e);
    }
    const recData = encodeBundle({ pathSets: encodePathSets(rec), entries, blobs: inline });
    if ((await this.call(r, key, buildId, true, () => r.backend.put('ac', key, recData))) === DOWN) return;
    this.count(r, buildId, 'bytes-up', recData.length);
    this.count(r, buildId, 'uploaded');
  }

  async close(): Promise<void> {
    await Promise.all(this.remotes.map((r) => r.backend.close().catch(() => {})));
  }
}
