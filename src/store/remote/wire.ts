// How records travel to and from a shared store (docs/PROTOCOL.md §7).
// Blobs go as they are, under their SHA-256 (bazel-remote checks that).
// Entries and path sets go as gzip'd JSON, the same JSON the local store
// keeps, under an `ac` key that hashes a kind tag with the fingerprint: an
// entry and a path set can never share a key, and a reader of another record
// format (a new tag) never finds the old one.
import { gunzipSync, gzipSync } from 'node:zlib';
import { sha256 } from '../../util/hash.js';
import { decodeEntry, decodePathSets } from '../decode.js';
import type { Entry, PathSets } from '../store.js';

export const WIRE_VERSION = 1;
const MAX_RECORD = 64 << 20;

export function pathSetsKey(weak: string): string {
  return sha256(`kbx-path-sets-${WIRE_VERSION}\0${weak}`);
}

export function entryKey(strong: string): string {
  return sha256(`kbx-entry-${WIRE_VERSION}\0${strong}`);
}

export function encodeRecord(rec: Entry | PathSets): Buffer {
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
