// The kallsyms table with room to spare: every table gets a slot sized from
// the estimate plus a margin, the slots are laid out as the C tool lays out
// its tables (in .rodata, in its version's order, each word-aligned), and the final
// tables are later written into the same slots, zero-padded, so no address
// in vmlinux moves. Pure: sizes and bytes in, bytes and verdicts out.

import type { KallsymsTables } from '../kallsyms/tables.js';
import type { TableName } from '../kallsyms/version.js';
import { layoutTables } from '../kallsyms/tables.js';

export interface Margin {
  /** Extra symbols (sizes kallsyms_offsets/addresses, markers, seqs_of_names). */
  symbols: number;
  /** Extra bytes of kallsyms_names: at least `namesMin`, and `namesPermille` of the estimate. */
  namesPermille: number;
  namesMin: number;
  /** Extra bytes of kallsyms_token_table. */
  tokenTable: number;
}

// The names margin covers the estimate's few wrong type letters: kallsyms' greedy token
// table turns a handful of changed letters into ~0.1 % more or less names (measured).
export const DEFAULT_MARGIN: Margin = { symbols: 16, namesPermille: 5, namesMin: 128, tokenTable: 128 };

export interface Slot {
  name: string;
  /** Offset from the first table. */
  offset: number;
  size: number;
}

export interface Reservation {
  wordSize: 4 | 8;
  slots: Slot[];
  /** Bytes from the first slot to the end of the last. */
  total: number;
}

const align = (n: number, w: number): number => Math.ceil(n / w) * w;

/**
 * Slots for tables like `est` (same options, target and kernel version),
 * plus the margin, in the order its version's C tool writes the tables
 * (6.1: offsets first; 6.12: offsets after the token index).
 */
export function reserve(est: KallsymsTables, m: Margin, namesExtra = 0): Reservation {
  const w = est.target.wordSize;
  const n = est.numSyms + m.symbols;
  const names = est.names.length + Math.max(m.namesMin, Math.ceil((est.names.length * m.namesPermille) / 1000)) + namesExtra;
  const sizes: Record<TableName, number> = {
    kallsyms_addresses: n * w,
    kallsyms_offsets: n * 4,
    kallsyms_relative_base: w,
    kallsyms_num_syms: 4,
    kallsyms_names: Math.max(0, names),
    kallsyms_markers: ((n + 255) >> 8) * 4,
    kallsyms_seqs_of_names: n * 3,
    kallsyms_token_table: est.tokenTable.length + m.tokenTable,
    kallsyms_token_index: 256 * 2,
  };
  const slots: Slot[] = [];
  let off = 0;
  for (const name of est.version.tableOrder({ baseRelative: est.baseRelative })) {
    const size = align(sizes[name], w);
    slots.push({ name, offset: off, size });
    off += size;
  }
  return { wordSize: w, slots, total: off };
}

/**
 * A reservation that holds `t` (with the margin) and everything `r` held:
 * what the next link reserves after `t` did not fit `r`, so that the same
 * symbols do not fall back to the script again.
 */
export function grow(r: Reservation, t: KallsymsTables, m: Margin, namesExtra = 0): Reservation {
  const need = reserve(t, m, namesExtra);
  const bytes = tableBytes(t);
  const slots: Slot[] = [];
  let off = 0;
  for (const s of need.slots) {
    const size = Math.max(s.size, r.slots.find((x) => x.name === s.name)?.size ?? 0, align(bytes.get(s.name)?.length ?? 0, need.wordSize));
    slots.push({ name: s.name, offset: off, size });
    off += size;
  }
  return { wordSize: need.wordSize, slots, total: off };
}

/** Per table, the bytes it needs now (laid out as the C tool would). */
export function tableBytes(t: KallsymsTables): Map<string, Uint8Array> {
  const { image, tables } = layoutTables(t);
  return new Map(tables.map((x) => [x.name, image.subarray(x.offset, x.offset + x.size)]));
}

/** Why `t` does not fit the reservation, or undefined when every table fits its slot. */
export function misfit(t: KallsymsTables, r: Reservation): string | undefined {
  const bytes = tableBytes(t);
  for (const s of r.slots) {
    const b = bytes.get(s.name);
    if (!b) return `the table has no ${s.name} but the reservation does`;
    if (b.length > s.size) return `${s.name} needs ${b.length} bytes, ${s.size} were reserved`;
  }
  for (const name of bytes.keys()) if (!r.slots.some((s) => s.name === name)) return `no slot was reserved for ${name}`;
  return undefined;
}

/** The whole reserved area with `t` written into its slots, zero-padded. */
export function reservedImage(t: KallsymsTables, r: Reservation): Buffer {
  const why = misfit(t, r);
  if (why) throw new Error(`reservedImage: ${why}`);
  const bytes = tableBytes(t);
  const image = Buffer.alloc(r.total);
  for (const s of r.slots) image.set(bytes.get(s.name)!, s.offset);
  return image;
}

/**
 * The .S that places the reserved area in .rodata under the C tool's symbol
 * names. kallsyms_relative_base stays `_text + n` so that a relocatable
 * kernel keeps its relocation; everything else comes from the blob.
 */
export function reservedAsm(r: Reservation, blobPath: string, relativeBaseFromText: bigint): string {
  const ptr = r.wordSize === 8 ? '.quad' : '.long';
  const path = `"${blobPath.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  let asm = `/* kallsyms tables reserved by kbx link-vmlinux; data in ${blobPath} */\n\t.section .rodata, "a"\n`;
  for (const s of r.slots) {
    asm += `\t.globl ${s.name}\n\t.balign ${r.wordSize}\n${s.name}:\n`;
    if (s.name === 'kallsyms_relative_base') {
      const d = relativeBaseFromText;
      asm += d >= 0n ? `\t${ptr}\t_text + 0x${d.toString(16)}\n` : `\t${ptr}\t_text - 0x${(-d).toString(16)}\n`;
    } else if (s.size > 0) {
      asm += `\t.incbin ${path}, ${s.offset}, ${s.size}\n`;
    }
  }
  return asm;
}

export interface SlotUse {
  reservedBytes: number;
  tableBytes: number;
  slots: Record<string, [number, number]>;
}

export function slotUse(t: KallsymsTables, r: Reservation): SlotUse {
  const bytes = tableBytes(t);
  const slots: Record<string, [number, number]> = {};
  let used = 0;
  for (const s of r.slots) {
    const n = bytes.get(s.name)?.length ?? 0;
    slots[s.name] = [s.size, n];
    used += n;
  }
  return { reservedBytes: r.total, tableBytes: used, slots };
}
