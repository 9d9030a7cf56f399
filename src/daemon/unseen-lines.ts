// Lines the daemon never sees (the shim runs them itself: recursive make,
// KBX_PASSTHROUGH, PASS answers, fallbacks) may write files whose stat
// FileState trusts for up to a second. The shim counts each such line's end
// in its build's counters file before it exits (PROTOCOL.md §4, slots 8 and
// 9), so before make can start a line that depends on it: reading the slots
// when a LOOKUP arrives tells whether a new generation must start.
// Shared memory rather than a message per line: no connection per
// pass-through line, and no question of which of two connections the daemon
// reads first.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

const SLOT_ENDED = 8; // then SLOT_UNKNOWN = 9, read together
const MAX_WATCHED = 16; // builds whose kbx make died before build-end are dropped, oldest first

interface Watched {
  fd: number;
  ended: bigint;
}

export class UnseenLines {
  private builds = new Map<string, Watched>();
  private slots = Buffer.alloc(16);

  /** Watches a build's counters file from build-start; without one, every lookup of the build checks every file again. */
  watch(buildId: string, countersFile: string | undefined): void {
    this.unwatch(buildId);
    if (!countersFile) return;
    let fd: number;
    try {
      fd = openSync(countersFile, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return;
    }
    if (!fstatSync(fd).isFile()) return closeSync(fd);
    if (this.builds.size >= MAX_WATCHED) this.unwatch(this.builds.keys().next().value!);
    this.builds.set(buildId, { fd, ended: 0n });
  }

  unwatch(buildId: string): void {
    const w = this.builds.get(buildId);
    if (!w) return;
    closeSync(w.fd);
    this.builds.delete(buildId);
  }

  /**
   * True when a line of any watched build ran unseen since the last call, or
   * when that cannot be known (a build not watched, a counters file that
   * cannot be read, a line whose end the shim could not see).
   */
  ranSince(buildId: string): boolean {
    let ran = !this.builds.has(buildId);
    for (const w of this.builds.values()) {
      try {
        if (readSync(w.fd, this.slots, 0, 16, SLOT_ENDED * 8) < 16) ran = true;
        else {
          const ended = this.slots.readBigUInt64LE(0);
          if (ended !== w.ended || this.slots.readBigUInt64LE(8) !== 0n) ran = true;
          w.ended = ended;
        }
      } catch {
        ran = true;
      }
    }
    return ran;
  }
}
