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

import type { ElfFile } from '../../elf/elf-file.js';
import { SHN_ABS, SHN_COMMON, SHN_UNDEF, SHT_NOBITS } from '../../elf/elf-file.js';
import { buildTables, type KallsymsTables, type Target } from '../kallsyms/tables.js';
import type { KallsymsOptions, SymEntry } from '../kallsyms/symbols.js';
import { LINK_6_1 } from './v6.1.js';
import type { LinkVersion } from './version.js';
import { placement, within, type LinkerScript, type ScriptAssignment } from './linker-script.js';

const STB_LOCAL = 0;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const STT_OBJECT = 1;
const STT_SECTION = 3;
const STT_FILE = 4;
const SHF_WRITE = 0x1n;
const SHF_ALLOC = 0x2n;
const SHF_EXECINSTR = 0x4n;

/** What nm reads of the output section a symbol lands in: the union of its input sections' flags. */
interface OutputKind {
  flags: bigint;
  /** Every input is SHT_NOBITS, so the output has no file bytes ('b'). */
  nobits: boolean;
}

/** nm's letter for a symbol of vmlinux, from the output section it lands in. */
function nmLetter(bind: number, type: number, out: OutputKind): string {
  if (bind === STB_WEAK) return type === STT_OBJECT ? 'V' : 'W';
  const c = (out.flags & SHF_EXECINSTR) !== 0n ? 't' : out.nobits ? 'b' : (out.flags & SHF_WRITE) !== 0n ? 'd' : 'r';
  return bind === STB_LOCAL ? c : c.toUpperCase();
}

interface Place {
  discard: boolean;
  text: boolean;
  percpu: boolean;
  /** The output section the input section goes to. */
  out: string;
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
export function estimateSymbols(objects: readonly ElfFile[], script: LinkerScript, opts: KallsymsOptions, v: LinkVersion = LINK_6_1): SymEntry[] {
  const kept = (name: string): boolean => !!opts.allSymbols || v.kallsyms.keptOutsideText(name);
  const out: SymEntry[] = [];
  const globals = new Set<string>();
  const undefinedNames = new Set<string>();
  const place = new Map<string, Place>();
  const where = (name: string, exec: boolean): Place => {
    let p = place.get(name);
    if (!p) {
      const pat = placement(script, name);
      p = pat
        ? { discard: pat.discard, text: script.textRanges.some((r) => within(r, pat.pos)), percpu: within(script.percpuRange, pat.pos), out: pat.out || name }
        : { discard: false, text: exec, percpu: false, out: name }; // an orphan section: kept, placed by ld under its own name
      place.set(name, p);
    }
    return p;
  };
  // First the output sections' kinds, from every input section that goes there.
  const outputs = new Map<string, OutputKind>();
  for (const elf of objects) {
    for (const sec of elf.sections) {
      if ((sec.flags & SHF_ALLOC) === 0n) continue;
      const p = where(sec.name, (sec.flags & SHF_EXECINSTR) !== 0n);
      if (p.discard) continue;
      const o = outputs.get(p.out) ?? { flags: 0n, nobits: true };
      o.flags |= sec.flags;
      o.nobits &&= sec.type === SHT_NOBITS;
      outputs.set(p.out, o);
    }
  }
  // ld makes an output section that no input feeds (it only assigns
  // symbols) of the kind of the output section before it, less code.
  let prev: OutputKind | undefined;
  for (const name of script.outputs) {
    const o = outputs.get(name);
    if (o) prev = o;
    else if (prev && name !== '/DISCARD/') outputs.set(name, (prev = { flags: prev.flags & ~SHF_EXECINSTR, nobits: prev.nobits }));
  }
  const push = (type: string, name: string, percpu: boolean): void => {
    if (v.mksysmapDrops(type, name) || v.kallsyms.isIgnoredSymbol(name, type)) return;
    const abs = percpu && !!opts.absolutePercpu;
    out.push({ hi: 0, lo: 0, type: (abs ? 'A' : type).charCodeAt(0), name, startPos: out.length, percpuAbsolute: abs });
  };

  // A weak definition of a name some object defines strongly leaves no symbol of its own.
  const strong = new Set<string>();
  for (const elf of objects) {
    for (const sym of elf.symbols()) if (sym.bind === STB_GLOBAL && sym.shndx !== SHN_UNDEF && sym.name) strong.add(sym.name);
  }
  for (const elf of objects) {
    for (const sym of elf.symbols()) {
      if (sym.type === STT_SECTION || sym.type === STT_FILE || !sym.name) continue;
      if (sym.bind === STB_WEAK && sym.shndx !== SHN_UNDEF && strong.has(sym.name)) {
        globals.add(sym.name);
        continue;
      }
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
      if (!sec || (sec.flags & SHF_ALLOC) === 0n) continue; // debugging / non-alloc: 'N'/'n', dropped
      const p = where(sec.name, (sec.flags & SHF_EXECINSTR) !== 0n);
      if (p.discard || (!p.text && !kept(sym.name))) continue;
      push(nmLetter(sym.bind, sym.type, outputs.get(p.out)!), sym.name, p.percpu);
    }
  }

  // Symbols the link itself defines: the script's assignments, and whatever
  // the objects still need (ld's __start_/__stop_ symbols among them), of the
  // kind of the output section they belong to when the script says which.
  const linkerDefined = new Map<string, ScriptAssignment | undefined>();
  for (const a of script.assignments) if (!linkerDefined.has(a.name)) linkerDefined.set(a.name, a);
  for (const n of undefinedNames) if (!linkerDefined.has(n)) linkerDefined.set(n, undefined);
  for (const [name, a] of linkerDefined) {
    if (globals.has(name) || a?.absolute) continue; // absolute: 'A', which kallsyms drops
    const text = !!a && script.textRanges.some((r) => within(r, a.pos));
    if (a && !text && !kept(name)) continue;
    // The kind of the output section it is assigned in, or between sections
    // of the one before it (nm's letter for a few such symbols differs: ld
    // relates some to the section after; the margin covers that).
    const home = a?.out ? a.out : a?.after.find((n) => outputs.has(n));
    const kind = home !== undefined ? outputs.get(home) : undefined;
    const letter = kind ? nmLetter(STB_GLOBAL, 0, kind) : text ? 'T' : 'D';
    push(letter, name, !!a && within(script.percpuRange, a.pos));
  }
  return out;
}

/** The tables of a predicted symbol set (their sizes are what matters). */
export function estimateTables(symbols: SymEntry[], opts: KallsymsOptions, target: Target, v: LinkVersion = LINK_6_1): KallsymsTables {
  return buildTables({ symbols, text: 0n, relativeBase: 0n, version: v.kallsyms }, opts, target);
}
