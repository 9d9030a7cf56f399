// The symbols the final vmlinux will have, predicted from the objects that go
// into the link and the linker script, before linking: what the kallsyms
// table reserved in the single link is sized from.
//
// An upper bound by construction where it can be: every defined symbol of
// the objects survives unless the script discards its section; every name
// the script assigns, and every name the objects leave undefined (the link
// must define it: linker-script and __start_/__stop_ symbols), is counted.
// Where it cannot be (the token table a different symbol set compresses to),
// a margin covers it, and the real table is checked against the reservation.

import type { ElfFile, ElfSection } from '../../elf/elf-file.js';
import { SHN_ABS, SHN_COMMON, SHN_UNDEF, SHT_NOBITS } from '../../elf/elf-file.js';
import { buildTables, type KallsymsTables, type Target } from '../kallsyms/tables.js';
import { isIgnoredSymbol, type KallsymsOptions, type SymEntry } from '../kallsyms/symbols.js';
import { placement, within, type LinkerScript } from './linker-script.js';

const STB_LOCAL = 0;
const STB_WEAK = 2;
const STT_OBJECT = 1;
const STT_SECTION = 3;
const STT_FILE = 4;
const SHF_WRITE = 0x1n;
const SHF_ALLOC = 0x2n;
const SHF_EXECINSTR = 0x4n;

/** What scripts/mksysmap filters out of `nm -n` before kallsyms sees it (6.1). */
export function mksysmapDrops(type: string, name: string): boolean {
  return (
    type === 'a' ||
    type === 'N' ||
    type === 'U' ||
    type === 'w' ||
    name.startsWith('$') ||
    name.startsWith('.L') ||
    name.startsWith('__crc_') ||
    name.startsWith('__kstrtab_') ||
    name.startsWith('__kstrtabns_') ||
    name === 'L0'
  );
}

/** nm's letter for a defined symbol of a relocatable object, from its section's flags. */
function nmLetter(bind: number, type: number, s: ElfSection): string | undefined {
  if ((s.flags & SHF_ALLOC) === 0n) return undefined; // debugging / non-alloc: 'N'/'n', dropped
  if (bind === STB_WEAK) return type === STT_OBJECT ? 'V' : 'W';
  const c = (s.flags & SHF_EXECINSTR) !== 0n ? 't' : s.type === SHT_NOBITS ? 'b' : (s.flags & SHF_WRITE) !== 0n ? 'd' : 'r';
  return bind === STB_LOCAL ? c : c.toUpperCase();
}

export interface Estimate {
  /** Predicted symbols in no particular order (addresses unknown, zero). */
  symbols: SymEntry[];
  tables: KallsymsTables;
}

/**
 * Predicts the table's symbol set from the objects of the final link
 * (vmlinux.o and the small objects the script adds) and the linker script.
 */
export function estimateSymbols(objects: readonly ElfFile[], script: LinkerScript, opts: KallsymsOptions): SymEntry[] {
  const out: SymEntry[] = [];
  const globals = new Set<string>();
  const undefinedNames = new Set<string>();
  const place = new Map<string, { discard: boolean; text: boolean; percpu: boolean }>();
  const where = (name: string, exec: boolean): { discard: boolean; text: boolean; percpu: boolean } => {
    let p = place.get(name);
    if (!p) {
      const pat = placement(script, name);
      p = pat
        ? { discard: pat.discard, text: script.textRanges.some((r) => within(r, pat.pos)), percpu: within(script.percpuRange, pat.pos) }
        : { discard: false, text: exec, percpu: false }; // an orphan section: kept, placed by ld
      place.set(name, p);
    }
    return p;
  };
  const push = (type: string, name: string, percpu: boolean): void => {
    if (mksysmapDrops(type, name) || isIgnoredSymbol(name, type)) return;
    const abs = percpu && !!opts.absolutePercpu;
    out.push({ hi: 0, lo: 0, type: (abs ? 'A' : type).charCodeAt(0), name, startPos: out.length, percpuAbsolute: abs });
  };

  for (const elf of objects) {
    for (const sym of elf.symbols()) {
      if (sym.type === STT_SECTION || sym.type === STT_FILE || !sym.name) continue;
      if (sym.shndx === SHN_UNDEF) {
        undefinedNames.add(sym.name);
        continue;
      }
      if (sym.bind !== STB_LOCAL) globals.add(sym.name);
      if (sym.shndx === SHN_ABS) continue; // 'A'/'a': dropped by kallsyms (the few it keeps are not in kernel objects)
      if (sym.shndx === SHN_COMMON) {
        push('B', sym.name, false);
        continue;
      }
      const sec = elf.sections[sym.sectionIndex];
      if (!sec) continue;
      const letter = nmLetter(sym.bind, sym.type, sec);
      if (!letter) continue;
      const p = where(sec.name, (sec.flags & SHF_EXECINSTR) !== 0n);
      if (p.discard || (!opts.allSymbols && !p.text)) continue;
      push(letter, sym.name, p.percpu);
    }
  }

  // Symbols the link itself defines: the script's assignments, and whatever
  // the objects still need (ld's __start_/__stop_ symbols among them).
  const linkerDefined = new Map<string, number>();
  for (const a of script.assignments) if (!linkerDefined.has(a.name)) linkerDefined.set(a.name, a.pos);
  for (const n of undefinedNames) if (!linkerDefined.has(n)) linkerDefined.set(n, -1);
  for (const [name, pos] of linkerDefined) {
    if (globals.has(name)) continue;
    const text = pos >= 0 && script.textRanges.some((r) => within(r, pos));
    if (!opts.allSymbols && pos >= 0 && !text) continue;
    push(text ? 'T' : 'D', name, false);
  }
  return out;
}

/** The tables of a predicted symbol set (their sizes are what matters). */
export function estimateTables(symbols: SymEntry[], opts: KallsymsOptions, target: Target): KallsymsTables {
  return buildTables({ symbols, text: 0n, relativeBase: 0n }, opts, target);
}
