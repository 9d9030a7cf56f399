import { createHash } from 'node:crypto';

/** SHA-256 hex digest: the only digest kbx uses (REAPI servers can hold it as is). */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hashes a list of fields unambiguously (each field is length-prefixed). */
export function hashFields(fields: ReadonlyArray<Buffer | string>): string {
  const h = createHash('sha256');
  const len = Buffer.alloc(4);
  for (const f of fields) {
    const b = typeof f === 'string' ? Buffer.from(f) : f;
    len.writeUInt32LE(b.length, 0);
    h.update(len);
    h.update(b);
  }
  return h.digest('hex');
}
