// The tracer lives in every dynamically linked process of a line; a statically
// linked program runs without it and its reads go unseen. Such a line must not
// be cached. An ELF executable is static when it has no PT_INTERP segment.
import { closeSync, openSync, readSync } from 'node:fs';

const PT_INTERP = 3;

/** True for an ELF file with no program interpreter; false for scripts, dynamic ELF, or anything unreadable. */
export function isStaticElf(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) < 52 || head.readUInt32BE(0) !== 0x7f454c46) return false;
    const is64 = head[4] === 2;
    const le = head[5] === 1;
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const phoff = is64 ? Number(le ? head.readBigUInt64LE(32) : head.readBigUInt64BE(32)) : u32(head, 28);
    const phentsize = u16(head, is64 ? 54 : 42);
    const phnum = u16(head, is64 ? 56 : 44);
    if (phnum === 0 || phentsize < 8 || phnum > 4096) return false;
    const ph = Buffer.alloc(phentsize * phnum);
    if (readSync(fd, ph, 0, ph.length, phoff) < ph.length) return false;
    for (let i = 0; i < phnum; i++) if (u32(ph, i * phentsize) === PT_INTERP) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}
