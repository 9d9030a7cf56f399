// Reading a shared store ahead of the build (issue 11: a fresh CI runner
// must build nearly as fast as a warm local cache). A lookup that misses
// locally costs a round trip for the command's bundle (wire.ts), and two
// more in a row when its entry or a blob is not inline (a large output); a
// kernel build makes a few thousand. But the machine that filled the store
// built the same tree: at its end it uploads the list of commands it looked
// up (wire.ts, buildLinesKey), named by the first one. A build that starts
// with the same lookup reads that list and, in the background, fetches each
// command's path sets, the entries of its newest sets and the blobs they
// name, a bounded distance ahead of the build, so that its lookups find the
// records in memory and the blobs in the local store.
//
// Nothing here decides what is restored: a record fetched ahead is handed to
// the lookup as the bytes of a GET would be, and passes the same checks
// there (decoder, strong fingerprint, inputs that hold now, restore's
// checks); a blob enters the local store only once it hashes to its name,
// and is used only by an entry that names it. What is fetched for a command
// the build never looks up is wasted, never wrong.
import { strongFingerprint } from '../../fingerprint/key.js';
import { entryBlobs, type Entry, type PathSets } from '../store.js';
import { decodeBundle, decodeRemoteEntry, decodeRemotePathSets, entryKey, pathSetsKey, type Bundle } from './wire.js';

/**
 * A command's bundle as the read-ahead decoded it, handed to the lookup with
 * its bytes so that it is decoded (and its sets hashed) once: the sets whose
 * inputs were found to hash to the fingerprint they name, and the entries
 * inline in the bundle, decoded.
 */
export interface DecodedBundle {
  bundle: Bundle;
  rec: PathSets;
  verified: Set<string>;
  entries: Map<string, Entry>;
}

/** A record fetched ahead: its bytes (null: the store was out), and for a bundle, once decoded, the result. */
export interface Held {
  bytes: Promise<Buffer | undefined | null>;
  size: number;
  decoded?: DecodedBundle;
}

/** What the read-ahead needs from the layer: GETs that count and fail as the lookups' do. */
export interface AheadSource {
  /** A record's bytes, undefined when absent, null when the store (or the shard of the key) is out. */
  get(key: string): Promise<Buffer | undefined | null>;
  /** Fetches a blob into the local store (verified), shared with a lookup asking for it; null when the store is out. */
  blob(digest: string): Promise<unknown>;
  /** Whether the whole store is out (a null from one shard that is out only skips its keys). */
  out(): boolean;
  /** Whether the local store already has the command's path sets (nothing to fetch for it). */
  knownLocally(weak: string): boolean;
  hasBlob(digest: string): boolean;
}

// Requests in flight at once: the pool keeps room beside them for the lookups' own.
const WORKERS = 8;
// Records fetched but not yet asked for: beyond this, the read-ahead waits for the build.
const MAX_HELD_BYTES = 64 << 20;
const MAX_HELD_RECORDS = 20_000;
// Blob bytes one build's read-ahead may bring in (a config the list was not made with wastes at most this).
const MAX_BLOB_BYTES = 1 << 30;
// Sets of a command whose entries are fetched ahead (the newest first; a fresh runner needs the newest).
const SETS_AHEAD = 2;
const WAIT_MS = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ReadAhead {
  private readonly held = new Map<string, Held>();
  private heldBytes = 0;
  private blobBytes = 0;
  private next = 0;
  private stopped = false;
  /** Records handed to lookups, for the counters. */
  used = 0;

  constructor(
    private readonly lines: readonly string[],
    private readonly src: AheadSource,
  ) {}

  start(): void {
    for (let i = 0; i < WORKERS; i++) void this.work();
  }

  /** The build ended (or the store went out): no new requests; what is held is dropped. */
  stop(): void {
    this.stopped = true;
    this.held.clear();
    this.heldBytes = 0;
  }

  /**
   * A record fetched (or being fetched) ahead, handed over once; undefined if
   * it was not. Its `decoded` is set, if ever, as soon as its bytes arrive,
   * before a lookup awaiting them resumes (the read-ahead awaited them first).
   */
  take(key: string): Held | undefined {
    const h = this.held.get(key);
    if (!h) return undefined;
    this.held.delete(key);
    this.heldBytes -= h.size;
    this.used++;
    return h;
  }

  private fetch(key: string): Promise<Buffer | undefined | null> {
    return this.fetchHeld(key).bytes;
  }

  private fetchHeld(key: string): Held {
    const h: Held = { bytes: this.src.get(key), size: 0 };
    this.held.set(key, h);
    void h.bytes.then((b) => {
      if (b && this.held.get(key) === h) {
        h.size = b.length;
        this.heldBytes += b.length;
      }
    });
    return h;
  }

  private async work(): Promise<void> {
    while (!this.stopped && this.next < this.lines.length) {
      if (this.heldBytes > MAX_HELD_BYTES || this.held.size > MAX_HELD_RECORDS) {
        await sleep(WAIT_MS); // the build takes what is held as it goes
        continue;
      }
      const weak = this.lines[this.next++]!;
      if (this.src.knownLocally(weak)) continue;
      try {
        await this.command(weak);
      } catch {
        /* a record that does not decode: the lookup meets it again and counts it */
      }
    }
  }

  private async command(weak: string): Promise<void> {
    const h = this.fetchHeld(pathSetsKey(weak));
    const data = await h.bytes;
    if (data === null) return this.src.out() ? this.stop() : undefined;
    if (!data) return;
    const bundle = decodeBundle(data);
    const decoded: DecodedBundle = { bundle, rec: decodeRemotePathSets(bundle.pathSets), verified: new Set(), entries: new Map() };
    h.decoded = decoded;
    for (const set of decoded.rec.sets.slice(0, SETS_AHEAD)) {
      if (this.stopped) return;
      if (strongFingerprint(weak, set.entries) !== set.strong) continue;
      decoded.verified.add(set.strong);
      // What the bundle holds inline the lookup takes from it, decoded here.
      const inline = bundle.entries.get(set.strong);
      const got = inline ?? (await this.fetch(entryKey(set.strong)));
      if (got === null) return this.src.out() ? this.stop() : undefined;
      if (!got) continue;
      const entry: Entry = decodeRemoteEntry(got);
      if (inline) decoded.entries.set(set.strong, entry);
      if (entry.exit !== 0) continue;
      for (const [digest, size] of entryBlobs(entry)) {
        if (this.stopped || bundle.blobs.has(digest) || this.src.hasBlob(digest)) continue;
        if (this.blobBytes + size > MAX_BLOB_BYTES) return;
        this.blobBytes += size;
        if ((await this.src.blob(digest)) === null) return this.src.out() ? this.stop() : undefined;
      }
    }
  }
}
