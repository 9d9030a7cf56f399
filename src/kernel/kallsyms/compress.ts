// Token-table compression with the result of Linux 6.1 kallsyms.c
// (optimize_token_table / optimize_result / compress_symbols): byte codes no
// symbol uses are filled, from 255 down to 0, with the adjacent pair that
// occurs most often (first pair in index order a | b << 8 on ties), and the
// pair is replaced by that code in every symbol, left to right.
//
// Hot path, written for speed on purpose. The C tool rescans every symbol for
// every new token; here each pair keeps a list of the symbols it occurs in,
// so a token only visits symbols that contain it. Lists may hold stale or
// repeated entries (a symbol loses pairs as it is compressed); a visit that
// finds no occurrence changes nothing, so the counts and the output are the
// C tool's exactly.

export interface PackedSymbols {
  /** All symbols back to back: type byte then name bytes. */
  data: Uint8Array;
  start: Int32Array;
  len: Int32Array;
}

export interface TokenTable {
  /** best_table: the pair (or single byte) each of the 256 codes stands for. */
  pairs: Uint8Array; // 256 * 2
  /** best_table_len: 0 (unused), 1 (the byte itself) or 2 (a pair). */
  lens: Uint8Array; // 256
}

export function packSymbols(syms: readonly { type: number; name: string }[]): PackedSymbols {
  const start = new Int32Array(syms.length);
  const len = new Int32Array(syms.length);
  const parts: string[] = new Array<string>(syms.length);
  let at = 0;
  for (let i = 0; i < syms.length; i++) {
    const s = syms[i]!;
    parts[i] = String.fromCharCode(s.type) + s.name;
    start[i] = at;
    len[i] = 1 + s.name.length;
    at += len[i]!;
  }
  // One native latin1 encode instead of a write per symbol.
  return { data: Buffer.from(parts.join(''), 'latin1'), start, len };
}

interface State {
  data: Uint8Array;
  start: Int32Array;
  len: Int32Array;
  profit: Int32Array;
  /** Initial postings in compressed-row form: the symbols holding each pair. */
  rowStart: Int32Array;
  rows: Int32Array;
  /** Postings for pairs that compression creates (they all contain a new code). */
  extra: (number[] | undefined)[];
  /** The code a symbol was last visited for, so a list's repeats are skipped. */
  visited: Int32Array;
  best: BestPair;
}

/**
 * find_best_token over 65536 counts, for every one of up to 256 codes: the
 * counts are split in 256 blocks of 256 with each block's maximum cached, and
 * only blocks whose counts changed are rescanned.
 */
class BestPair {
  private readonly blockMax = new Int32Array(256);
  private readonly blockArg = new Int32Array(256);
  readonly dirty = new Uint8Array(256).fill(1);

  constructor(private readonly profit: Int32Array) {}

  /** The first pair (lowest a | b << 8) with the highest count. */
  find(): number {
    const { profit, blockMax, blockArg, dirty } = this;
    for (let blk = 0; blk < 256; blk++) {
      if (!dirty[blk]) continue;
      dirty[blk] = 0;
      let arg = blk << 8;
      let max = profit[arg]!;
      for (let t = arg + 1, end = arg + 256; t < end; t++) {
        const p = profit[t]!;
        if (p > max) {
          max = p;
          arg = t;
        }
      }
      blockMax[blk] = max;
      blockArg[blk] = arg;
    }
    let bestBlk = 0;
    for (let blk = 1; blk < 256; blk++) if (blockMax[blk]! > blockMax[bestBlk]!) bestBlk = blk;
    return blockArg[bestBlk]!;
  }
}

// Small functions on purpose: V8 optimizes each on its own, where one big
// function run once would be recompiled (on-stack) every time a new path runs.

/** build_initial_tok_table and insert_real_symbols_in_table. */
function countPairs(syms: PackedSymbols, profit: Int32Array, table: TokenTable): void {
  const { data, start, len } = syms;
  for (let i = 0; i < start.length; i++) {
    const s = start[i]!;
    const e = s + len[i]!;
    for (let j = s; j < e - 1; j++) profit[data[j]! | (data[j + 1]! << 8)]!++;
    for (let j = s; j < e; j++) {
      const c = data[j]!;
      table.pairs[c * 2] = c;
      table.lens[c] = 1;
    }
  }
}

function buildPostings(syms: PackedSymbols, profit: Int32Array): State {
  const { data, start, len } = syms;
  const rowStart = new Int32Array(0x10001);
  for (let t = 0; t < 0x10000; t++) rowStart[t + 1] = rowStart[t]! + profit[t]!;
  const rows = new Int32Array(rowStart[0x10000]!);
  const fill = rowStart.slice(0, 0x10000);
  for (let i = 0; i < start.length; i++) {
    const s = start[i]!;
    const e = s + len[i]!;
    for (let j = s; j < e - 1; j++) rows[fill[data[j]! | (data[j + 1]! << 8)]!++] = i;
  }
  const extra: (number[] | undefined)[] = [];
  for (let t = 0; t < 0x10000; t++) extra.push(undefined);
  const visited = new Int32Array(start.length).fill(-1);
  return { data, start, len, profit, rowStart, rows, extra, visited, best: new BestPair(profit) };
}

function addProfit(st: State, x: number, y: number, delta: number): void {
  st.profit[x | (y << 8)]! += delta;
  st.best.dirty[y] = 1; // a pair's block is its second byte
}

function post(st: State, x: number, y: number, i: number): void {
  const t = x | (y << 8);
  const list = st.extra[t];
  if (list) list.push(i);
  else st.extra[t] = [i];
}

/**
 * compress_symbols for one symbol: replace each a,b (left to right, not
 * overlapping) by idx. The C tool forgets and relearns every pair of the
 * symbol; only pairs touching a replacement change, so only those are
 * counted here (the counts end up the same).
 */
function compressOne(st: State, i: number, a: number, b: number, idx: number): void {
  const data = st.data;
  const s = st.start[i]!;
  const e = s + st.len[i]!;
  let r = s;
  while (r < e - 1 && !(data[r] === a && data[r + 1] === b)) r++;
  if (r >= e - 1) return; // stale posting
  let w = r;
  let lastX = -1; // where the previous replacement was written
  while (r < e) {
    if (r < e - 1 && data[r] === a && data[r + 1] === b) {
      const adjacent = lastX === w - 1;
      if (w > s) {
        const left = data[w - 1]!;
        if (!adjacent) addProfit(st, left, a, -1); // else it was the last one's right pair
        addProfit(st, left, idx, 1);
        post(st, left, idx, i);
      }
      addProfit(st, a, b, -1);
      if (r + 2 < e) {
        const right = data[r + 2]!;
        addProfit(st, b, right, -1);
        // A following replacement counts the pair (idx, idx) as its left pair.
        if (!(r + 3 < e && right === a && data[r + 3] === b)) {
          addProfit(st, idx, right, 1);
          post(st, idx, right, i);
        }
      }
      data[w] = idx;
      lastX = w++;
      r += 2;
    } else {
      data[w++] = data[r++]!;
    }
  }
  st.len[i] = w - s;
}

function compressToken(st: State, best: number, idx: number): void {
  const a = best & 0xff;
  const b = best >> 8;
  const { rows, visited } = st;
  for (let k = st.rowStart[best]!, end = st.rowStart[best + 1]!; k < end; k++) {
    const i = rows[k]!;
    if (visited[i] === idx) continue;
    visited[i] = idx;
    compressOne(st, i, a, b, idx);
  }
  const more = st.extra[best];
  if (!more) return;
  for (let k = 0; k < more.length; k++) {
    const i = more[k]!;
    if (visited[i] === idx) continue;
    visited[i] = idx;
    compressOne(st, i, a, b, idx);
  }
}

/** Compresses `syms` in place (data and len change) and returns the table. */
export function optimizeTokenTable(syms: PackedSymbols): TokenTable {
  const profit = new Int32Array(0x10000);
  const table: TokenTable = { pairs: new Uint8Array(512), lens: new Uint8Array(256) };
  countPairs(syms, profit, table);
  const st = buildPostings(syms, profit);
  // optimize_result: the '\0' code is used last.
  for (let idx = 255; idx >= 0; idx--) {
    if (table.lens[idx]) continue;
    const best = st.best.find();
    if (profit[best] === 0) break;
    table.lens[idx] = 2;
    table.pairs[idx * 2] = best & 0xff;
    table.pairs[idx * 2 + 1] = best >> 8;
    compressToken(st, best, idx);
  }
  return table;
}

/** Every code expanded to the bytes it stands for (expand_symbol on best_table). */
export function expandTokens(table: TokenTable): Uint8Array[] {
  const out: (Uint8Array | undefined)[] = new Array(256);
  const expand = (c: number, depth: number): Uint8Array => {
    const done = out[c];
    if (done) return done;
    const l = table.lens[c]!;
    let r: Uint8Array;
    if (l === 0) r = new Uint8Array(0);
    else if (l === 1 && table.pairs[c * 2] === c) r = Uint8Array.of(c);
    else {
      // A pair's codes were assigned before it, so this terminates; the
      // depth guard only protects against a hand-made table.
      if (depth > 256) throw new Error(`token table loops at code ${c}`);
      const parts = [];
      for (let k = 0; k < l; k++) parts.push(expand(table.pairs[c * 2 + k]!, depth + 1));
      r = Buffer.concat(parts);
    }
    out[c] = r;
    return r;
  };
  return Array.from({ length: 256 }, (_, c) => expand(c, 0));
}
