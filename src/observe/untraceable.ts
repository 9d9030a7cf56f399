// Programs the tracer cannot enter. It lives in every dynamically linked
// process of the host's ELF class and machine that ld.so lets it into; a
// static program, one of another class or machine (gcc -m32), or a set-id one
// (secure execution ignores LD_PRELOAD) runs unseen, and a line that ran one
// must not be cached. The tracer logs such programs itself (`!`) before they
// run; this is the daemon's second look, at the programs the trace says were
// executed. A script is judged by its interpreter, as the kernel runs it.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

const PT_INTERP = 3;
const HEAD = 256; // the kernel reads this much for `#!` (BINPRM_BUF_SIZE)

// The tracer's ELF class and e_machine: those of the host node runs on.
const HOST_ELF: Record<string, [number, number]> = {
  x64: [2, 62], arm64: [2, 183], ia32: [1, 3], arm: [1, 40], riscv64: [2, 243], ppc64: [2, 21], s390x: [2, 22], loong64: [2, 258],
};
const host = HOST_ELF[process.arch];
const hostData = endianness() === 'LE' ? 1 : 2;

/**
 * Why the program at `path` cannot carry the tracer, as a reason for the
 * line ('static-binary', or 'untraceable: …'); undefined if it can, or if it is
 * unreadable or no program (the exec then failed, or ran as usual).
 */
export function untraceableProgram(path: string): string | undefined {
  for (let depth = 0; depth < 4; depth++) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return undefined;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) return undefined;
      if (st.mode & 0o4000 || (st.mode & 0o2010) === 0o2010) return 'untraceable: set-id program';
      const head = Buffer.alloc(HEAD);
      const n = readSync(fd, head, 0, HEAD, 0);
      if (n >= 2 && head[0] === 0x23 && head[1] === 0x21) {
        const line = head.subarray(2, n).toString('latin1').split('\n')[0]!;
        const interp = /^[ \t]*([^ \t\0]+)/.exec(line)?.[1];
        if (!interp) return undefined;
        path = interp;
        continue;
      }
      return elfReason(fd, head.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  }
  return undefined;
}

function elfReason(fd: number, head: Buffer): string | undefined {
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = head[4] === 2;
  const le = head[5] === 1;
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  if (host) {
    if (head[4] !== host[0]) return head[4] === 1 ? 'untraceable: 32-bit program' : 'untraceable: ELF of another class';
    if (head[5] !== hostData || u16(head, 18) !== host[1]) return 'untraceable: program for another machine';
  }
  if (head.length < 52) return undefined;
  const phoff = is64 ? Number(le ? head.readBigUInt64LE(32) : head.readBigUInt64BE(32)) : u32(head, 28);
  const phentsize = u16(head, is64 ? 54 : 42);
  const phnum = u16(head, is64 ? 56 : 44);
  if (phnum === 0 || phentsize < 8 || phnum > 4096) return undefined;
  const ph = Buffer.alloc(phentsize * phnum);
  if (readSync(fd, ph, 0, ph.length, phoff) < ph.length) return undefined;
  for (let i = 0; i < phnum; i++) if (u32(ph, i * phentsize) === PT_INTERP) return undefined;
  return 'static-binary';
}
