// The previous single link's reservation, reused when the link's predicted
// symbol set is the same, or when the objects it is predicted from have the
// same symbol shape (symbol-shape.ts; then nothing is predicted at all). Sizing the reservation compresses the predicted
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
import { readFileSync } from 'node:fs';
import { writeAtomic } from '../../util/files.js';
import type { KallsymsOptions, SymEntry } from '../kallsyms/symbols.js';
import type { Target } from '../kallsyms/tables.js';
import type { Margin, Reservation } from './reserve.js';

export const RESERVE_CACHE = '.tmp_vmlinux.kbx.reserve.json';
const FORMAT = 2;

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

export interface StoredReservation {
  reservation: Reservation;
  target: Target;
  key: string | undefined;
}

/** What a stored reservation is found by: the predicted symbols, or the objects' symbol shape they were predicted from. */
export interface ReservationIds {
  key?: string;
  shape?: string;
}

/** The stored reservation for the predicted symbols `key`, or for the objects' `shape`; undefined when the file holds another. */
export function loadReservation(path: string, ids: ReservationIds): StoredReservation | undefined {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as { format?: unknown; key?: unknown; shape?: unknown; target?: unknown; reservation?: unknown };
    if (j.format !== FORMAT || !wellFormed(j.reservation) || !wellFormedTarget(j.target)) return undefined;
    const found = (ids.key !== undefined && j.key === ids.key) || (ids.shape !== undefined && j.shape === ids.shape);
    return found ? { reservation: j.reservation, target: j.target, key: typeof j.key === 'string' ? j.key : undefined } : undefined;
  } catch {
    return undefined;
  }
}

/** Stores the reservation under its key and shape (written aside and renamed: never half a file). */
export function saveReservation(path: string, ids: { key: string; shape?: string; target: Target }, reservation: Reservation): void {
  writeAtomic(path, JSON.stringify({ format: FORMAT, key: ids.key, shape: ids.shape, target: ids.target, reservation }) + '\n');
}

function wellFormedTarget(t: unknown): t is Target {
  const x = t as Partial<Target> | null;
  return typeof x === 'object' && x !== null && (x.wordSize === 4 || x.wordSize === 8) && (x.endian === 'little' || x.endian === 'big');
}
