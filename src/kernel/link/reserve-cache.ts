// The previous single link's reservation, reused when the link's predicted
// symbol set is the same. Sizing the reservation compresses the predicted
// names (the token table is learned from all of them), which is most of the
// prediction's time; an edit that changes code but no symbol, the usual
// incremental rebuild, predicts the same set, and the same set always gets
// the same reservation. The file lives in the object tree as
// `.tmp_vmlinux.kbx.reserve.json` (make clean removes `.tmp_*`).
//
// A stale or damaged file costs nothing but the recomputation: it is read
// only when its key matches and its slots are well formed, and a reservation
// that is too small is caught like any other misfit.

import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { KallsymsOptions, SymEntry } from '../kallsyms/symbols.js';
import type { Target } from '../kallsyms/tables.js';
import type { Margin, Reservation } from './reserve.js';

export const RESERVE_CACHE = '.tmp_vmlinux.kbx.reserve.json';
const FORMAT = 1;

/** Pure: the key of a prediction, everything the reservation is computed from. */
export function reservationKey(symbols: readonly SymEntry[], opts: KallsymsOptions, target: Target, margin: Margin, namesExtra: number): string {
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      format: FORMAT,
      opts: [!!opts.allSymbols, !!opts.absolutePercpu, !!opts.baseRelative, !!opts.ltoClang],
      target,
      margin,
      namesExtra,
      n: symbols.length,
    }),
  );
  // type letter and name per symbol: what the estimate's table sizes depend on
  const parts: string[] = new Array<string>(symbols.length);
  for (let i = 0; i < symbols.length; i++) parts[i] = String.fromCharCode(symbols[i]!.type) + symbols[i]!.name;
  h.update(parts.join('\n'), 'latin1');
  return h.digest('hex');
}

function wellFormed(r: unknown): r is Reservation {
  if (typeof r !== 'object' || r === null) return false;
  const x = r as Partial<Reservation>;
  if ((x.wordSize !== 4 && x.wordSize !== 8) || !Array.isArray(x.slots) || !Number.isSafeInteger(x.total)) return false;
  let off = 0;
  for (const s of x.slots as unknown[]) {
    const slot = s as { name?: unknown; offset?: unknown; size?: unknown };
    if (typeof slot.name !== 'string' || slot.offset !== off || !Number.isSafeInteger(slot.size) || (slot.size as number) < 0) return false;
    off += slot.size as number;
  }
  return off === x.total;
}

/** The stored reservation for `key`, or undefined. */
export function loadReservation(path: string, key: string): Reservation | undefined {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as { format?: unknown; key?: unknown; reservation?: unknown };
    if (j.format !== FORMAT || j.key !== key || !wellFormed(j.reservation)) return undefined;
    return j.reservation;
  } catch {
    return undefined;
  }
}

/** Stores the reservation under `key` (written aside and renamed: never half a file). */
export function saveReservation(path: string, key: string, reservation: Reservation): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ format: FORMAT, key, reservation }) + '\n');
  renameSync(tmp, path);
}
