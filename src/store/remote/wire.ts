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

/** Format of the record under pathSetsKey: a bundle (below) around the path set record. */
export const BUNDLE_FORMAT = 1;

// The path set tag follows the record's format (2: tables, record-codec.ts)
// and the bundle's, so a kbx reading one format never finds a record of another.
export function pathSetsKey(weak: string): string {
  return sha256(`kbx-path-sets-${PATH_SETS_FORMAT}-bundle-${BUNDLE_FORMAT}\0${weak}`);
}

/**
 * What a shared store holds under pathSetsKey: the path set record with, for
 * a fresh runner's hit in one request, the entry records of its sets and the
 * small blobs of the newest set's entry. Each is as untrusted as the record
 * it travels with: an entry passes decodeRemoteEntry, a blob must hash to its
 * digest before it is written anywhere. What is not inline is fetched under
 * its own key (entryKey, the blob's digest), which is written too.
 */
export interface Bundle {
  /** The path set record's bytes (record-codec.ts). */
  pathSets: Buffer;
  /** Entry records, by strong fingerprint. */
  entries: Map<string, Buffer>;
  /** Blobs, by digest (not verified by decodeBundle). */
  blobs: Map<string, Buffer>;
}

// 'KBXB' and the format byte; then u32 length + path set record; then u16
// count of (32-byte strong, u32 length, entry record); then u16 count of
// (32-byte digest, u32 length, blob). Integers are big-endian.
const BUNDLE_MAGIC = Buffer.from([0x4b, 0x42, 0x58, 0x42, BUNDLE_FORMAT]);
/** Blobs inlined for one set: each at most this big, together at most INLINE_TOTAL_BYTES. */
export const INLINE_BLOB_BYTES = 16 << 10;
export const INLINE_TOTAL_BYTES = 64 << 10;
const MAX_INLINE = 256;

export function encodeBundle(b: Bundle): Buffer {
  const parts: Buffer[] = [BUNDLE_MAGIC, u32(b.pathSets.length), b.pathSets];
  for (const map of [b.entries, b.blobs]) {
    const items = [...map].slice(0, MAX_INLINE);
    const n = Buffer.alloc(2);
    n.writeUInt16BE(items.length);
    parts.push(n);
    for (const [name, data] of items) parts.push(Buffer.from(name, 'hex'), u32(data.length), data);
  }
  return Buffer.concat(parts);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Throws DecodeError unless every length and count is within the bytes, which it ends at exactly. */
export function decodeBundle(data: Buffer): Bundle {
  let at = 0;
  const take = (n: number, what: string): Buffer => {
    if (n > data.length - at) throw new DecodeError('bundle', `${what} runs past the end`);
    const b = data.subarray(at, at + n);
    at += n;
    return b;
  };
  if (!take(BUNDLE_MAGIC.length, 'header').equals(BUNDLE_MAGIC)) throw new DecodeError('bundle', `not a bundle of format ${BUNDLE_FORMAT}`);
  const pathSets = take(take(4, 'length').readUInt32BE(0), 'path set record');
  const table = (what: string): Map<string, Buffer> => {
    const n = take(2, `${what} count`).readUInt16BE(0);
    if (n > MAX_INLINE) throw new DecodeError('bundle', `${n} ${what === 'entry' ? 'entries' : 'blobs'}, more than ${MAX_INLINE}`);
    const map = new Map<string, Buffer>();
    for (let i = 0; i < n; i++) {
      const name = take(32, what).toString('hex');
      map.set(name, take(take(4, 'length').readUInt32BE(0), what));
    }
    return map;
  };
  const entries = table('entry');
  const blobs = table('blob');
  if (at !== data.length) throw new DecodeError('bundle', `${data.length - at} bytes after its end`);
  return { pathSets, entries, blobs };
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
