// How records travel to and from a shared store (docs/PROTOCOL.md §7).
// Blobs go as they are, under their SHA-256 (bazel-remote checks that).
// Entries and path sets go as gzip'd JSON (record-codec.ts: the very bytes
// the local store keeps for a path set), under an `ac` key that hashes a kind
// tag with the fingerprint: an entry and a path set can never share a key,
// and a reader of another record format (a new tag) never finds the old one.
import { gunzipSync, gzipSync } from 'node:zlib';
import { sha256 } from '../../util/hash.js';
import { DecodeError, isStoreName } from '../decode.js';
import { PATH_SETS_FORMAT, decodeEntryRecord, decodePathSetsRecord, encodeEntry, encodePathSets } from '../record-codec.js';
import type { Entry, PathSets } from '../store.js';

export const WIRE_VERSION = 1;

// The path set tag follows the record's format (2: tables, record-codec.ts), so
// a kbx reading one format never finds a record of the other.
export function pathSetsKey(weak: string): string {
  return sha256(`kbx-path-sets-${PATH_SETS_FORMAT}\0${weak}`);
}

export function entryKey(strong: string): string {
  return sha256(`kbx-entry-${WIRE_VERSION}\0${strong}`);
}

export { encodeEntry, encodePathSets };

/**
 * The list of commands a build looked up, named by the first one it looked
 * up (read-ahead.ts): the next build of the same tree, on any machine, starts
 * with the same lookup (make parses the same makefiles first).
 */
export function buildLinesKey(firstWeak: string): string {
  return sha256(`kbx-build-lines-${WIRE_VERSION}\0${firstWeak}`);
}

/** At most this many commands in a list (a kernel build looks up a few thousand). */
export const MAX_BUILD_LINES = 100_000;
// 100,000 names of 64 hex digits, quoted, with commas.
const MAX_BUILD_LINES_JSON = 8 << 20;

export interface BuildLines {
  /** Weak fingerprints in the order the build first looked them up. */
  lines: string[];
}

export function encodeBuildLines(rec: BuildLines): Buffer {
  return gzipSync(JSON.stringify(rec), { level: 1 });
}

export function decodeRemoteEntry(data: Buffer): Entry {
  return decodeEntryRecord(data);
}

export function decodeRemotePathSets(data: Buffer): PathSets {
  return decodePathSetsRecord(data);
}

/** Throws unless it is gzip'd `{ lines: [<64 hex>, …] }` with at most MAX_BUILD_LINES names. */
export function decodeBuildLines(data: Buffer): BuildLines {
  // maxOutputLength: a small hostile body cannot inflate into gigabytes.
  const x = JSON.parse(gunzipSync(data, { maxOutputLength: MAX_BUILD_LINES_JSON }).toString('utf8')) as { lines?: unknown } | null;
  if (typeof x !== 'object' || x === null || !Array.isArray(x.lines)) throw new DecodeError('lines', 'not an array');
  if (x.lines.length > MAX_BUILD_LINES) throw new DecodeError('lines', `more than ${MAX_BUILD_LINES}`);
  x.lines.forEach((w, i) => {
    if (!isStoreName(w)) throw new DecodeError(`lines[${i}]`, 'not 64 lowercase hex digits');
  });
  return { lines: x.lines as string[] };
}
