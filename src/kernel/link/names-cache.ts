// The previous link's kallsyms name tables, reused when the final symbol list
// is the same. The compressed names, their markers, the name-sorted sequence
// numbers and the token table depend only on the symbols' type letters and
// names in table order (nameTables() in kallsyms/tables.ts), not on where
// they sit; an edit that moves code but adds, removes or reorders no symbol,
// the usual incremental rebuild, gives the same list, and recomputing them is
// most of kallsyms' time. Only the offsets are computed again.
//
// The file lives in the object tree as `.tmp_vmlinux.kbx.names` (make clean
// removes `.tmp_*`). Its header holds the key (a digest of the list, the
// options and the byte order) and a digest of its body, so a stale, damaged
// or foreign file is recomputed, never used.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeAtomic } from '../../util/files.js';
import type { KallsymsOptions, SymEntry } from '../kallsyms/symbols.js';
import type { NameTables, Target } from '../kallsyms/tables.js';

export const NAMES_CACHE = '.tmp_vmlinux.kbx.names';
const MAGIC = 'kbx-kallsyms-names';
const FORMAT = 1;
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

/** The stored name tables for `key` and `numSyms` symbols, or undefined. */
export function loadNames(path: string, key: string, numSyms: number): NameTables | undefined {
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch {
    return undefined;
  }
  const nl = file.indexOf(10);
  if (nl < 0) return undefined;
  let head: { magic?: unknown; format?: unknown; key?: unknown; sizes?: unknown; digest?: unknown };
  try {
    head = JSON.parse(file.toString('utf8', 0, nl)) as typeof head;
  } catch {
    return undefined;
  }
  if (head.magic !== MAGIC || head.format !== FORMAT || head.key !== key) return undefined;
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
  // The shapes nameTables() gives these many symbols.
  if (t.markers.length !== ((numSyms + 255) >> 8) * 4 || t.seqsOfNames.length !== numSyms * 3 || t.tokenIndex.length !== 512) return undefined;
  return t;
}

/** Stores name tables under `key` (written aside and renamed: never half a file). */
export function saveNames(path: string, key: string, t: NameTables): void {
  const body = Buffer.concat(PARTS.map((p) => t[p]));
  const head = { magic: MAGIC, format: FORMAT, key, sizes: PARTS.map((p) => t[p].length), digest: createHash('sha256').update(body).digest('hex') };
  writeAtomic(path, Buffer.concat([Buffer.from(JSON.stringify(head) + '\n'), body]));
}
