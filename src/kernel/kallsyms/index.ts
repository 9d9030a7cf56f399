// kallsyms in TypeScript: nm text in, kallsyms tables out, with the semantics
// of one kernel version's scripts/kallsyms.c (versions.ts).

import { selectSymbols, type KallsymsOptions, type Selection } from './symbols.js';
import { buildTables, type KallsymsTables, type Target } from './tables.js';
import type { KallsymsVersion } from './version.js';

export { KallsymsError, type KallsymsOptions, type Selection } from './symbols.js';
export { assembleNameTables, buildTables, layoutTables, nameTables, type KallsymsTables, type NameTables, type Target } from './tables.js';
export { decodeTables, imageSource, type DecodedSymbol, type DecodeParams } from './decode.js';
export { emitKallsyms, writeKallsyms } from './emit.js';
export { elfTableSource, elfTarget } from './elf-source.js';
export type { KallsymsVersion, TableName } from './version.js';
export { KALLSYMS_6_1, KALLSYMS_6_12, KALLSYMS_VERSIONS, kallsymsVersion } from './versions.js';

export interface KallsymsResult {
  tables: KallsymsTables;
  /** What the C tool would have printed to stderr without failing. */
  diagnostics: string[];
}

/** The symbols `scripts/kallsyms [options] in.map` of `version` puts in its table, in table order. */
export function readSelection(nmOutput: Uint8Array, opts: KallsymsOptions, version: KallsymsVersion): { selection: Selection; diagnostics: string[] } {
  const map = version.readMap(nmOutput);
  return { selection: selectSymbols(map, opts, version), diagnostics: map.diagnostics };
}

/** `scripts/kallsyms [options] in.map` of `version`, as a function of the map's bytes. */
export function kallsyms(nmOutput: Uint8Array, opts: KallsymsOptions, target: Target, version: KallsymsVersion): KallsymsResult {
  const { selection, diagnostics } = readSelection(nmOutput, opts, version);
  return { tables: buildTables(selection, opts, target), diagnostics };
}
