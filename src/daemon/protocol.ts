// The shim ⇄ daemon frame format (docs/PROTOCOL.md, section 2).
// Hot path: every cacheable recipe line sends one LOOKUP, so decoding works on
// the received Buffer in place and allocates only the field slices.

export const PROTOCOL_VERSION = '1';
export const MAX_FRAME = 64 * 1024 * 1024;

export const enum MsgType {
  Lookup = 1,
  Hit = 2,
  Miss = 3,
  Pass = 4,
  Done = 5,
  Ack = 6,
}

// Control requests from the CLI (a JSON field) and their replies share the socket (PROTOCOL.md §2).
export const CONTROL_REQUEST = 16;
export const CONTROL_REPLY = 17;

export interface Frame {
  type: number;
  fields: Buffer[];
}

export class ProtocolError extends Error {
  readonly code = 'KBX_PROTOCOL';
}

/** Encodes one frame: u32 LE body length, u8 type, then (u32 LE length, bytes) per field. */
export function encodeFrame(type: number, fields: ReadonlyArray<Buffer | string>): Buffer {
  const bufs = fields.map((f) => (typeof f === 'string' ? Buffer.from(f) : f));
  let bodyLen = 1;
  for (const b of bufs) bodyLen += 4 + b.length;
  if (bodyLen > MAX_FRAME) throw new ProtocolError(`frame of ${bodyLen} bytes exceeds ${MAX_FRAME}`);
  const out = Buffer.allocUnsafe(4 + bodyLen);
  out.writeUInt32LE(bodyLen, 0);
  out.writeUInt8(type, 4);
  let off = 5;
  for (const b of bufs) {
    out.writeUInt32LE(b.length, off);
    off += 4;
    b.copy(out, off);
    off += b.length;
  }
  return out;
}

/** Decodes a frame body (without the 4-byte length prefix). Checks every bound. */
export function decodeBody(body: Buffer): Frame {
  if (body.length < 1) throw new ProtocolError('empty frame');
  const type = body.readUInt8(0);
  const fields: Buffer[] = [];
  let off = 1;
  while (off < body.length) {
    if (off + 4 > body.length) throw new ProtocolError(`truncated field length at byte ${off}`);
    const len = body.readUInt32LE(off);
    off += 4;
    if (len > body.length - off) throw new ProtocolError(`field of ${len} bytes overruns frame at byte ${off}`);
    fields.push(body.subarray(off, off + len));
    off += len;
  }
  return { type, fields };
}

/**
 * Accumulates stream chunks and yields whole frames. One instance per
 * connection.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.size < 4) break;
      let buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
      this.chunks = [buf];
      const bodyLen = buf.readUInt32LE(0);
      if (bodyLen > MAX_FRAME) throw new ProtocolError(`frame of ${bodyLen} bytes exceeds ${MAX_FRAME}`);
      if (this.size < 4 + bodyLen) break;
      frames.push(decodeBody(buf.subarray(4, 4 + bodyLen)));
      buf = buf.subarray(4 + bodyLen);
      this.chunks = buf.length ? [buf] : [];
      this.size = buf.length;
    }
    return frames;
  }
}
