// kallsyms in TypeScript: nm text in, kallsyms tables out (Linux 6.1 semantics).

import { readMap, selectSymbols, type KallsymsOptions } from './symbols.js';
import { buildTables, type KallsymsTables, type Target } from './tables.js';

export { KallsymsError, type KallsymsOptions } from './symbols.js';
export { buildTables, layoutTables, type KallsymsTables, type Target } from './tables.js';
export { decodeTables, imageSource, type DecodedSymbol, type DecodeParams } from './decode.js';
export { emitKallsyms, writeKallsyms } from './emit.js';
export { elfTableSource, elfTarget } from './elf-source.js';

export interface KallsymsResult {
  tables: KallsymsTables;
  /** What the C tool would have printed to stderr without failing. */
  diagnostics: string[];
}

/** `scripts/kallsyms [options] in.map`, as a function of the map's bytes. */
export function kallsyms(nmOutput: Uint8Array, opts: KallsymsOptions, target: Target): KallsymsResult {
  const map = readMap(nmOutput);
  const sel = selectSymbols(map, opts);
  return { tables: buildTables(sel, opts, target), diagnostics: map.diagnostics };
}
