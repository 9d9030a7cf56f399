// Copies of remote hits into the local store, written after the answer
// (issue 11: a fresh CI runner is CPU-bound, and a blob's deflate and write,
// the entry and the path set cost a third of a remote hit's CPU). A hit is
// restored from the verified bytes it fetched; its local copy waits here.
//
// Order as everywhere else: a blob is written, then checked to be there,
// before any entry that names it; an entry before the path set that leads to
// it. A write that fails (disk full) or a copy dropped because the queue is
// full is counted and leaves nothing behind but blobs: the next build asks
// the remote again. Blobs waiting here are verified already; a lookup may
// restore from them (`pending`) before they reach the disk.
import { entryBlobs, type Entry } from '../store.js';
import type { LocalStore } from '../local/local-store.js';

export interface LocalFillEvents {
  count(buildId: string, name: string, n?: number): void;
  log(msg: string): void;
}

// Bytes waiting for the disk: a lookup's copy beyond this is dropped
// (counted), and the read-ahead waits below half of it.
const MAX_QUEUED_BYTES = 64 << 20;
// Writes at once: a blob deflates (on the loop up to 8 KiB, larger in libuv's pool: local-store.ts), then is written on the loop.
const WRITERS = 2;

interface PendingBlob {
  data: Buffer;
  /** True once the blob is in the local store. */
  written: Promise<boolean>;
}

export class LocalFill {
  private readonly pending = new Map<string, PendingBlob>();
  private readonly queue: Array<() => Promise<void>> = [];
  private queuedBytes = 0;
  private running = 0;
  private scheduled = false;
  private readonly idle: Array<() => void> = [];
  private readonly room: Array<() => void> = [];

  constructor(
    private readonly local: LocalStore,
    private readonly events: LocalFillEvents,
  ) {}

  /** A verified blob waiting to be written, for a restore that cannot wait. */
  pendingBlob(digest: string): Buffer | undefined {
    return this.pending.get(digest)?.data;
  }

  /** Whether the blob is in the local store or on its way there. */
  has(digest: string): boolean {
    return this.pending.has(digest) || this.local.hasBlob(digest);
  }

  /** Resolves once fewer than half the queue's bytes wait (the read-ahead fetches no faster than the disk takes). */
  async roomForMore(): Promise<void> {
    while (this.queuedBytes > MAX_QUEUED_BYTES / 2) await new Promise<void>((resolve) => this.room.push(resolve));
  }

  /**
   * Queues a verified blob for the local store; true once it is there. One
   * the store has or that waits already is not written again (counted as
   * `local fill blob-known`).
   */
  blob(buildId: string, digest: string, data: Buffer): Promise<boolean> {
    const waiting = this.pending.get(digest);
    if (waiting) {
      this.events.count(buildId, 'local fill blob-known');
      return waiting.written;
    }
    if (this.local.hasBlob(digest)) {
      this.events.count(buildId, 'local fill blob-known');
      return Promise.resolve(true);
    }
    if (this.queuedBytes + data.length > MAX_QUEUED_BYTES) {
      this.events.count(buildId, 'local fill dropped');
      return Promise.resolve(false);
    }
    const written = this.enqueue(data.length, async () => {
      await this.local.putBlob(digest, data);
      // putBlob reports a failed write through the store's events, not to its caller.
      const there = this.local.hasBlob(digest);
      this.events.count(buildId, there ? 'local fill blob' : 'local fill failed');
      return there;
    })
      .catch((err: unknown) => {
        this.events.count(buildId, 'local fill failed');
        this.events.log(`local copy of blob ${digest.slice(0, 12)} failed: ${(err as Error).message}`);
        return false;
      })
      .finally(() => this.pending.delete(digest));
    this.pending.set(digest, { data, written });
    return written;
  }

  /**
   * Queues a remote hit's local copy: its blobs (those given, or already on
   * their way), then the entry, then `install` (the path set). Never waits;
   * resolves once the copy is in or given up.
   */
  entry(buildId: string, strong: string, entry: Entry, blobs: ReadonlyMap<string, Buffer>, install: () => void): Promise<void> {
    const written: Array<Promise<boolean>> = [];
    for (const digest of entryBlobs(entry).keys()) {
      const data = blobs.get(digest);
      if (data) {
        written.push(this.blob(buildId, digest, data));
        continue;
      }
      // The lookup found it in the local store, or on its way there.
      this.events.count(buildId, 'local fill blob-known');
      written.push(this.pending.get(digest)?.written ?? Promise.resolve(this.local.hasBlob(digest)));
    }
    const job = Promise.all(written).then((ok) => {
      if (!ok.every(Boolean)) {
        this.events.count(buildId, 'local fill entry-skipped'); // a blob was dropped or not written: no entry without it
        return;
      }
      return this.enqueue(1024, async () => {
        this.local.putEntry(strong, entry);
        install();
        this.events.count(buildId, 'local fill entry');
      });
    });
    const done = job.catch((err: unknown) => this.events.log(`local copy of a remote hit failed: ${(err as Error).stack}`));
    this.track(done);
    return done;
  }

  /** Resolves when every queued copy has been written or given up. */
  async flush(): Promise<void> {
    while (this.running || this.queue.length || this.jobs.size) {
      if (this.jobs.size) await Promise.all([...this.jobs]);
      else await new Promise<void>((resolve) => this.idle.push(resolve));
    }
  }

  private readonly jobs = new Set<Promise<unknown>>();

  private track(p: Promise<unknown>): void {
    const q = p.finally(() => this.jobs.delete(q));
    this.jobs.add(q);
  }

  private enqueue<T>(bytes: number, write: () => Promise<T>): Promise<T> {
    this.queuedBytes += bytes;
    return new Promise<T>((resolve, reject) => {
      this.queue.push(() =>
        write()
          .then(resolve, reject)
          .finally(() => {
            this.queuedBytes -= bytes;
            if (this.queuedBytes <= MAX_QUEUED_BYTES / 2) for (const f of this.room.splice(0)) f();
          }),
      );
      this.schedule();
    });
  }

  // Started on a later turn of the loop: the hit's answer goes out first.
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < WRITERS && this.queue.length) {
      const write = this.queue.shift()!;
      this.running++;
      void write().finally(() => {
        this.running--;
        this.pump();
        if (!this.running && !this.queue.length) for (const f of this.idle.splice(0)) f();
      });
    }
  }
}
