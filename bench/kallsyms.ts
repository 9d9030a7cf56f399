// kallsyms: the tree's C tool against ours, on the same symbol maps.
//
//   npx tsc -p . && node dist/bench/kallsyms.js [runs] [extra.map ...]
//
// For each map, alternating runs (so both see the same machine load):
//   C process   scripts/kallsyms built from the 6.1 tree, .S to a file
//   our process node dist/src/kernel/kallsyms/main.js, .S + blob to files
//   in-process  kallsyms() + emitKallsyms() in this (warm) process, which is
//               how kbx's daemon runs it
//   assemble    gcc -c of each tool's .S (what link-vmlinux.sh does next)
// Medians are reported with the ratio C time / our time (> 1: we are faster).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emitKallsyms, kallsyms, KALLSYMS_6_1, type KallsymsOptions, type Target } from '../src/kernel/kallsyms/index.js';
import { optionFlags } from '../test/support/kallsyms-oracle.js';
import { syntheticMap } from '../test/support/kallsyms-synthetic.js';
import { cKallsyms, kernelTree } from '../test/support/kernel-tree.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(root, 'test/fixtures/kallsyms');
const ourMain = join(root, 'dist/src/kernel/kallsyms/main.js');

interface Case {
  name: string;
  map: string;
  opts: KallsymsOptions;
  target: Target;
}

function time(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function check(r: ReturnType<typeof spawnSync>, what: string): void {
  if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr?.toString()}`);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function main(): void {
  const tree = kernelTree();
  if (!tree) throw new Error('no linux-source-6.1 tree (see test/support/kernel-tree.ts)');
  const tool = cKallsyms(tree);
  const runs = Number(process.argv[2] ?? 5);
  const work = mkdtempSync(join(tmpdir(), 'kbx-kallsyms-bench-'));
  const all: KallsymsOptions = { allSymbols: true, absolutePercpu: true, baseRelative: true };
  const x86_64: Target = { wordSize: 8, endian: 'little' };
  const synthetic = join(work, 'synthetic-150k.map');
  writeFileSync(synthetic, syntheticMap(150000, 3));
  const cases: Case[] = [
    { name: 'i386 tinyconfig (10.8k lines)', map: join(fixtures, 'vmlinux-i386-tinyconfig.nm'), opts: { allSymbols: true, baseRelative: true }, target: { wordSize: 4, endian: 'little' } },
    { name: 'x86_64 SMP tinyconfig (13.5k lines)', map: join(fixtures, 'vmlinux-x86_64-tinyconfig-smp.nm'), opts: all, target: x86_64 },
    { name: 'synthetic x86_64 (150k symbols)', map: synthetic, opts: all, target: x86_64 },
    ...process.argv.slice(3).map((map) => ({ name: map, map, opts: all, target: x86_64 })),
  ];
  for (const inc of [4, 8]) {
    const d = join(work, `inc${inc * 8}/asm`);
    spawnSync('mkdir', ['-p', d]);
    writeFileSync(join(d, 'bitsperlong.h'), `#define BITS_PER_LONG ${inc * 8}\n`);
  }

  console.log(`kallsyms benchmark, ${runs} runs each, medians in ms (ratio = C / ours)\n`);
  for (const c of cases) {
    const flags = optionFlags(c.opts);
    const m32 = c.target.wordSize === 4 ? ['-m32'] : [];
    const inc = join(work, `inc${c.target.wordSize * 8}`);
    const cS = join(work, 'c.S');
    const oS = join(work, 'o.S');
    const oBin = join(work, 'o.bin');
    const t = { c: [] as number[], ours: [] as number[], inproc: [] as number[], cAs: [] as number[], oursAs: [] as number[] };
    const input = readFileSync(c.map);
    for (let i = 0; i < runs; i++) {
      t.c.push(time(() => {
        const r = spawnSync(tool, [...flags, c.map], { maxBuffer: 1 << 30 });
        check(r, 'C kallsyms');
        writeFileSync(cS, r.stdout);
      }));
      t.ours.push(time(() => check(spawnSync(process.execPath, [ourMain, ...flags, '--word-size', String(c.target.wordSize), c.map, oS, oBin]), 'our kallsyms')));
      t.inproc.push(time(() => emitKallsyms(kallsyms(input, c.opts, c.target, KALLSYMS_6_1).tables, { blobPath: oBin })));
      t.cAs.push(time(() => check(spawnSync('gcc', [...m32, '-c', '-I', inc, '-o', join(work, 'c.o'), cS]), 'assembling C output')));
      t.oursAs.push(time(() => check(spawnSync('gcc', [...m32, '-c', '-o', join(work, 'o.o'), oS]), 'assembling our output')));
    }
    const [cm, om, im, ca, oa] = [t.c, t.ours, t.inproc, t.cAs, t.oursAs].map(median) as [number, number, number, number, number];
    const f = (x: number): string => x.toFixed(1).padStart(8);
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
    console.log(`${c.name}  [${flags.join(' ')}]`);
    console.log(`  generate:            C ${f(cm)}   our process ${f(om)} (${ratio(cm, om)})   in-process ${f(im)} (${ratio(cm, im)})`);
    console.log(`  assemble:            C ${f(ca)}   ours        ${f(oa)} (${ratio(ca, oa)})`);
    console.log(`  generate + assemble: C ${f(cm + ca)}   our process ${f(om + oa)} (${ratio(cm + ca, om + oa)})   in-process ${f(im + oa)} (${ratio(cm + ca, im + oa)})\n`);
  }
  rmSync(work, { recursive: true, force: true });
}

main();
