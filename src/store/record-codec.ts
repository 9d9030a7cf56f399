// The bytes of an entry or path set record, in the local store and on the
// shared-store wire alike (docs/PROTOCOL.md §7): the gzip of its JSON.
//
// Path set records were plain JSON files in the local store (format 1,
// `<weak>.p`): 386 KB to 1.4 MB each on git, 2.7 times the stored file
// contents. Measured on a Linux tinyconfig store (1,845 records, 82.5 MB of
// JSON), gzip level 1 makes them 15.3 MB; a binary form with each path and
// digest written once per record and digests as 32 bytes, deflated, made
// 15.7 MB, and decoded 3.5 times slower than JSON.parse: within one record
// almost every path is different (a compile's headers and probes), so
// interning saves nothing deflate does not, and the hex digests compress to
// about their binary size. What repeats is across records, which a
// per-record format cannot share. So: gzip'd JSON, the wire's form.
import { gunzipSync, gzipSync } from 'node:zlib';
import { decodeEntry, decodePathSets } from './decode.js';
import type { Entry, PathSets } from './store.js';

const MAX_RECORD = 64 << 20;

export function encodeRecord(rec: Entry | PathSets): Buffer {
  return gzipSync(JSON.stringify(rec), { level: 1 });
}

/** Throws (DecodeError, a zlib or JSON error) on anything that is not a sound record. */
function parse(data: Buffer): unknown {
  // maxOutputLength: a small hostile body cannot inflate into gigabytes.
  return JSON.parse(gunzipSync(data, { maxOutputLength: MAX_RECORD }).toString('utf8'));
}

export function decodeEntryRecord(data: Buffer): Entry {
  return decodeEntry(parse(data));
}

export function decodePathSetsRecord(data: Buffer): PathSets {
  return decodePathSets(parse(data));
}
