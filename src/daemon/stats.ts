// Counters with stable names (`kbx stats` prints them). Every line the daemon
// sees is counted under exactly one outcome, and every pass-through or
// unstored miss under a reason.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

export type Counts = Record<string, number>;

export class Counters {
  readonly counts: Counts = {};
  savedUs = 0;

  add(name: string, n = 1): void {
    this.counts[name] = (this.counts[name] ?? 0) + n;
  }

  merge(other: Counts): void {
    for (const [k, v] of Object.entries(other)) this.add(k, v);
  }
}

/** Global counters, kept across daemon restarts in $KBX_DIR/stats.json. */
export class PersistentCounters extends Counters {
  private dirty = false;
  private writing = false;

  constructor(private readonly file: string) {
    super();
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { counts?: Counts; savedUs?: number };
      this.merge(saved.counts ?? {});
      this.savedUs = saved.savedUs ?? 0;
    } catch {
      /* first run, or an unreadable file: start from zero */
    }
  }

  override add(name: string, n = 1): void {
    super.add(name, n);
    this.dirty = true;
  }

  flush(): void {
    if (!this.dirty) return;
    const tmp = `${this.file}.tmp.${process.pid}`;
    try {
      writeFileSync(tmp, JSON.stringify({ counts: this.counts, savedUs: this.savedUs }));
      renameSync(tmp, this.file);
      this.dirty = false;
    } catch {
      /* stats are best effort */
    }
  }

  /**
   * flush() off the event loop, for the periodic save during builds (a
   * rename takes milliseconds on a busy disk, and lookups wait behind it).
   */
  flushInBackground(): void {
    if (!this.dirty || this.writing) return;
    this.writing = true;
    this.dirty = false;
    const tmp = `${this.file}.tmp.${process.pid}.bg`;
    writeFile(tmp, JSON.stringify({ counts: this.counts, savedUs: this.savedUs }))
      .then(() => rename(tmp, this.file))
      .catch(() => {
        this.dirty = true; // best effort: the next save tries again
      })
      .finally(() => {
        this.writing = false;
      });
  }

  reset(): void {
    for (const k of Object.keys(this.counts)) delete this.counts[k];
    this.savedUs = 0;
    this.dirty = true;
    this.flush();
  }
}
