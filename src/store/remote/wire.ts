// How records travel to and from a shared store (docs/PROTOCOL.md §7).
// Blobs go as they are, under their SHA-256 (bazel-remote checks that).
// Entries and path sets go as gzip'd JSON (record-codec.ts: the very bytes
// the local store keeps for a path set), under an `ac` key that hashes a kind
// tag with the fingerprint: an entry and a path set can never share a key,
// and a reader of another record format (a new tag) never finds the old one.
import { sha256 } from '../../util/hash.js';
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

export function decodeRemoteEntry(data: Buffer): Entry {
  return decodeEntryRecord(data);
}

export function decodeRemotePathSets(data: Buffer): PathSets {
  return decodePathSetsRecord(data);
}
