// The previous link's kallsyms name tables, reused when the final symbol list
// is the same. The compressed names, their markers, the name-sorted sequence
// numbers and the token table depend only on the symbols' type letters and
// names in table order (nameTables() in kallsyms/tables.ts), not on where
// they sit; an edit that moves code but adds, removes or reorders no symbol,
// the usual incremental rebuild, gives the same list, and recomputing them is
// most of kallsyms' time. Only the offsets are computed again.
//
// When the list holds the same symbols in another order (symbols at one
// address tie differently when something before them changes size: with
// BTF, __stop_BTF and its neighbour swap from link to link), the compressed
// names are still the C tool's for this list, as compression depends only
// on which names there are; they are put in the new order and only the
// markers and the name order are computed (reorderNames).
//
// The file lives in the object tree as `.tmp_vmlinux.kbx.names` (make clean
// removes `.tmp_*`). Its header holds the key (a digest of the list, the
// options and the byte order) and a digest of its body, so a stale, damaged
// or foreign file is recomputed, never used.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeAtomic } from '../../util/files.js';
import type { KallsymsOptions, SymEntry } from '../kallsyms/symbols.js';
import { assembleNameTables, type NameTables, type Target } from '../kallsyms/tables.js';

export const NAMES_CACHE = '.tmp_vmlinux.kbx.names';
const MAGIC = 'kbx-kallsyms-names';
const FORMAT = 2;
const PARTS = ['names', 'markers', 'seqsOfNames', 'tokenTable', 'tokenIndex'] as const;

/** Pure: the key of a symbol list (table order), everything nameTables() reads of it. */
export function namesKey(syms: readonly SymEntry[], opts: KallsymsOptions, target: Target): string {
  const parts: string[] = new Array<string>(syms.length);
  for (let i = 0; i < syms.length; i++) parts[i] = String.fromCharCode(syms[i]!.type) + syms[i]!.name;
  return createHash('sha256')
    .update(JSON.stringify({ format: FORMAT, ltoClang: !!opts.ltoClang, endian: target.endian, n: syms.length }))
    .update(parts.join('\n'), 'latin1')
    .digest('hex');
}

interface Stored {
  key: string;
  endian: string;
  tables: NameTables;
}

function readStored(path: string): Stored | undefined {
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch {
    return undefined;
  }
  const nl = file.indexOf(10);
  if (nl < 0) return undefined;
  let head: { magic?: unknown; format?: unknown; key?: unknown; endian?: unknown; sizes?: unknown; digest?: unknown };
  try {
    head = JSON.parse(file.toString('utf8', 0, nl)) as typeof head;
  } catch {
    return undefined;
  }
  if (head.magic !== MAGIC || head.format !== FORMAT || typeof head.key !== 'string' || typeof head.endian !== 'string') return undefined;
  const sizes = head.sizes;
  if (!Array.isArray(sizes) || sizes.length !== PARTS.length || !sizes.every((n) => Number.isSafeInteger(n) && n >= 0)) return undefined;
  const body = file.subarray(nl + 1);
  if (body.length !== (sizes as number[]).reduce((a, b) => a + b, 0)) return undefined;
  if (createHash('sha256').update(body).digest('hex') !== head.digest) return undefined;
  const out: Partial<Record<(typeof PARTS)[number], Uint8Array>> = {};
  let off = 0;
  PARTS.forEach((name, i) => {
    out[name] = body.subarray(off, off + (sizes[i] as number));
    off += sizes[i] as number;
  });
  const t = out as NameTables;
  if (t.tokenIndex.length !== 512 || t.markers.length % 4 !== 0 || t.seqsOfNames.length % 3 !== 0) return undefined;
  return { key: head.key, endian: head.endian, tables: t };
}

/** The shapes nameTables() gives `numSyms` symbols. */
function fits(t: NameTables, numSyms: number): boolean {
  return t.markers.length === ((numSyms + 255) >> 8) * 4 && t.seqsOfNames.length === numSyms * 3;
}

/** The stored name tables for `key` and `numSyms` symbols, or undefined. */
export function loadNames(path: string, key: string, numSyms: number): NameTables | undefined {
  const s = readStored(path);
  return s && s.key === key && fits(s.tables, numSyms) ? s.tables : undefined;
}

/**
 * The stored name tables put in the order of `syms`, when the file holds
 * exactly the same symbols (type letters and names, as many of each) for the
 * same byte order; undefined otherwise.
 */
export function reorderNames(path: string, syms: readonly SymEntry[], opts: KallsymsOptions, target: Target): NameTables | undefined {
  const s = readStored(path);
  if (!s || s.endian !== target.endian || !fits(s.tables, syms.length)) return undefined;
  const { names, tokenTable } = s.tables;
  // The 256 tokens, in code order, as latin1 strings.
  const tokens: string[] = [];
  for (let at = 0; tokens.length < 256; ) {
    const end = tokenTable.indexOf(0, at);
    if (end < 0) return undefined;
    tokens.push(Buffer.from(tokenTable.buffer, tokenTable.byteOffset + at, end - at).toString('latin1'));
    at = end + 1;
  }
  // Each stored symbol's expansion (type letter and name) and compressed bytes.
  const kept = new Map<string, { bytes: Uint8Array; left: number }>();
  let count = 0;
  for (let at = 0; at < names.length; count++) {
    let len = names[at++]!;
    if (len & 0x80) len = (len & 0x7f) | (names[at++]! << 7);
    const bytes = names.subarray(at, at + len);
    if (bytes.length !== len) return undefined;
    at += len;
    let text = '';
    for (const b of bytes) text += tokens[b]!;
    const k = kept.get(text);
    if (k) k.left++;
    else kept.set(text, { bytes, left: 1 });
  }
  if (count !== syms.length) return undefined;
  const order: Uint8Array[] = new Array<Uint8Array>(syms.length);
  for (let i = 0; i < syms.length; i++) {
    const k = kept.get(String.fromCharCode(syms[i]!.type) + syms[i]!.name);
    if (!k || k.left === 0) return undefined; // another symbol, or one more of it
    k.left--;
    order[i] = k.bytes;
  }
  return assembleNameTables(syms, opts, target, (i) => order[i]!, s.tables);
}

/** Stores name tables under `key` (written aside and renamed: never half a file). */
export function saveNames(path: string, key: string, endian: Target['endian'], t: NameTables): void {
  const body = Buffer.concat(PARTS.map((p) => t[p]));
  const head = { magic: MAGIC, format: FORMAT, key, endian, sizes: PARTS.map((p) => t[p].length), digest: createHash('sha256').update(body).digest('hex') };
  writeAtomic(path, Buffer.concat([Buffer.from(JSON.stringify(head) + '\n'), body]));
}
