// What one kernel version's scripts/kallsyms.c does differently, behind one
// interface: the rest of kallsyms (selection, compression, table bytes) and
// everything that uses it take a KallsymsVersion and ask it. One file per
// version (v6.1.ts, v6.12.ts), listed in versions.ts; a new kernel is a new
// file there. VERSIONS.md lists what differs and why.

import type { KallsymsOptions, SymbolMap, SymEntry } from './symbols.js';

export type TableName =
  | 'kallsyms_addresses'
  | 'kallsyms_offsets'
  | 'kallsyms_relative_base'
  | 'kallsyms_num_syms'
  | 'kallsyms_names'
  | 'kallsyms_markers'
  | 'kallsyms_seqs_of_names'
  | 'kallsyms_token_table'
  | 'kallsyms_token_index';

export interface KallsymsVersion {
  /** The kernel series (VERSION.PATCHLEVEL) whose scripts/kallsyms.c this is. */
  readonly id: string;
  /** The options the C tool takes; any other is its usage error. */
  readonly options: readonly (keyof KallsymsOptions)[];
  /** The options as the tool applies them (6.12: tables are always base-relative). */
  effective(o: KallsymsOptions): KallsymsOptions;
  /** read_map(): the map's bytes read as the tool reads them; throws KallsymsError where it exits. */
  readMap(input: Uint8Array): SymbolMap;
  /** is_ignored_symbol(): names and types dropped while reading. */
  isIgnoredSymbol(name: string, type: string): boolean;
  /** Names symbol_valid() keeps outside the text ranges without --all-symbols. */
  keptOutsideText(name: string): boolean;
  /** Whether an empty selection is the tool's "No valid symbol." failure. */
  readonly emptyIsError: boolean;
  /** Refuses (KallsymsError) kept symbols whose tables the tool's output could not hold. */
  checkSelection?(symbols: readonly SymEntry[]): void;
  /** The tables in the order write_src() emits them into .rodata. */
  tableOrder(o: KallsymsOptions): readonly TableName[];
}
