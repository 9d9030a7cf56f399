// Whether a line may read a compiler variable ($CC and the like, or a
// wrapper's own) from its environment: its command text or a text file it
// read (a script) names one the way a shell, perl, python or C reads it.
// Every line's weak key is taken without the wrappers in its environment
// (wrappers.ts), so a line that reads $CC itself (`echo "$CC" > cc.txt`)
// must keep them in its path set: under CC="distcc gcc" it writes another
// file than under CC=gcc. A line that ran a compiler keeps them anyway.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { sha256 } from '../util/hash.js';

const REFERENCE =
  /(?:\$\{?|getenv\(\s*["']|ENV\{\s*["']?|environ(?:\.get\(|\[)\s*["'])(?:(?:HOST)?(?:CC|CXX|CPP)|OBJC|OBJCXX|(?:DISTCC|ICECC|CCACHE|SCCACHE)_\w+)\b/;
// Binaries no program reads a variable name out of: ELF files, ar archives
// (built-in.a, vmlinux.a), gzip, xz and zstd data.
const BINARY = [Buffer.from('\x7fELF', 'latin1'), Buffer.from('!<arch>\n'), Buffer.from([0x1f, 0x8b]), Buffer.from([0xfd, 0x37, 0x7a, 0x58]), Buffer.from([0x28, 0xb5, 0x2f, 0xfd])];
// A script is small; a larger text input (a generated table) is read whole once.
const MAX_SCANNED = 4 << 20;
const MAX_ANSWERS = 100_000;

/** Whether text names a compiler variable as a program reads its environment. */
export function namesCompilerVariable(text: string | Buffer): boolean {
  return REFERENCE.test(typeof text === 'string' ? text : text.toString('latin1'));
}

/** Scans files by content digest, remembering each answer. */
export class CompilerVariableScanner {
  private answers = new Map<string, boolean>();

  /**
   * Whether the file whose content had `digest` names a compiler variable;
   * false for a binary or a listing; undefined when the file no longer holds
   * that content or is too large to scan.
   */
  scan(path: string, digest: string): boolean | undefined {
    if (!/^[0-9a-f]{64}$/.test(digest)) return false;
    const known = this.answers.get(digest);
    if (known !== undefined) return known;
    let data: Buffer;
    let fd: number | undefined;
    try {
      fd = openSync(path, 'r');
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(Math.min(size, 8));
      readSync(fd, head, 0, head.length, 0);
      if (BINARY.some((m) => head.subarray(0, m.length).equals(m))) return this.remember(digest, false);
      if (size > MAX_SCANNED) return undefined;
      data = Buffer.alloc(size);
      readSync(fd, data, 0, size, 0);
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    if (sha256(data) !== digest) return undefined;
    return this.remember(digest, namesCompilerVariable(data));
  }

  private remember(digest: string, found: boolean): boolean {
    if (this.answers.size >= MAX_ANSWERS) this.answers.clear();
    this.answers.set(digest, found);
    return found;
  }
}
