// What a kbx-linked vmlinux with kallsyms must satisfy, checked against the
// tree's own C scripts/kallsyms rather than kbx's TypeScript one:
//
// - System.map is what the script's mksysmap makes of vmlinux (`${NM} -n
//   vmlinux | sed -f scripts/mksysmap`, 6.12), the script's closing
//   `cmp System.map <last .syms>` check;
// - the kallsyms tables in vmlinux are, table by table, the bytes the C tool
//   makes of that System.map (its .S assembled for vmlinux's target with
//   `_text` where System.map has it);
// - decoded as the kernel reads them, they list System.map lines only.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ElfFile } from '../../src/elf/elf-file.js';
import { addressLocation } from '../../src/elf/patch.js';
import { decodeTables, elfTableSource, elfTarget, type KallsymsOptions } from '../../src/kernel/kallsyms/index.js';
import { assemble, runCKallsyms, TARGETS } from './kallsyms-oracle.js';
import { cKallsyms } from './kernel-tree.js';

/**
 * Asserts the above for the 6.12 object tree `objdir` of source tree `tree`
 * and returns how many symbols the C tool keeps (kallsyms_num_syms).
 */
export function assertKallsymsAreCTools(objdir: string, tree: string): number {
  const map = readFileSync(join(objdir, 'System.map'));
  const nmSed = execFileSync('sh', ['-c', 'nm -n vmlinux | sed -f "$1"', 'mksysmap', join(tree, 'scripts/mksysmap')], { cwd: objdir, maxBuffer: 1 << 30 });
  assert.ok(nmSed.equals(map), "System.map is not the script's mksysmap of vmlinux");

  const config = readFileSync(join(objdir, '.config'), 'utf8');
  const on = (k: string): boolean => new RegExp(`^CONFIG_${k}=y$`, 'm').test(config);
  const o: KallsymsOptions = { allSymbols: on('KALLSYMS_ALL'), absolutePercpu: on('KALLSYMS_ABSOLUTE_PERCPU') };
  const c = runCKallsyms(cKallsyms(tree), join(objdir, 'System.map'), o);
  assert.equal(c.status, 0, c.stderr);

  const elf = ElfFile.parse(readFileSync(join(objdir, 'vmlinux')));
  const target = elfTarget(elf);
  const lines = map.toString('latin1').split('\n');
  const text = BigInt(`0x${lines.find((l) => l.endsWith(' _text'))!.split(' ')[0]}`);
  const work = mkdtempSync(join(tmpdir(), 'kbx-kallsyms-c-'));
  let cObj: ElfFile;
  try {
    cObj = ElfFile.parse(assemble(work, 'c', c.asm, target.wordSize === 8 ? TARGETS.le64 : TARGETS.le32, text));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  assert.equal(target.endian, 'little'); // the x86 trees the tests build
  const rodata = cObj.section('.rodata')!;
  const cBytes = Buffer.from(cObj.sectionData(rodata));
  const labels = cObj
    .symbols()
    .filter((s) => s.name.startsWith('kallsyms_') && cObj.sections[s.sectionIndex] === rodata)
    .sort((a, b) => Number(a.value - b.value));
  assert.equal(labels.length, 8, labels.map((l) => l.name).join(' '));
  labels.forEach((l, i) => {
    const from = Number(l.value);
    const to = i + 1 < labels.length ? Number(labels[i + 1]!.value) : cBytes.length;
    const inVmlinux = elf.symbol(l.name);
    assert.ok(inVmlinux, `vmlinux has no ${l.name}`);
    const at = addressLocation(elf, inVmlinux.value);
    const mine = Buffer.from(elf.bytes.subarray(at.offset, at.offset + (to - from)));
    // relative_base is `_text + n`: the C object has it resolved against the absolute _text given.
    assert.ok(mine.equals(cBytes.subarray(from, to)), `${l.name} differs from the C tool's`);
  });

  const count = cBytes.readUInt32LE(Number(cObj.symbol('kallsyms_num_syms')!.value));
  const p = { wordSize: target.wordSize, endian: target.endian, baseRelative: true, absolutePercpu: !!o.absolutePercpu };
  const decoded = decodeTables(elfTableSource(elf), p).symbols;
  assert.equal(decoded.length, count);
  const mapLines = new Set(lines);
  const hex = (a: bigint): string => a.toString(16).padStart(target.wordSize * 2, '0');
  // With --absolute-percpu the C tool types per-CPU symbols 'A' (System.map has their own type).
  const percpu = new Set(o.absolutePercpu ? mapPercpu(lines) : []);
  const stray = decoded
    .map((s) => `${hex(s.addr)} ${s.type} ${s.name}`)
    .filter((l) => !mapLines.has(l) && !(l.split(' ')[1] === 'A' && percpu.has(l.replace(' A ', ' '))));
  assert.deepEqual(stray.slice(0, 10), [], 'decoded symbols that are no System.map line');
  return count;
}

/** `addr name` of System.map's per-CPU symbols: from __per_cpu_start to __per_cpu_end. */
function mapPercpu(lines: readonly string[]): string[] {
  const at = (n: string): bigint | undefined => {
    const l = lines.find((x) => x.endsWith(` ${n}`));
    return l === undefined ? undefined : BigInt(`0x${l.split(' ')[0]}`);
  };
  const start = at('__per_cpu_start');
  const end = at('__per_cpu_end');
  if (start === undefined || end === undefined) return [];
  return lines
    .map((l) => l.split(' '))
    .filter((f) => f.length === 3 && BigInt(`0x${f[0]}`) >= start && BigInt(`0x${f[0]}`) <= end)
    .map((f) => `${f[0]} ${f[2]}`);
}
