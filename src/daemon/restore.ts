// Puts a cache entry's outputs in place. Every blob is fetched and verified
// before the first file is touched, so a corrupt or evicted blob leaves the
// tree as it was and the line simply runs. Files are written under a temporary
// name and renamed: a reader never sees half an object, and restored files are
// new inodes with a fresh mtime (never hard links to the store: later lines
// modify outputs in place). An output the line made as a hard link of another
// file of the tree is linked to that file again, once its bytes are checked
// (hard-links.ts). An output already there with the entry's bytes (a rebuild after
// a touch: every hit) is only dated now, by writing one of its bytes again.
//
// An entry is untrusted data (DESIGN.md §5): before anything is fetched,
// written or deleted, every path it names must be inside the build roots of
// the request once the directories above it are resolved through symlinks,
// no path may pass through a link the entry itself creates, and every link
// it creates must lead inside the roots. An entry that fails is refused whole.
// Stored paths name their build root by role (`@out/fs/ioctl.o`:
// root-names.ts); they are put under this build's roots first, and the checks
// are made on the result. decode.ts lets no `.` or `..` through below a role.
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, rmdirSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Entry, Store, StoredOutput } from '../store/store.js';
import type { FileState } from '../fingerprint/file-state.js';
import { insideRoots, linkDestination, locate, realRoots, type Walk } from '../util/roots.js';
import type { RootNames } from '../fingerprint/root-names.js';
import { sha256 } from '../util/hash.js';
import { canLink, restoreLink, restoreOrder } from './hard-links.js';

export interface Restored {
  stdout: Buffer;
  stderr: Buffer;
  /** The entry as restored: its paths absolute. */
  entry: Entry;
}

export interface RestoreContext {
  /** The build roots of the request (KBX_ROOTS). */
  roots: readonly string[];
  /** The same roots by role, to put the entry's stored paths under. */
  names: RootNames;
  /** Told why an entry was refused; the lookup then goes on as for a missing blob. */
  refused?(why: string): void;
  /**
   * Outputs whose bytes depend on the current line's text (a kbuild .cmd
   * file: kernel/cmd-file.ts). `apply` gives the bytes to restore instead,
   * undefined to restore them as stored, null when the entry must not be used.
   */
  rewrite?: { applies(path: string): boolean; apply(path: string, data: Buffer): Buffer | undefined | null };
}

/** The entry with its stored paths put under these roots, or why it cannot be (a role they lack, a hostile name). */
export function underRoots(entry: Entry, names: RootNames): Entry | string {
  let why: string | undefined;
  const abs = (p: string) => {
    const a = names.toAbsolute(p);
    if (a === undefined) why ??= `names ${p}, under no build root of this build`;
    return a ?? p;
  };
  const out: Entry = {
    ...entry,
    deleted: entry.deleted.map(abs),
    outputs: entry.outputs.map((o) => (o.kind === 'file' && o.linkOf !== undefined ? { ...o, path: abs(o.path), linkOf: abs(o.linkOf) } : { ...o, path: abs(o.path) })),
  };
  return why ?? out;
}

/** Why an entry (paths absolute) must not be restored into these roots, or undefined. Reads the file system, changes nothing. */
export function refusal(entry: Entry, roots: readonly string[]): string | undefined {
  const real = realRoots(roots);
  const links = new Map<string, string>();
  for (const o of entry.outputs) {
    if (o.kind !== 'link') continue;
    const at = locate(o.path);
    if (at === undefined) return `cannot resolve ${o.path}`;
    links.set(at, o.target);
  }
  const w: Walk = links.size ? { links, refuseLinks: true } : {};
  const dirs = new Map<string, string | undefined>();
  const inside = (p: string, rootItself: boolean) => {
    const at = locate(p, w, dirs);
    return at !== undefined && insideRoots(at, real, rootItself);
  };
  for (const p of entry.deleted) if (!inside(p, false)) return `deletes ${p}, outside the build roots ${roots.join(':')}`;
  for (const o of entry.outputs) {
    if (!inside(o.path, o.kind === 'dir')) return `writes ${o.path}, outside the build roots ${roots.join(':')}`;
    if (o.kind === 'file' && o.linkOf !== undefined && !inside(o.linkOf, false)) return `links ${o.path} to ${o.linkOf}, outside the build roots ${roots.join(':')}`;
    if (o.kind !== 'link') continue;
    const dest = linkDestination(locate(o.path)!, o.target, { links });
    if (dest === undefined || !insideRoots(dest, real, true)) return `links ${o.path} to ${o.target}, outside the build roots ${roots.join(':')}`;
  }
  return undefined;
}

function blobOrEmpty(store: Store, digest: string): Buffer | undefined {
  return digest === '' ? Buffer.alloc(0) : store.getBlob(digest);
}

// Directories known to exist: a warm build restores thousands of files into
// a few hundred directories; one mkdir each is enough.
const madeDirs = new Set<string>();

function ensureDir(dir: string): void {
  if (madeDirs.has(dir)) return;
  mkdirSync(dir, { recursive: true });
  if (madeDirs.size > 100_000) madeDirs.clear();
  madeDirs.add(dir);
}

// A new file only: never opened through a symlink or a file left at the temporary name.
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function openNew(tmp: string, mode: number): number {
  try {
    return openSync(tmp, CREATE, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    unlinkSync(tmp); // left by a daemon that died (pids are reused)
    return openSync(tmp, CREATE, mode);
  }
}

function writeFileAtomic(path: string, data: Buffer, mode: number): void {
  const tmp = `${path}.kbx-tmp.${process.pid}`;
  // Permission bits only: never setuid, setgid or sticky, whatever the entry says.
  const perm = mode & 0o777;
  let fd: number;
  try {
    fd = openNew(tmp, perm);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    madeDirs.delete(dirname(path)); // removed since (make clean): make it again
    ensureDir(dirname(path));
    fd = openNew(tmp, perm);
  }
  try {
    writeSync(fd, data);
    fchmodSync(fd, perm); // open's mode is filtered by the umask
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

type StoredFile = Extract<StoredOutput, { kind: 'file' }>;

/**
 * Gives a directory kbx made the permission bits the line left it with. A
 * setgid bit mkdir inherited from the directory above stays, as in the plain
 * build (chmod would clear it); the entry's own mode has none.
 */
export function setDirMode(path: string, mode: number): void {
  // Opened, not named: a symlink put there since is never followed to a directory elsewhere.
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    fchmodSync(fd, (fstatSync(fd).mode & 0o7000) | (mode & 0o777));
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the file at the output's path already holds the output: a regular
 * file of one link (a write through a hard link would reach the other name),
 * not empty, with its size and permission bits, and its digest now (a fresh
 * stat, never FileState's trust window: the answer decides what is written).
 */
function alreadyThere(o: StoredFile, state: FileState): boolean {
  const st = lstatSync(o.path, { throwIfNoEntry: false });
  if (!st?.isFile() || st.nlink !== 1 || st.size === 0 || st.size !== o.size || (st.mode & 0o777) !== (o.mode & 0o777)) return false;
  return state.content(o.path, { fresh: true }) === o.digest;
}

/**
 * Dates a file that already holds the output now, as writing it would: its
 * first byte written again in place, so the kernel sets the mtime in the clock
 * of every other file the build writes (make must find it newer than its
 * prerequisites, and older than what the next lines make). False when that
 * cannot be done; the file is then written whole.
 */
function refreshInPlace(o: StoredFile, state: FileState): boolean {
  let fd: number;
  try {
    fd = openSync(o.path, constants.O_RDWR | constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const first = Buffer.alloc(1);
    if (readSync(fd, first, 0, 1, 0) !== 1 || writeSync(fd, first, 0, 1, 0) !== 1) return false;
  } finally {
    closeSync(fd);
  }
  state.noteContent(o.path, o.digest);
  return true;
}

/**
 * Returns undefined (nothing written) when the entry is refused (ctx.refused
 * is told why) or a blob is missing or corrupt. Throws on a write error.
 */
export function restoreEntry(store: Store, state: FileState, stored: Entry, ctx: RestoreContext): Restored | undefined {
  const entry = underRoots(stored, ctx.names);
  const why = typeof entry === 'string' ? entry : refusal(entry, ctx.roots);
  if (typeof entry === 'string' || why !== undefined) {
    ctx.refused?.(why!);
    return undefined;
  }
  const stdout = blobOrEmpty(store, entry.stdout);
  const stderr = blobOrEmpty(store, entry.stderr);
  if (!stdout || !stderr) return undefined;
  const blobs = new Map<string, Buffer>();
  const there = new Set<StoredFile>();
  if (ctx.rewrite) {
    const rewritten = new Set<string>();
    for (const [i, o] of entry.outputs.entries()) {
      if (o.kind !== 'file' || !ctx.rewrite.applies(o.path)) continue;
      const data = o.linkOf === undefined ? store.getBlob(o.digest) : undefined;
      if (!data) return undefined; // evicted, or a hard link: not a file kbx rewrites
      const now = ctx.rewrite.apply(o.path, data);
      if (now === null) return undefined;
      if (now === undefined) continue;
      const digest = sha256(now);
      blobs.set(digest, now);
      entry.outputs[i] = { ...o, digest, size: now.length };
      rewritten.add(o.path);
    }
    // A second name of a rewritten file would get the stored bytes: run the line instead.
    if (entry.outputs.some((o) => o.kind === 'file' && o.linkOf !== undefined && rewritten.has(o.linkOf))) return undefined;
  }
  // Hard links of a file the entry does not write (an input) are checked now;
  // of a file it writes, after that is written. The others need their blob.
  const written = new Map<string, StoredFile>();
  for (const o of entry.outputs) if (o.kind === 'file' && o.linkOf === undefined) written.set(o.path, o);
  const deleted = new Set(entry.deleted);
  const linkable = (o: StoredFile): boolean => {
    if (o.linkOf === undefined || deleted.has(o.linkOf)) return false;
    const to = written.get(o.linkOf);
    return to ? to.digest === o.digest && to.mode === o.mode : canLink(o, state);
  };
  const links = new Set<StoredFile>();
  for (const o of entry.outputs) {
    if (o.kind !== 'file') continue;
    if (linkable(o)) {
      links.add(o);
      continue;
    }
    if (alreadyThere(o, state)) {
      there.add(o);
      continue;
    }
    const data = blobs.get(o.digest) ?? store.getBlob(o.digest);
    if (!data) return undefined;
    blobs.set(o.digest, data);
  }
  for (const p of entry.deleted) {
    try {
      rmSync(p, { force: true });
    } catch {
      rmdirSync(p); // the line removed a directory (rmdir removes only empty ones; so do we)
    }
    state.forget(p);
  }
  // Directories made here get the line's mode at the end (after what goes inside:
  // a 0500 directory takes no new file), as `mkdir -m 700` or the line's umask
  // left them; mkdir alone would give the daemon's umask. One already there
  // keeps its mode, as after a plain `mkdir -p`.
  const newDirs = entry.outputs.filter((o) => o.kind === 'dir' && !lstatSync(o.path, { throwIfNoEntry: false }));
  // Linked files last, whatever order the stored entry gives: what they link to is written first.
  for (const o of [...entry.outputs].sort(restoreOrder)) {
    if (o.kind === 'file' && links.has(o) && restoreLink(o, state, ensureDir)) continue;
    if (o.kind === 'dir') {
      mkdirSync(o.path, { recursive: true });
      madeDirs.add(o.path);
    } else if (o.kind === 'link') {
      const tmp = `${o.path}.kbx-tmp.${process.pid}`;
      ensureDir(dirname(o.path));
      rmSync(tmp, { force: true });
      symlinkSync(o.target, tmp);
      renameSync(tmp, o.path);
      state.forget(o.path);
    } else if (!(there.has(o) && (!entry.deleted.length || alreadyThere(o, state)) && refreshInPlace(o, state))) {
      // Checked again after deletions: one may have removed it since.
      const data = blobs.get(o.digest) ?? store.getBlob(o.digest);
      if (!data) throw new Error(`blob ${o.digest} of ${o.path} vanished during the restore`);
      writeFileAtomic(o.path, data, o.mode);
      state.noteContent(o.path, o.digest);
    }
  }
  for (const o of newDirs) if (o.kind === 'dir') setDirMode(o.path, o.mode);
  return { stdout, stderr, entry };
}
