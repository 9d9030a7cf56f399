import { createHash } from 'node:crypto';

/** SHA-256 hex digest: the only digest kbx uses (REAPI servers can hold it as is). */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hashes a list of fields unambiguously (each field is length-prefixed). */
export function hashFields(fields: ReadonlyArray<Buffer | string>): string {
  // One buffer and one update: many small updates cost more than the copy.
  const bufs = fields.map((f) => (typeof f === 'string' ? Buffer.from(f) : f));
  let size = 0;
  for (const b of bufs) size += 4 + b.length;
  const all = Buffer.allocUnsafe(size);
  let off = 0;
  for (const b of bufs) {
    all.writeUInt32LE(b.length, off);
    b.copy(all, off + 4);
    off += 4 + b.length;
  }
  return createHash('sha256').update(all).digest('hex');
}
