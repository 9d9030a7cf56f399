// Reads the events file the shim appends to (docs/PROTOCOL.md section 5): one
// record per line the daemon did not run itself. A torn or short tail (a
// shim killed mid-write) ends the list; nothing before it is lost.
import type { LineKind, LineRecord } from './record.js';

const HEADER = 40;

// Counter slots of the shim (section 4) → line kinds.
const KIND_OF_SLOT: Record<number, LineKind> = { 0: 'trivial', 1: 'recursive', 2: 'pass', 3: 'fallback', 6: 'pass', 7: 'pass' };
const REASON_OF_SLOT: Record<number, string> = { 6: 'config-target', 7: 'shell-flags' };

export function parseShimEvents(buf: Buffer): LineRecord[] {
  const out: LineRecord[] = [];
  for (let off = 0; off + HEADER <= buf.length; ) {
    const total = buf.readUInt32LE(off);
    if (total < HEADER || off + total > buf.length) break;
    const slot = buf.readUInt32LE(off + 4);
    const exit = buf.readInt32LE(off + 8);
    const startUs = Number(buf.readBigUInt64LE(off + 12));
    const endUs = Number(buf.readBigUInt64LE(off + 20));
    const cwdLen = buf.readUInt32LE(off + 28);
    const cmdLen = buf.readUInt32LE(off + 32);
    const whyLen = buf.readUInt32LE(off + 36);
    if (HEADER + cwdLen + cmdLen + whyLen !== total) break;
    let p = off + HEADER;
    const cwd = buf.toString('utf8', p, (p += cwdLen));
    const command = buf.toString('utf8', p, (p += cmdLen));
    const reason = whyLen ? buf.toString('utf8', p, p + whyLen) : REASON_OF_SLOT[slot];
    const kind = KIND_OF_SLOT[slot];
    if (kind) {
      const rec: LineRecord = { kind, startUs, endUs: endUs || startUs, exit, cwd, command, inputs: [], outputs: [] };
      if (reason) rec.reason = reason;
      out.push(rec);
    }
    off += total;
  }
  return out;
}
