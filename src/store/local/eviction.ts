// Size limit of the local store with least-recently-used eviction. Every read
// of a record refreshes its mtime, so the oldest mtimes are the least recently
// used. The running total is an estimate kept in memory (seeded by one scan);
// when it passes the limit, a scan sorts files by mtime and removes the oldest
// until the store is at 90 % of the limit.
import { readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export class SizeTracker {
  private total = -1;
  private cleaning = false;
  evictedFiles = 0;

  constructor(
    private readonly root: string,
    readonly maxSize: number,
  ) {}

  private *files(): Generator<{ path: string; size: number; mtimeMs: number }> {
    for (const kind of ['cas', 'ac']) {
      let fans: string[];
      try {
        fans = readdirSync(join(this.root, kind));
      } catch {
        continue;
      }
      for (const fan of fans) {
        const dir = join(this.root, kind, fan);
        let names: string[];
        try {
          names = readdirSync(dir);
        } catch {
          continue;
        }
        for (const name of names) {
          const path = join(dir, name);
          try {
            const st = statSync(path);
            yield { path, size: st.size, mtimeMs: st.mtimeMs };
          } catch {
            /* removed meanwhile */
          }
        }
      }
    }
  }

  /** Bytes in the store now (scans once, then tracks). */
  current(): number {
    if (this.total < 0) {
      this.total = 0;
      for (const f of this.files()) this.total += f.size;
    }
    return this.total;
  }

  added(bytes: number): void {
    if (this.total < 0) this.current();
    this.total += bytes;
    if (this.total > this.maxSize) this.evict();
  }

  reset(): void {
    this.total = 0;
  }

  evict(): void {
    if (this.cleaning) return;
    this.cleaning = true;
    try {
      const all = [...this.files()].sort((a, b) => a.mtimeMs - b.mtimeMs);
      let total = all.reduce((s, f) => s + f.size, 0);
      const target = this.maxSize * 0.9;
      for (const f of all) {
        if (total <= target) break;
        try {
          unlinkSync(f.path);
          total -= f.size;
          this.evictedFiles++;
        } catch {
          /* another process removed it */
        }
      }
      this.total = total;
    } finally {
      this.cleaning = false;
    }
  }
}
