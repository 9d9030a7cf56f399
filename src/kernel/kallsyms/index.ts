// kallsyms in TypeScript: nm text in, kallsyms tables out (Linux 6.1 semantics).

import { readMap, selectSymbols, type KallsymsOptions, type Selection } from './symbols.js';
import { buildTables, type KallsymsTables, type Target } from './tables.js';

export { KallsymsError, type KallsymsOptions, type Selection } from './symbols.js';
export { assembleNameTables, buildTables, layoutTables, nameTables, type KallsymsTables, type NameTables, type Target } from './tables.js';
export { decodeTables, imageSource, type DecodedSymbol, type DecodeParams } from './decode.js';
export { emitKallsyms, writeKallsyms } from './emit.js';
export { elfTableSource, elfTarget } from './elf-source.js';

export interface KallsymsResult {
  tables: KallsymsTables;
  /** What the C tool would have printed to stderr without failing. */
  diagnostics: string[];
}

/** The symbols `scripts/kallsyms [options] in.map` puts in its table, in table order. */
export function readSelection(nmOutput: Uint8Array, opts: KallsymsOptions): { selection: Selection; diagnostics: string[] } {
  const map = readMap(nmOutput);
  return { selection: selectSymbols(map, opts), diagnostics: map.diagnostics };
}

/** `scripts/kallsyms [options] in.map`, as a function of the map's bytes. */
export function kallsyms(nmOutput: Uint8Array, opts: KallsymsOptions, target: Target): KallsymsResult {
  const { selection, diagnostics } = readSelection(nmOutput, opts);
  return { tables: buildTables(selection, opts, target), diagnostics };
}
