// The check that kbx's kallsyms is the C tool's on a real kernel: in a tree
// the stock script just linked, the tables kbx makes from the script's last
// map (.tmp_vmlinux.kallsyms2.syms) decode to the same symbols as those in
// vmlinux, and writing them over vmlinux's own changes no byte.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ElfFile } from '../../src/elf/elf-file.js';
import { applyPatches, planSymbolWrite } from '../../src/elf/patch.js';
import { decodeTables, elfTableSource, elfTarget, imageSource, kallsyms, KALLSYMS_6_1, layoutTables, type KallsymsOptions } from '../../src/kernel/kallsyms/index.js';

export function assertStockTablesAreOurs(dir: string): void {
  const config = readFileSync(join(dir, '.config'), 'utf8');
  const on = (k: string): boolean => new RegExp(`^CONFIG_${k}=y$`, 'm').test(config);
  const o: KallsymsOptions = { allSymbols: on('KALLSYMS_ALL'), absolutePercpu: on('KALLSYMS_ABSOLUTE_PERCPU'), baseRelative: on('KALLSYMS_BASE_RELATIVE') };
  const vmlinux = readFileSync(join(dir, 'vmlinux'));
  const elf = ElfFile.parse(vmlinux);
  const target = elfTarget(elf);
  // link-vmlinux.sh links the tables made from this map into the final image.
  const mine = kallsyms(readFileSync(join(dir, '.tmp_vmlinux.kallsyms2.syms')), o, target, KALLSYMS_6_1);
  const { image, tables } = layoutTables(mine.tables);
  const p = { ...target, baseRelative: !!o.baseRelative, absolutePercpu: !!o.absolutePercpu };
  assert.deepEqual(decodeTables(imageSource(image, tables), p).symbols, decodeTables(elfTableSource(elf), p).symbols);
  const copy = Buffer.from(vmlinux);
  applyPatches(copy, tables.map((t) => planSymbolWrite(elf, t.name, image.subarray(t.offset, t.offset + t.size))));
  assert.equal(Buffer.compare(copy, vmlinux), 0, 'our tables differ from the C tool’s somewhere in vmlinux');
}
