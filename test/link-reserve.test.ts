// The room the single link reserves for the kallsyms tables follows each
// kernel version's own layout (reserve.ts): with no margin, the reserved
// image is byte for byte what that version's C tool places in .rodata.
// Pure: no kernel tree.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { kallsyms, layoutTables } from '../src/kernel/kallsyms/index.js';
import { KALLSYMS_VERSIONS } from '../src/kernel/kallsyms/versions.js';
import { reserve, reservedImage, type Margin } from '../src/kernel/link/reserve.js';

const NO_MARGIN: Margin = { symbols: 0, namesPermille: 0, namesMin: 0, tokenTable: 0 };
const target = { wordSize: 8, endian: 'little' } as const;
const opts = { allSymbols: true, baseRelative: true };

function map(n: number): Buffer {
  let t = 'ffffffff81000000 T _text\n';
  for (let i = 0; i < n; i++) t += `ffffffff81${(0x1000 + i * 16).toString(16).padStart(6, '0')} t sym_${i % 13}_${i}\n`;
  return Buffer.from(t);
}

for (const version of KALLSYMS_VERSIONS) {
  describe(`the reserved kallsyms room of Linux ${version.id}`, () => {
    const tables = kallsyms(map(1000), opts, target, version).tables;

    test("slots come in the order the version's C tool writes its tables", () => {
      const res = reserve(tables, NO_MARGIN);
      assert.deepEqual(
        res.slots.map((s) => s.name),
        layoutTables(tables).tables.map((t) => t.name),
      );
    });

    test("with no margin, the reserved image is the C tool's layout, zero-padded to a word", () => {
      const res = reserve(tables, NO_MARGIN);
      const laid = layoutTables(tables).image;
      const image = reservedImage(tables, res);
      assert.ok(image.length - laid.length >= 0 && image.length - laid.length < target.wordSize, `${image.length} vs ${laid.length}`);
      assert.ok(image.subarray(0, laid.length).equals(laid));
      assert.ok(image.subarray(laid.length).every((b) => b === 0));
    });
  });
}
