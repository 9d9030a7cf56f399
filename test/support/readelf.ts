// binutils' readelf as the oracle for the ELF reader: its -S, -s and -l
// listings parsed into the same shapes.

import { execFileSync } from 'node:child_process';

export interface RefSection {
  index: number;
  name: string;
  type: string;
  addr: bigint;
  offset: number;
  size: number;
}

export interface RefSymbol {
  index: number;
  value: bigint;
  size: bigint;
  ndx: string;
  name: string;
}

export interface RefSegment {
  type: string;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

function readelf(args: string[], file: string): string {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'latin1', maxBuffer: 1 << 28 });
}

const num = (s: string): bigint => BigInt(s.startsWith('0x') ? s : `0x${s}`);

export function refSections(file: string): RefSection[] {
  const out: RefSection[] = [];
  // Types can be several words ("SYMTAB SECTION INDICES").
  const re = /^\s*\[\s*(\d+)\]\s+(?:(\S+)\s+)?([A-Z][A-Za-z_0-9+]*(?: [A-Z][A-Za-z_0-9+]*)*)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/;
  for (const line of readelf(['-S'], file).split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    out.push({ index: +m[1]!, name: m[2] ?? '', type: m[3]!, addr: num(m[4]!), offset: Number(num(m[5]!)), size: Number(num(m[6]!)) });
  }
  return out;
}

/** Symbols of .symtab (readelf prints .dynsym too; only .symtab is returned). */
export function refSymbols(file: string): RefSymbol[] {
  const text = readelf(['-s'], file);
  const at = text.indexOf("Symbol table '.symtab'");
  if (at < 0) return [];
  const out: RefSymbol[] = [];
  const re = /^\s*(\d+):\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+\S+\s+\S+\s+\S+\s+(\S+)(?: (.*))?$/;
  for (const line of text.slice(at).split('\n').slice(1)) {
    if (line.startsWith('Symbol table')) break;
    const m = re.exec(line);
    if (!m) continue;
    out.push({ index: +m[1]!, value: num(m[2]!), size: BigInt(m[3]!), ndx: m[4]!, name: m[5] ?? '' });
  }
  return out;
}

export function refSegments(file: string): RefSegment[] {
  const out: RefSegment[] = [];
  const re = /^\s+([A-Z][A-Za-z_0-9+]*)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s/;
  for (const line of readelf(['-l'], file).split('\n')) {
    const m = re.exec(line);
    if (m) out.push({ type: m[1]!, offset: Number(m[2]), vaddr: BigInt(m[3]!), filesz: Number(m[4]) });
  }
  return out;
}
