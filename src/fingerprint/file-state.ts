// What a path holds now, as the value a path set compares: a content digest,
// a directory listing digest, or an existence type. Hot path of every cache
// lookup, so results are kept in a stat cache and a file is re-hashed only
// when its stat changed.
import { lstatSync, readFileSync, readdirSync, statSync, type BigIntStats } from 'node:fs';
import { sha256 } from '../util/hash.js';
import { absentBefore, type PreStat } from '../observe/trace-log.js';
import { partValue, type Projection } from './projection.js';

export const ABSENT = 'absent';

// `empty`: a regular file of size 0. A stat-only look can see that much (`[ -s f ]`,
// `test -s`): a line that branches on it must not hit after the file filled.
// A symlink is `symlink>` and what it leads to: an lstat tells it from a file
// (`[ -L f ] || ln -s …`), a stat tells what it leads to (`[ -e f ]`).
type Kind = 'file' | 'empty' | 'dir' | 'absent' | 'other';
export type Existence = Kind | `symlink>${Kind}`;

function kindOf(st: BigIntStats | undefined): Kind {
  return !st ? 'absent' : st.isFile() ? (st.size === 0n ? 'empty' : 'file') : st.isDirectory() ? 'dir' : 'other';
}

/** SHA-256 of no bytes: a file output with this digest is `empty` to an existence probe. */
export const EMPTY_DIGEST = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

interface Known {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  digest: string;
  /** Wall clock when hashed, compared with the file's mtime and ctime. */
  hashedAtNs: bigint;
  /** Build generation in which the entry was last checked against the file system. */
  checkedGen: number;
  /** Monotonic clock (monotonicMs) of that check. */
  checkedAtMs: number;
}

/** A projection's value of a file (projection.ts), for the stat it was computed at. */
interface KnownPart {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  value: string;
  hashedAtNs: bigint;
  checkedGen: number;
  checkedAtMs: number;
}

interface KnownExistence {
  value: Existence;
  checkedGen: number;
  checkedAtMs: number;
}

// A file modified within this window after we hashed it could keep the same
// mtime on a coarse-clock filesystem ("racy git"): such an entry is re-hashed.
const RACY_NS = 100_000_000n;

// Paths the build does not write: checked once per build, not once per lookup.
const SYSTEM_PREFIXES = ['/usr/', '/lib/', '/lib64/', '/bin/', '/sbin/', '/etc/', '/opt/'];

export function isSystemPath(p: string): boolean {
  return SYSTEM_PREFIXES.some((pre) => p.startsWith(pre));
}

// Within a build, a check younger than this is trusted without a new stat: a
// kernel build looks the same few hundred headers up for every object. Files
// kbx writes or restores update their entry at once, and a line kbx cannot
// see into starts a new generation, so the window only widens make's own
// race with a developer editing a file during the build, by at most this.
// Measured on a monotonic clock: the wall clock jumps (NTP, suspend, `date -s`),
// and a jump back would keep a check "younger than TRUST_MS" for as long as the jump.
const TRUST_MS = 1000;

function monotonicMs(): number {
  return performance.now();
}

// Wall-clock time, for comparing with file times (which the kernel takes from
// the wall clock); a monotonic clock aligned once would drift from them.
function wallNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

function lstat(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

function stat(p: string): BigIntStats | undefined {
  try {
    return statSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR, EACCES: treat as absent, as open() would fail too
  }
}

/** The value of a directory listing: its entry names, in any order. */
export function listingDigest(names: Iterable<string>): string {
  return `dir:${sha256([...names].sort().join('\0'))}`;
}

export class FileState {
  private known = new Map<string, Known>();
  private existences = new Map<string, KnownExistence>();
  /** By projection name and path. */
  private parts = new Map<string, KnownPart>();
  private gen = 0;
  hashedBytes = 0;
  /** Files read whole and hashed (not directories, not projections): what replay's no-op must keep at 0. */
  hashedFiles = 0;

  /** Starts a new generation: every path is checked again. At each build start, and whenever a line ran unseen. */
  newGeneration(): void {
    this.gen++;
  }

  get size(): number {
    return this.known.size;
  }

  /** The current generation: an entry checked in it or later has checkedGen at least this. */
  get generation(): number {
    return this.gen;
  }

  /** Paths whose existence alone is known (probes, absent paths). */
  get existenceCount(): number {
    return this.existences.size;
  }

  /**
   * Forgets every path not checked since generation `gen`: a long-lived daemon
   * serves build trees that come and go (a fresh checkout per CI job, a
   * temporary directory per build), and their paths would stay forever. A
   * forgotten file is only hashed again if it is looked up again.
   */
  forgetCheckedBefore(gen: number): void {
    for (const [p, k] of this.known) if (k.checkedGen < gen) this.known.delete(p);
    for (const [p, e] of this.existences) if (e.checkedGen < gen) this.existences.delete(p);
    for (const [p, e] of this.parts) if (e.checkedGen < gen) this.parts.delete(p);
  }

  private trusted(p: string, checkedGen: number, checkedAtMs: number, now: number): boolean {
    return checkedGen === this.gen && (now - checkedAtMs < TRUST_MS || isSystemPath(p));
  }

  /** Whether a stat finds something there, as make's does (a dangling symlink is absent). */
  exists(p: string): boolean {
    const v = this.existence(p);
    return v !== 'absent' && v !== 'symlink>absent';
  }

  existence(p: string): Existence {
    const now = monotonicMs();
    const e = this.existences.get(p);
    if (e && this.trusted(p, e.checkedGen, e.checkedAtMs, now)) return e.value;
    const lst = lstat(p);
    const value: Existence = lst?.isSymbolicLink() ? `symlink>${kindOf(stat(p))}` : kindOf(lst);
    this.existences.set(p, { value, checkedGen: this.gen, checkedAtMs: now });
    return value;
  }

  /**
   * Digest of the content now: sha256 of a file, `dir:` + digest of a listing,
   * or ABSENT. `fresh`: a stat now even within the trust window.
   */
  content(p: string, opts: { fresh?: boolean } = {}): string {
    const k = this.known.get(p);
    const now = monotonicMs();
    if (k && !opts.fresh && this.trusted(p, k.checkedGen, k.checkedAtMs, now)) return k.digest;
    const st = stat(p);
    if (!st) {
      this.known.delete(p);
      return ABSENT;
    }
    if (k && sameSinceHashed(k, st)) {
      k.checkedGen = this.gen;
      k.checkedAtMs = now;
      return k.digest;
    }
    return this.hashNow(p, st);
  }

  /**
   * The value of a file by a projection (`part:<name>:<digest>`), or its
   * whole content's value when the projection cannot read it, ABSENT when it
   * is gone. Kept by stat like content(); the projection reads only the part
   * it keeps, so a large vmlinux is not read whole.
   */
  projected(p: string, proj: Projection, opts: { fresh?: boolean } = {}): string {
    const key = `${proj.name}\0${p}`;
    const k = this.parts.get(key);
    const now = monotonicMs();
    if (k && !opts.fresh && this.trusted(p, k.checkedGen, k.checkedAtMs, now)) return k.value;
    const st = stat(p);
    if (!st) {
      this.parts.delete(key);
      return ABSENT;
    }
    if (!st.isFile()) return this.content(p, opts);
    if (k && sameSinceHashed(k, st)) {
      k.checkedGen = this.gen;
      k.checkedAtMs = now;
      return k.value;
    }
    const hashedAtNs = wallNs();
    let digest: string | undefined;
    try {
      digest = proj.digest(p);
    } catch {
      digest = undefined; // the store's bytes and the file's are untrusted: value it whole
    }
    if (digest === undefined) {
      this.parts.delete(key);
      return this.content(p, opts);
    }
    // The file changed while it was read: value it again next time.
    const after = stat(p);
    const value = partValue(proj, digest);
    if (after && after.ino === st.ino && after.size === st.size && after.mtimeNs === st.mtimeNs && after.ctimeNs === st.ctimeNs) {
      this.parts.set(key, { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, value, hashedAtNs, checkedGen: this.gen, checkedAtMs: now });
    } else this.parts.delete(key);
    return value;
  }

  private hashNow(p: string, st: BigIntStats): string {
    let digest: string;
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = readdirSync(p);
      } catch {
        return ABSENT;
      }
      digest = listingDigest(names);
    } else if (st.isFile()) {
      let data: Buffer;
      try {
        data = readFileSync(p);
      } catch {
        return ABSENT;
      }
      this.hashedBytes += data.length;
      this.hashedFiles++;
      digest = sha256(data);
    } else {
      return `other:${st.mode}`;
    }
    this.remember(p, st, digest);
    return digest;
  }

  private remember(p: string, st: BigIntStats, digest: string): void {
    this.known.set(p, {
      ino: st.ino,
      size: st.size,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
      digest,
      hashedAtNs: wallNs(),
      checkedGen: this.gen,
      checkedAtMs: monotonicMs(),
    });
    this.existences.delete(p);
  }

  /**
   * The digest of a file a recipe line has just hard-linked (`ln big.bin
   * alias`): the link changed its ctime, not its bytes. Known with the same
   * inode, size and mtime, hashed well after that mtime (not racy): the
   * bytes hashed then, and the new ctime is remembered. Otherwise content().
   * Without this, every `ln` of a 17 MB file hashed it again.
   */
  contentAfterLink(p: string): string {
    const k = this.known.get(p);
    const st = stat(p);
    if (k && st?.isFile() && k.ino === st.ino && k.size === st.size && k.mtimeNs === st.mtimeNs && k.hashedAtNs - st.mtimeNs > RACY_NS) {
      k.ctimeNs = st.ctimeNs;
      k.checkedGen = this.gen;
      k.checkedAtMs = monotonicMs();
      return k.digest;
    }
    return this.content(p);
  }

  /** Records the digest of a file kbx itself just wrote or read whole. */
  noteContent(p: string, digest: string): void {
    this.dropParts(p);
    const st = stat(p);
    if (st?.isFile()) this.remember(p, st, digest);
  }

  /**
   * The digest a file had before a recipe line changed it in place, known only
   * if kbx saw that exact version (same inode, size and mtime) earlier.
   */
  contentBefore(p: string, pre: PreStat): string | undefined {
    if (absentBefore(pre)) return ABSENT;
    const k = this.known.get(p);
    if (k && k.ino === pre.ino && k.size === pre.size && k.mtimeNs === pre.mtimeNs) return k.digest;
    return undefined;
  }

  /**
   * Whether the file was changed (mtime or ctime, wall clock) at or after
   * sinceNs, or is gone: a fresh stat, never the trust window.
   */
  changedSince(p: string, sinceNs: bigint): boolean {
    const st = stat(p);
    return !st || st.mtimeNs >= sinceNs || st.ctimeNs >= sinceNs;
  }

  /** A recipe line removed or replaced the path in a way kbx did not hash. */
  forget(p: string): void {
    this.known.delete(p);
    this.existences.delete(p);
    this.dropParts(p);
  }

  private dropParts(p: string): void {
    if (this.parts.size === 0) return;
    for (const key of this.parts.keys()) if (key.endsWith(`\0${p}`)) this.parts.delete(key);
  }
}

/**
 * Whether the file is the one hashed (same inode, size, mtime and ctime) and
 * was hashed well after its last change, so its value still holds.
 */
function sameSinceHashed(k: Known | KnownPart, st: Pick<Known, 'ino' | 'size' | 'mtimeNs' | 'ctimeNs'>): boolean {
  return k.ino === st.ino && k.size === st.size && k.mtimeNs === st.mtimeNs && k.ctimeNs === st.ctimeNs && k.hashedAtNs - (st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs) > RACY_NS;
}
