// Room for .BTF in the single link, filled after it: the BTF link is skipped.
//
// 6.1's script links vmlinux once without BTF only for pahole to read its
// DWARF, then links again with the .BTF pahole made. pahole reads the final
// image's DWARF as well: with its .BTF room zero-filled, it encodes the same
// BTF byte for byte (checked on the link test's tree with pahole 1.24). So
// the single link reserves room for .BTF (the last link's size and a
// margin), pahole encodes the linked vmlinux to a file
// (--btf_encode_detached), and the BTF is written into the room.
//
// The kernel takes .BTF to be exactly __stop_BTF - __start_BTF bytes, with
// the string section last (btf_check_sec_info, btf_parse_str_sec in
// kernel/bpf/btf.c); the room is filled by making the string section longer
// with NULs, which it accepts (a string section must start and end with
// one). BTF that does not fit is a misfit: the script links this once and
// the next link reserves its size.

import { readFileSync } from 'node:fs';
import { writeAtomic } from '../../util/files.js';

export const BTF_ROOM = {
  S: '.tmp_vmlinux.kbx.btf.S',
  bin: '.tmp_vmlinux.kbx.btf.bin',
  o: '.tmp_vmlinux.kbx.btf.o',
  /** pahole's BTF of the single link. */
  raw: '.tmp_vmlinux.kbx.btf',
  /** The size of the last BTF, which the next room is sized from. */
  last: '.tmp_vmlinux.kbx.btf.json',
} as const;

const BTF_MAGIC = 0xeb9f;
const HEADER_MIN = 24;

/** Room for BTF the size of the last one: 0.2 % more and 1 KiB, for the types an edit adds. */
export function btfRoomSize(last: number): number {
  return last + Math.max(1024, Math.ceil(last / 500));
}

/** The assembly of the room: a .BTF section like the one the script makes with objcopy (allocated, read-only, byte-aligned). */
export function btfRoomAsm(binPath: string): string {
  return `/* .BTF room reserved by kbx link-vmlinux */\n\t.section .BTF, "a"\n\t.incbin "${binPath.replace(/[\\"]/g, (c) => `\\${c}`)}"\n`;
}

/** The last BTF size recorded in the object tree, or undefined. */
export function lastBtfSize(path: string): number | undefined {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as { size?: unknown };
    return Number.isSafeInteger(j.size) && (j.size as number) > 0 ? (j.size as number) : undefined;
  } catch {
    return undefined;
  }
}

export function recordBtfSize(path: string, size: number): void {
  writeAtomic(path, JSON.stringify({ size }) + '\n');
}

/**
 * Pure: `btf` made exactly `size` bytes by lengthening its string section
 * with NULs, or why it cannot be (too big, or not BTF laid out with its
 * string section last).
 */
export function padBtf(btf: Buffer, size: number): Buffer | string {
  if (btf.length < HEADER_MIN) return `the BTF is ${btf.length} bytes, shorter than its header`;
  const le = btf.readUInt16LE(0) === BTF_MAGIC;
  if (!le && btf.readUInt16BE(0) !== BTF_MAGIC) return 'the BTF does not start with its magic number';
  const u32 = (o: number) => (le ? btf.readUInt32LE(o) : btf.readUInt32BE(o));
  const hdrLen = u32(4);
  const [typeOff, typeLen, strOff, strLen] = [u32(8), u32(12), u32(16), u32(20)];
  if (hdrLen < HEADER_MIN || hdrLen + strOff + strLen !== btf.length || typeOff + typeLen > strOff) {
    return 'the BTF does not end with its string section';
  }
  if (strLen === 0 || btf[btf.length - 1] !== 0) return 'the BTF string section does not end with a NUL';
  if (btf.length > size) return `the BTF needs ${btf.length} bytes, ${size} were reserved`;
  if (strLen + (size - btf.length) - 1 > 0xffffff) return 'the BTF string section would pass the largest offset BTF allows'; // BTF_MAX_NAME_OFFSET
  const out = Buffer.alloc(size); // the padding is zeros
  btf.copy(out);
  if (le) out.writeUInt32LE(strLen + (size - btf.length), 20);
  else out.writeUInt32BE(strLen + (size - btf.length), 20);
  return out;
}
