// The embedded local store: one directory, content-addressed blobs and action
// records in two-hex-digit fan-out folders. Every file is written under a
// temporary name opened exclusively and renamed into place, so a reader never
// sees half a file and two builds (or two daemons) may share the directory.
// Nothing read back is trusted: names must be 64 hex digits before they
// become paths, and records pass the decoder (../decode.ts).
import {
  chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { deflateRaw, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { sha256 } from '../../util/hash.js';
import type { Entry, PathSets, Store } from '../store.js';
import { DecodeError, decodeEntry, isStoreName } from '../decode.js';
import { decodePathSetsRecord, encodePathSets } from '../record-codec.js';
import { SizeTracker } from './eviction.js';

const deflateRawAsync = promisify(deflateRaw);
const inflateRawAsync = promisify(inflateRaw);

const SYNC_DEFLATE_BYTES = 8 << 10;

// Blob file: 4-byte magic, 1 codec byte (0 raw, 1 deflate), then the data.
const MAGIC = Buffer.from('KBXB');
const CODEC_RAW = 0;
const CODEC_DEFLATE = 1;

export interface LocalStoreEvents {
  /** A stored file was unreadable or did not match its digest; it has been removed. */
  onCorrupt?(path: string, why: string): void;
  /** A write failed (disk full, permissions); the store skips it. */
  onWriteError?(path: string, err: Error): void;
}

export class LocalStore implements Store {
  readonly root: string;
  readonly sizes: SizeTracker;

  constructor(
    dir: string,
    maxSize: number,
    private readonly compressionLevel: number,
    private readonly events: LocalStoreEvents = {},
  ) {
    this.root = join(dir, 'store', 'v2');
    // Path sets and entries spell out the user's commands, paths and environment: owner only.
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    for (const d of [join(dir, 'store'), this.root]) {
      try {
        chmodSync(d, 0o700); // made by an older kbx with the umask's mode
      } catch {
        /* not ours to change: the store still works */
      }
    }
    this.sizes = new SizeTracker(this.root, maxSize);
  }

  /** The file of a blob or record; undefined for a name that is not 64 hex digits (it never becomes a path). */
  private file(kind: 'cas' | 'ac', name: string, suffix = ''): string | undefined {
    if (!isStoreName(name)) return undefined;
    return join(this.root, kind, name.slice(0, 2), name + suffix);
  }

  private writeAtomic(path: string, data: Buffer): boolean {
    this.sizes.current(); // the first count scans the store: before this file, or its temporary, is in it
    const tmp = `${path}.tmp.${process.pid}.${TMP_TAG}${(tmpCount++).toString(36)}`;
    try {
      const fd = openNew(tmp);
      try {
        writeSync(fd, data);
      } finally {
        closeSync(fd);
      }
      // A rewrite (a command's path sets, again and again) replaces the old
      // file: only the difference is new.
      // (No exception for a new file: building one costs more than the stat.)
      const replaced = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
      renameSync(tmp, path);
      this.sizes.added(data.length - replaced);
      return true;
    } catch (err) {
      rmSync(tmp, { force: true });
      this.events.onWriteError?.(path, err as Error);
      return false;
    }
  }

  /** Reads and decodes a record; a file that does not decode is removed and reported. */
  private readRecord<T>(path: string | undefined, decode: (x: unknown) => T): T | undefined {
    if (!path) return undefined;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      return decode(JSON.parse(text));
    } catch (err) {
      const why = err instanceof DecodeError ? `refused by the decoder: ${err.message}` : `not valid JSON: ${(err as Error).message}`;
      this.dropCorrupt(path, why);
      return undefined;
    }
  }

  /** Removes a file of this store that did not verify; only ever a path built by file(). */
  private dropCorrupt(path: string, why: string): void {
    if (!path.startsWith(this.root + '/')) return;
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
    this.events.onCorrupt?.(path, why);
  }

  // A command's path sets are format 2 (record-codec.ts: tables, gzip'd)
  // under `.pz`; plain JSON records of format 1 (`.p`) are never read, and go
  // as eviction reaches them.
  getPathSets(weak: string): PathSets | undefined {
    const path = this.file('ac', weak, '.pz');
    if (!path) return undefined;
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch {
      return undefined;
    }
    try {
      return decodePathSetsRecord(data);
    } catch (err) {
      this.dropCorrupt(path, err instanceof DecodeError ? `refused by the decoder: ${err.message}` : `not a path set record: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Whether a record of the command's path sets is there (not decoded). */
  hasPathSets(weak: string): boolean {
    const path = this.file('ac', weak, '.pz');
    return path !== undefined && existsSync(path);
  }

  putPathSets(weak: string, record: PathSets): void {
    const path = this.file('ac', weak, '.pz');
    if (path) this.writeAtomic(path, encodePathSets(record));
  }

  putPathSetsEncoded(weak: string, data: Buffer): void {
    const path = this.file('ac', weak, '.pz');
    if (path) this.writeAtomic(path, data);
  }

  getEntry(strong: string): Entry | undefined {
    const path = this.file('ac', strong, '.e');
    const e = this.readRecord(path, decodeEntry);
    if (e) touch(path!);
    return e;
  }

  putEntry(strong: string, entry: Entry): void {
    const path = this.file('ac', strong, '.e');
    if (path) this.writeAtomic(path, Buffer.from(JSON.stringify(entry)));
  }

  getBlob(digest: string): Buffer | undefined {
    const path = this.file('cas', digest);
    if (!path) return undefined;
    let raw: Buffer;
    try {
      raw = readFileSync(path);
    } catch {
      return undefined;
    }
    return this.checkBlob(path, digest, raw, (z) => inflateRawSync(z));
  }

  async getBlobAsync(digest: string): Promise<Buffer | undefined> {
    const path = this.file('cas', digest);
    if (!path) return undefined;
    let raw: Buffer;
    try {
      raw = await readFile(path);
    } catch {
      return undefined;
    }
    let inflated: Buffer | undefined;
    if (raw.length >= 5 && raw.subarray(0, 4).equals(MAGIC) && raw[4] === CODEC_DEFLATE) {
      try {
        inflated = await inflateRawAsync(raw.subarray(5));
      } catch {
        inflated = undefined; // checkBlob inflates again and drops it as corrupt
      }
    }
    return this.checkBlob(path, digest, raw, (z) => inflated ?? inflateRawSync(z));
  }

  /** A blob file's content, verified; a corrupt file is removed and counted. */
  private checkBlob(path: string, digest: string, raw: Buffer, inflate: (z: Buffer) => Buffer): Buffer | undefined {
    let data: Buffer;
    try {
      if (raw.length < 5 || !raw.subarray(0, 4).equals(MAGIC)) throw new Error('bad header');
      const codec = raw[4];
      if (codec === CODEC_RAW) data = raw.subarray(5);
      else if (codec === CODEC_DEFLATE) data = inflate(raw.subarray(5));
      else throw new Error(`unknown codec ${codec}`);
    } catch (err) {
      this.dropCorrupt(path, (err as Error).message);
      return undefined;
    }
    if (sha256(data) !== digest) {
      this.dropCorrupt(path, 'content does not match its digest');
      return undefined;
    }
    touch(path);
    return data;
  }

  /** Whether the blob's file is there (not verified: getBlob verifies it when it is read). */
  hasBlob(digest: string): boolean {
    const path = this.file('cas', digest);
    return path !== undefined && existsSync(path);
  }

  /** Blobs being compressed and written, by digest: many lines storing the same bytes at once (40 `ln` of one file) compress them once. */
  private readonly writing = new Map<string, Promise<void>>();

  putBlob(digest: string, data: Buffer): Promise<void> {
    const pending = this.writing.get(digest);
    if (pending) return pending;
    const write = this.writeBlob(digest, data).finally(() => this.writing.delete(digest));
    this.writing.set(digest, write);
    return write;
  }

  private async writeBlob(digest: string, data: Buffer): Promise<void> {
    const path = this.file('cas', digest);
    if (!path || (existsSync(path) && touch(path, true))) return;
    let body = data;
    let codec = CODEC_RAW;
    if (this.compressionLevel > 0 && data.length > 64) {
      // A small blob costs less CPU deflated here than handed to libuv's pool
      // (measured: 0.18 against 0.43 ms for 2 KB at level 1), and blocks the loop a fraction of a millisecond.
      const z = data.length <= SYNC_DEFLATE_BYTES ? deflateRawSync(data, { level: this.compressionLevel }) : await deflateRawAsync(data, { level: this.compressionLevel });
      if (z.length < data.length) {
        body = z;
        codec = CODEC_DEFLATE;
      }
    }
    this.writeAtomic(path, Buffer.concat([MAGIC, Buffer.from([codec]), body]));
  }

  clear(): void {
    rmSync(this.root, { recursive: true, force: true });
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    this.sizes.reset();
  }
}

// Temporary names: unique to this process without a random number per write
// (opened exclusively all the same; a clash only fails that write).
const TMP_TAG = randomBytes(4).toString('hex');
let tmpCount = 0;

/**
 * Opens a new file exclusively, making its fan-out directory only when it is
 * missing: a mkdir on every write was a tenth of a fresh runner's daemon CPU
 * (its 256 directories exist after the first few hundred writes).
 */
function openNew(path: string): number {
  try {
    return openSync(path, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
    return openSync(path, 'wx');
  }
}

// Eviction needs the order of use only roughly: a record is touched at most
// once a minute, which spares a system call on most cache hits.
const TOUCH_EVERY_MS = 60_000;
const lastTouch = new Map<string, number>();

/** Marks a record as recently used (eviction removes the least recently used first); false if it is not there. */
function touch(path: string, mustExist = false): boolean {
  const now = Date.now();
  if (!mustExist && now - (lastTouch.get(path) ?? 0) < TOUCH_EVERY_MS) return true;
  if (lastTouch.size > 200_000) lastTouch.clear();
  lastTouch.set(path, now);
  try {
    const now = new Date();
    utimesSync(path, now, now);
    return true;
  } catch {
    lastTouch.delete(path);
    return false;
  }
}
