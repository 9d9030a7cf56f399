// The bytes of an entry or path set record, in the local store and on the
// shared-store wire alike (docs/PROTOCOL.md §7): gzip'd JSON.
//
// A path set record (format 2) lists each distinct path and each distinct
// value once, in two tables, and each set as its kinds (one letter per
// input) and the differences between consecutive table indexes. Format 1 was
// the plain JSON of `PathSets`: 386 KB to 1.4 MB a command on git, 2.7 times
// the stored file contents, because a command keeps up to 16 sets that list
// the same few hundred paths, each set longer than gzip's 32 KB window.
// Within one set paths do not repeat, so a table gains nothing there; and a
// hex digest gzips to about its 32 bytes, so digests stay hex (measured on a
// Linux tinyconfig store: a binary form with 32-byte digests was no smaller
// and decoded 3.5 times slower than JSON.parse).
//
// What a store hands back is untrusted: every index is checked against its
// table, and the record then passes decodePathSets field by field.
import { gunzipSync, gzipSync } from 'node:zlib';
import { DecodeError, decodeEntry, decodePathSets } from './decode.js';
import type { Entry, PathSets } from './store.js';
import type { PathEntry } from '../fingerprint/key.js';

const MAX_RECORD = 64 << 20;

/** Path set record format: 2 is the tables below (1: the plain JSON of PathSets). */
export const PATH_SETS_FORMAT = 2;

// One letter per entry kind; decode.ts refuses any other kind, so no other is written.
const KIND_LETTER = new Map<string, string>([['c', 'c'], ['e', 'e'], ['mtime', 'm'], ['date', 'd'], ['root', 'r'], ['who', 'w'], ['env', 'v'], ['exec', 'x']]);
const LETTER_KIND = new Map<string, PathEntry['k']>([...KIND_LETTER].map(([k, l]) => [l, k as PathEntry['k']]));

interface TabledSet {
  strong: string;
  /** One letter per input: its kind. */
  k: string;
  /** Index into `paths` of each input, as the difference from the previous input's (the first from 0). */
  p: number[];
  /** The same for `values`. */
  v: number[];
}

interface TabledRecord {
  format: number;
  command: string;
  cwd: string;
  uncacheable?: string;
  rules?: number;
  paths: string[];
  values: string[];
  sets: TabledSet[];
}

function gzip(x: unknown): Buffer {
  return gzipSync(JSON.stringify(x), { level: 1 });
}

/** Throws (a zlib or JSON error) on anything that is not gzip'd JSON. */
function parse(data: Buffer): unknown {
  // maxOutputLength: a small hostile body cannot inflate into gigabytes.
  return JSON.parse(gunzipSync(data, { maxOutputLength: MAX_RECORD }).toString('utf8'));
}

export function encodeEntry(entry: Entry): Buffer {
  return gzip(entry);
}

export function decodeEntryRecord(data: Buffer): Entry {
  return decodeEntry(parse(data));
}

export function encodePathSets(rec: PathSets): Buffer {
  const tables = { paths: new Map<string, number>(), values: new Map<string, number>() };
  const id = (table: Map<string, number>, s: string) => {
    let i = table.get(s);
    if (i === undefined) table.set(s, (i = table.size));
    return i;
  };
  const sets = rec.sets.map((s): TabledSet => {
    let k = '';
    const p: number[] = [];
    const v: number[] = [];
    let lastP = 0;
    let lastV = 0;
    for (const e of s.entries) {
      const letter = KIND_LETTER.get(e.k);
      if (letter === undefined) throw new Error(`path set entry of unknown kind ${e.k}`);
      k += letter;
      const pi = id(tables.paths, e.p);
      const vi = id(tables.values, e.v);
      p.push(pi - lastP);
      v.push(vi - lastV);
      lastP = pi;
      lastV = vi;
    }
    return { strong: s.strong, k, p, v };
  });
  const out: TabledRecord = { format: PATH_SETS_FORMAT, command: rec.command, cwd: rec.cwd, paths: [...tables.paths.keys()], values: [...tables.values.keys()], sets };
  if (rec.uncacheable !== undefined) out.uncacheable = rec.uncacheable;
  if (rec.rules !== undefined) out.rules = rec.rules;
  return gzip(out);
}

function fail(where: string, why: string): never {
  throw new DecodeError(where, why);
}

function strings(x: unknown, where: string): string[] {
  if (!Array.isArray(x)) fail(where, 'not an array');
  for (let i = 0; i < x.length; i++) if (typeof x[i] !== 'string') fail(`${where}[${i}]`, 'not a string');
  return x as string[];
}

/** The table entries a list of index differences names; throws on one outside the table. */
function indexes(x: unknown, count: number, table: string[], where: string): string[] {
  if (!Array.isArray(x) || x.length !== count) fail(where, `not an array of ${count} numbers`);
  const out = new Array<string>(count);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const d = x[i];
    if (typeof d !== 'number' || !Number.isInteger(d)) fail(`${where}[${i}]`, 'not an integer');
    at += d;
    if (at < 0 || at >= table.length) fail(`${where}[${i}]`, 'outside its table');
    out[i] = table[at]!;
  }
  return out;
}

/** Decodes a path set record's bytes; throws DecodeError (or a zlib or JSON error) on anything else, a record of format 1 included. */
export function decodePathSetsRecord(data: Buffer): PathSets {
  const r = parse(data) as Partial<TabledRecord> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) fail('record', 'not an object');
  if (r.format !== PATH_SETS_FORMAT) fail('format', `not ${PATH_SETS_FORMAT}`);
  const paths = strings(r.paths, 'paths');
  const values = strings(r.values, 'values');
  if (!Array.isArray(r.sets)) fail('sets', 'not an array');
  const sets = r.sets.map((s: Partial<TabledSet> | null, i) => {
    if (typeof s !== 'object' || s === null) fail(`sets[${i}]`, 'not an object');
    if (typeof s.k !== 'string') fail(`sets[${i}].k`, 'not a string');
    const n = s.k.length;
    const p = indexes(s.p, n, paths, `sets[${i}].p`);
    const v = indexes(s.v, n, values, `sets[${i}].v`);
    const entries = new Array<PathEntry>(n);
    for (let j = 0; j < n; j++) {
      const k = LETTER_KIND.get(s.k[j]!);
      if (k === undefined) fail(`sets[${i}].k[${j}]`, 'not a known kind');
      entries[j] = { k, p: p[j]!, v: v[j]! };
    }
    return { strong: s.strong, entries };
  });
  // The fields as in format 1, checked by the one decoder.
  return decodePathSets({ command: r.command, cwd: r.cwd, uncacheable: r.uncacheable, rules: r.rules, sets });
}
