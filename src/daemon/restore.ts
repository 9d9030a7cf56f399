// Puts a cache entry's outputs in place. Every blob is fetched and verified
// before the first file is touched, so a corrupt or evicted blob leaves the
// tree as it was and the line simply runs. Files are written under a temporary
// name and renamed: a reader never sees half an object, and restored files are
// new inodes with a fresh mtime (never hard links: later lines modify outputs
// in place).
import { closeSync, fchmodSync, mkdirSync, openSync, renameSync, rmSync, rmdirSync, symlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Entry, Store } from '../store/store.js';
import type { FileState } from '../fingerprint/file-state.js';

export interface Restored {
  stdout: Buffer;
  stderr: Buffer;
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

function writeFileAtomic(path: string, data: Buffer, mode: number): void {
  const tmp = `${path}.kbx-tmp.${process.pid}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w', mode & 0o7777);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    madeDirs.delete(dirname(path)); // removed since (make clean): make it again
    ensureDir(dirname(path));
    fd = openSync(tmp, 'w', mode & 0o7777);
  }
  try {
    writeSync(fd, data);
    fchmodSync(fd, mode & 0o7777); // open's mode is filtered by the umask
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Returns undefined (nothing written) when a blob is missing or corrupt. Throws on a write error. */
export function restoreEntry(store: Store, state: FileState, entry: Entry): Restored | undefined {
  const stdout = blobOrEmpty(store, entry.stdout);
  const stderr = blobOrEmpty(store, entry.stderr);
  if (!stdout || !stderr) return undefined;
  const blobs = new Map<string, Buffer>();
  for (const o of entry.outputs) {
    if (o.kind !== 'file') continue;
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
  for (const o of entry.outputs) {
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
    } else {
      writeFileAtomic(o.path, blobs.get(o.digest)!, o.mode);
      state.noteContent(o.path, o.digest);
    }
  }
  return { stdout, stderr };
}
