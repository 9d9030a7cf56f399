// The embedded local store: one directory, content-addressed blobs and action
// records in two-hex-digit fan-out folders. Every file is written under a
// temporary name opened exclusively and renamed into place, so a reader never
// sees half a file and two builds (or two daemons) may share the directory.
import {
  closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { deflateRaw, inflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { sha256 } from '../../util/hash.js';
import type { Entry, PathSets, Store } from '../store.js';
import { SizeTracker } from './eviction.js';

const deflateRawAsync = promisify(deflateRaw);

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
    mkdirSync(this.root, { recursive: true });
    this.sizes = new SizeTracker(this.root, maxSize);
  }

  private file(kind: 'cas' | 'ac', name: string): string {
    return join(this.root, kind, name.slice(0, 2), name);
  }

  private writeAtomic(path: string, data: Buffer): boolean {
    const tmp = `${path}.tmp.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      mkdirSync(join(path, '..'), { recursive: true });
      const fd = openSync(tmp, 'wx');
      try {
        writeSync(fd, data);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      this.sizes.added(data.length);
      return true;
    } catch (err) {
      rmSync(tmp, { force: true });
      this.events.onWriteError?.(path, err as Error);
      return false;
    }
  }

  private readJson<T>(path: string): T | undefined {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      this.dropCorrupt(path, `not valid JSON: ${(err as Error).message}`);
      return undefined;
    }
  }

  private dropCorrupt(path: string, why: string): void {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
    this.events.onCorrupt?.(path, why);
  }

  getPathSets(weak: string): PathSets | undefined {
    const rec = this.readJson<PathSets>(this.file('ac', `${weak}.p`));
    if (rec && (!Array.isArray(rec.sets) || typeof rec.command !== 'string')) {
      this.dropCorrupt(this.file('ac', `${weak}.p`), 'path set record has the wrong shape');
      return undefined;
    }
    return rec;
  }

  putPathSets(weak: string, record: PathSets): void {
    this.writeAtomic(this.file('ac', `${weak}.p`), Buffer.from(JSON.stringify(record)));
  }

  getEntry(strong: string): Entry | undefined {
    const path = this.file('ac', `${strong}.e`);
    const e = this.readJson<Entry>(path);
    if (e && (!Array.isArray(e.outputs) || !Array.isArray(e.deleted) || typeof e.exit !== 'number')) {
      this.dropCorrupt(path, 'entry has the wrong shape');
      return undefined;
    }
    if (e) touch(path);
    return e;
  }

  putEntry(strong: string, entry: Entry): void {
    this.writeAtomic(this.file('ac', `${strong}.e`), Buffer.from(JSON.stringify(entry)));
  }

  getBlob(digest: string): Buffer | undefined {
    const path = this.file('cas', digest);
    let raw: Buffer;
    try {
      raw = readFileSync(path);
    } catch {
      return undefined;
    }
    let data: Buffer;
    try {
      if (raw.length < 5 || !raw.subarray(0, 4).equals(MAGIC)) throw new Error('bad header');
      const codec = raw[4];
      if (codec === CODEC_RAW) data = raw.subarray(5);
      else if (codec === CODEC_DEFLATE) data = inflateRawSync(raw.subarray(5));
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

  async putBlob(digest: string, data: Buffer): Promise<void> {
    const path = this.file('cas', digest);
    if (touch(path, true)) return;
    let body = data;
    let codec = CODEC_RAW;
    if (this.compressionLevel > 0 && data.length > 64) {
      const z = await deflateRawAsync(data, { level: this.compressionLevel });
      if (z.length < data.length) {
        body = z;
        codec = CODEC_DEFLATE;
      }
    }
    this.writeAtomic(path, Buffer.concat([MAGIC, Buffer.from([codec]), body]));
  }

  clear(): void {
    rmSync(this.root, { recursive: true, force: true });
    mkdirSync(this.root, { recursive: true });
    this.sizes.reset();
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
