// The C kallsyms of the 6.1 tree as a test oracle: run it on a symbol map,
// assemble its .S for a target (host gcc for x86, cross binutils for
// big-endian), and hand back the object's bytes.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KallsymsOptions } from '../../src/kernel/kallsyms/index.js';

export interface AsmTarget {
  name: string;
  wordSize: 4 | 8;
  endian: 'little' | 'big';
  /** Assembles preprocessed assembly `src` into `obj`, with _text defined absolute. */
  assemble(src: string, obj: string, text: bigint): void;
}

const defsym = (text: bigint): string => `_text=0x${text.toString(16)}`;

export const TARGETS: Record<'le32' | 'le64' | 'be32' | 'be64', AsmTarget> = {
  le32: {
    name: 'i386',
    wordSize: 4,
    endian: 'little',
    assemble: (src, obj, text) => execFileSync('as', ['--32', '--defsym', defsym(text), '-o', obj, src]),
  },
  le64: {
    name: 'x86_64',
    wordSize: 8,
    endian: 'little',
    assemble: (src, obj, text) => execFileSync('as', ['--64', '--defsym', defsym(text), '-o', obj, src]),
  },
  be32: {
    name: 'powerpc',
    wordSize: 4,
    endian: 'big',
    assemble: (src, obj, text) => execFileSync('powerpc-linux-gnu-as', ['--defsym', defsym(text), '-o', obj, src]),
  },
  be64: {
    name: 'mips64',
    wordSize: 8,
    endian: 'big',
    assemble: (src, obj, text) => execFileSync('mips-linux-gnu-as', ['-64', '--defsym', defsym(text), '-o', obj, src]),
  },
};

export function optionFlags(o: KallsymsOptions): string[] {
  const f: string[] = [];
  if (o.allSymbols) f.push('--all-symbols');
  if (o.absolutePercpu) f.push('--absolute-percpu');
  if (o.baseRelative) f.push('--base-relative');
  if (o.ltoClang) f.push('--lto-clang');
  return f;
}

export function optionName(o: KallsymsOptions): string {
  return optionFlags(o).join(' ') || '(no options)';
}

/** Every combination of the three table-shaping options. */
export function optionCombinations(extra: KallsymsOptions = {}): KallsymsOptions[] {
  const out: KallsymsOptions[] = [];
  for (let m = 0; m < 8; m++) {
    out.push({ ...extra, allSymbols: !!(m & 1), absolutePercpu: !!(m & 2), baseRelative: !!(m & 4) });
  }
  return out;
}

export interface CResult {
  status: number;
  asm: string;
  stderr: string;
}

export function runCKallsyms(tool: string, mapPath: string, o: KallsymsOptions): CResult {
  const r = spawnSync(tool, [...optionFlags(o), mapPath], { maxBuffer: 1 << 30, encoding: 'latin1' });
  return { status: r.status ?? -1, asm: r.stdout, stderr: r.stderr };
}

/**
 * Preprocesses (the C tool's output #includes asm/bitsperlong.h) and
 * assembles `asm` for `target`; returns the object file's bytes.
 */
export function assemble(dir: string, base: string, asm: string, target: AsmTarget, text: bigint): Buffer {
  const inc = join(dir, `inc${target.wordSize * 8}`);
  mkdirSync(join(inc, 'asm'), { recursive: true });
  writeFileSync(join(inc, 'asm/bitsperlong.h'), `#define BITS_PER_LONG ${target.wordSize * 8}\n`);
  const S = join(dir, `${base}.S`);
  const s = join(dir, `${base}.s`);
  const o = join(dir, `${base}.o`);
  writeFileSync(S, asm, 'latin1');
  execFileSync('gcc', ['-E', '-P', '-I', inc, '-o', s, S]);
  target.assemble(s, o, text);
  return readFileSync(o);
}
