// Size accounting of what a build wrote: of the files its lines left that
// still exist, bytes by type, and the DWARF and BTF bytes inside the ELF ones
// (from their section headers). Reads the files; pure counting is in
// `sectionBytes`.
import { closeSync, lstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { posix } from 'node:path';
import type { BuildRecord } from '../builds/record.js';
import { ElfFile, ET_DYN, ET_EXEC, SHT_NOBITS, type ElfSection } from '../elf/elf-file.js';

export type FileType = 'object' | 'archive' | 'module' | 'executable' | 'other';
export const FILE_TYPES: readonly FileType[] = ['object', 'archive', 'module', 'executable', 'other'];

export interface SizeCounts {
  files: number;
  bytes: number;
  dwarfBytes: number;
  btfBytes: number;
}

export interface SizeRow extends SizeCounts {
  type: FileType;
}

export interface SizeReport {
  /** One row per type, in the order of FILE_TYPES. */
  rows: SizeRow[];
  total: SizeCounts;
  /** Files some line wrote that are gone now (temporaries, or removed since). */
  missing: number;
}

/** DWARF: .debug_* (and .zdebug_*) with their relocation sections; BTF: .BTF and .BTF.ext. */
export function sectionBytes(sections: readonly ElfSection[]): { dwarf: number; btf: number } {
  let dwarf = 0;
  let btf = 0;
  for (const s of sections) {
    if (s.type === SHT_NOBITS) continue;
    if (/^(\.rela?)?\.z?debug_/.test(s.name)) dwarf += s.size;
    else if (s.name === '.BTF' || s.name === '.BTF.ext') btf += s.size;
  }
  return { dwarf, btf };
}

function isElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    closeSync(fd);
  }
}

function typeOf(path: string, elf: ElfFile | undefined): FileType {
  const ext = posix.extname(path);
  if (ext === '.o') return 'object';
  if (ext === '.a') return 'archive';
  if (ext === '.ko') return 'module';
  // vmlinux, host programs, shared objects.
  if (elf && (elf.header.type === ET_EXEC || elf.header.type === ET_DYN)) return 'executable';
  return 'other';
}

/** The regular files the build's lines wrote, each once. */
export function writtenFiles(rec: BuildRecord): string[] {
  const ids = new Set<number>();
  for (const l of rec.lines) for (const o of l.outputs) ids.add(o);
  return [...ids].map((i) => rec.paths[i]).filter((p): p is string => p !== undefined).sort();
}

export function measureOutputs(rec: BuildRecord): SizeReport {
  const rows = new Map<FileType, SizeRow>(FILE_TYPES.map((t) => [t, { type: t, files: 0, bytes: 0, dwarfBytes: 0, btfBytes: 0 }]));
  let missing = 0;
  for (const path of writtenFiles(rec)) {
    let size: number;
    try {
      const st = lstatSync(path);
      if (!st.isFile()) continue; // directories and links the lines made
      size = st.size;
    } catch {
      missing++;
      continue;
    }
    let elf: ElfFile | undefined;
    try {
      // The whole file is read: the ELF reader checks every section against the file's length.
      if (isElf(path)) elf = ElfFile.parse(readFileSync(path));
    } catch {
      elf = undefined; // unreadable or malformed: counted by size only
    }
    const row = rows.get(typeOf(path, elf))!;
    row.files++;
    row.bytes += size;
    if (elf) {
      const b = sectionBytes(elf.sections);
      row.dwarfBytes += b.dwarf;
      row.btfBytes += b.btf;
    }
  }
  const list = [...rows.values()];
  const sum = (k: keyof SizeCounts) => list.reduce((a, r) => a + r[k], 0);
  return {
    rows: list,
    total: { files: sum('files'), bytes: sum('bytes'), dwarfBytes: sum('dwarfBytes'), btfBytes: sum('btfBytes') },
    missing,
  };
}
