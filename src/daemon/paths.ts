// Where a daemon for a given KBX_DIR listens, logs and keeps its files. One
// daemon per store directory. Everything another local user could plant or
// bind there would be trusted input (DESIGN.md §5), so the socket, the trace
// logs and the build files live in directories only this user can enter,
// checked with lstat as ssh-agent does; a directory that fails is never used.
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KbxError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';

// A Unix socket address holds 108 bytes with its NUL; leave room.
const MAX_SOCKET_PATH = 100;

const uid = (): number => process.getuid?.() ?? 0;

/**
 * The daemon's socket: `$KBX_DIR/run/daemon.sock`, or when that is too long
 * for a socket address, `$TMPDIR/kbx-<uid>/<hash of KBX_DIR>.sock`. Either
 * directory must pass privateDirProblem before anything connects or binds.
 */
export function socketPath(dir: string): string {
  const inDir = join(dir, 'run', 'daemon.sock');
  if (Buffer.byteLength(inDir) < MAX_SOCKET_PATH) return inDir;
  const inTmp = join(tmpdir(), `kbx-${uid()}`, `${sha256(dir).slice(0, 16)}.sock`);
  if (Buffer.byteLength(inTmp) < MAX_SOCKET_PATH) return inTmp;
  throw new KbxError(
    'KBX_SOCKET_PATH',
    `no socket path short enough for ${dir}: ${inTmp} is longer than ${MAX_SOCKET_PATH} bytes`,
    'set TMPDIR (or KBX_DIR) to a shorter directory',
  );
}

/** Trace logs of running lines; the daemon removes only files named like its own there. */
export function tracesDir(dir: string): string {
  return join(dir, 'traces');
}

export const TRACE_LOG_NAME = /^trace-(\d+)-\d+\.log$/;

/** A build id as `kbx make` makes them (base-36 time, pid): never a path. */
export const BUILD_ID = /^[0-9a-z]{1,16}-\d{1,10}$/;

/** `$KBX_DIR/builds/<id>.<ext>`: the counters and events files of one build, or undefined for an id kbx never makes. */
export function buildFile(dir: string, buildId: unknown, ext: 'events' | 'counters'): string | undefined {
  return typeof buildId === 'string' && BUILD_ID.test(buildId) ? join(dir, 'builds', `${buildId}.${ext}`) : undefined;
}

export function daemonLogPath(dir: string): string {
  return join(dir, 'daemon.log');
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

/**
 * Why `path` is not a directory only this user can enter, or undefined if it
 * is: it must be a real directory (lstat: not a symlink) owned by us with no
 * group or other bits, in a parent that others cannot rename it out of
 * (owned by us or root, and not writable by others unless sticky, as /tmp).
 */
export function privateDirProblem(path: string): string | undefined {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    return `cannot be examined (${(err as NodeJS.ErrnoException).code})`;
  }
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== uid()) return `is owned by uid ${st.uid}, not by you (uid ${uid()})`;
  if (st.mode & 0o077) return `has mode ${octal(st.mode)}: other users have access to it (want 0700)`;
  return parentProblem(path);
}

function parentProblem(path: string): string | undefined {
  const parent = dirname(path);
  let st: Stats;
  try {
    st = statSync(parent);
  } catch (err) {
    return `is in ${parent}, which cannot be examined (${(err as NodeJS.ErrnoException).code})`;
  }
  if (st.uid !== uid() && st.uid !== 0) return `is in ${parent}, owned by uid ${st.uid}, who can replace it`;
  if (st.mode & 0o022 && !(st.mode & 0o1000)) return `is in ${parent} (mode ${octal(st.mode)}), where others can replace it`;
  return undefined;
}

function unsafe(path: string, problem: string): KbxError {
  return new KbxError(
    'KBX_UNSAFE_DIR',
    `${path} ${problem}; kbx keeps its socket and build files only in a directory no other user can write`,
    `remove ${path} (kbx makes it again, mode 0700), or point KBX_DIR at a directory only you can write`,
  );
}

/** Throws KbxError unless `path` is a private directory (privateDirProblem). Changes nothing. */
export function checkPrivateDir(path: string): void {
  const problem = privateDirProblem(path);
  if (problem) throw unsafe(path, problem);
}

/**
 * Makes `path` a private directory: creates it 0700 if absent (its missing
 * parents too); one of ours that others may only read or enter is narrowed
 * to 0700 (kbx before this made its directories 0755). Anything else throws.
 */
export function makePrivateDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw unsafe(path, `cannot be made (${(err as Error).message})`);
  }
  let st: Stats | undefined;
  try {
    st = lstatSync(path);
  } catch {
    /* reported below */
  }
  // mkdir's mode is filtered by the umask; and a directory that only lets
  // others read is ours to close. Never one that others can write to.
  if (st?.isDirectory() && st.uid === uid() && (st.mode & 0o077) && !(st.mode & 0o022) && !parentProblem(path)) chmodSync(path, 0o700);
  checkPrivateDir(path);
}

/**
 * Creates KBX_DIR 0700 when it does not exist (build records hold each line's
 * whole environment), leaves an existing one's mode alone (KBX_DIR=$HOME),
 * and makes builds/ and traces/ private.
 */
export function prepareKbxDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  makePrivateDir(join(dir, 'builds'));
  makePrivateDir(tracesDir(dir));
}

/**
 * Identifies the code a daemon runs: a digest of the compiled files' names,
 * sizes, inodes and mtimes (nanoseconds). A CLI that finds a daemon with a
 * different id restarts it, so a rebuilt kbx never talks to an old daemon.
 * Every kbx make computes it: stats, not the 1 MB of code read and hashed
 * (25 ms); a rebuild that writes the same bytes again replaces the daemon once.
 */
export function codeId(): string {
  const distSrc = join(dirname(fileURLToPath(import.meta.url)), '..');
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) {
        const st = statSync(p, { bigint: true });
        h.update(`${e.name}\0${st.size}\0${st.ino}\0${st.mtimeNs}\0`);
      }
    }
  };
  walk(distSrc);
  return h.digest('hex').slice(0, 16);
}
