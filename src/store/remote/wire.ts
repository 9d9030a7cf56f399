// How records travel to and from a shared store (docs/PROTOCOL.md §7).
// Blobs go as they are, under their SHA-256 (bazel-remote checks that).
// Entries and path sets go as gzip'd JSON, the same JSON the local store
// keeps, under an `ac` key that hashes a kind tag with the fingerprint: an
// entry and a path set can never share a key, and a reader of another record
// format (a new tag) never finds the old one.
import { gunzipSync, gzipSync } from 'node:zlib';
import { sha256 } from '../../util/hash.js';
import { DecodeError, decodeEntry, decodePathSets, isStoreName } from '../decode.js';
import type { Entry, PathSets } from '../store.js';

export const WIRE_VERSION = 1;
const MAX_RECORD = 64 << 20;

export function pathSetsKey(weak: string): string {
  return sha256(`kbx-path-sets-${WIRE_VERSION}\0${weak}`);
}

export function entryKey(strong: string): string {
  return sha256(`kbx-entry-${WIRE_VERSION}\0${strong}`);
}

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

export interface BuildLines {
  /** Weak fingerprints in the order the build first looked them up. */
  lines: string[];
}

export function encodeRecord(rec: Entry | PathSets | BuildLines): Buffer {
  return gzipSync(JSON.stringify(rec), { level: 1 });
}

/** Throws (DecodeError, a zlib or JSON error) on anything that is not a sound record. */
function parse(data: Buffer): unknown {
  // maxOutputLength: a small hostile body cannot inflate into gigabytes.
  return JSON.parse(gunzipSync(data, { maxOutputLength: MAX_RECORD }).toString('utf8'));
}

export function decodeRemoteEntry(data: Buffer): Entry {
  return decodeEntry(parse(data));
}

export function decodeRemotePathSets(data: Buffer): PathSets {
  return decodePathSets(parse(data));
}

/** Throws unless it is `{ lines: [<64 hex>, …] }` with at most MAX_BUILD_LINES names. */
export function decodeBuildLines(data: Buffer): BuildLines {
  const x = parse(data) as { lines?: unknown } | null;
  if (typeof x !== 'object' || x === null || !Array.isArray(x.lines)) throw new DecodeError('lines', 'not an array');
  if (x.lines.length > MAX_BUILD_LINES) throw new DecodeError('lines', `more than ${MAX_BUILD_LINES}`);
  x.lines.forEach((w, i) => {
    if (!isStoreName(w)) throw new DecodeError(`lines[${i}]`, 'not 64 lowercase hex digits');
  });
  return { lines: x.lines as string[] };
}
