// `node dist/src/kernel/kallsyms/main.js [--all-symbols] [--absolute-percpu]
//  [--base-relative] [--lto-clang] [--word-size 4|8] [--big-endian]
//  [--linux 6.1|6.12] in.map out.S out.bin`: the C tool of that kernel
// (6.1 by default) with its options, the tables written as a blob and a .S
// that includes it. Exit status 1 on a refused input.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { kallsyms, KallsymsError, kallsymsVersion, KALLSYMS_6_1, writeKallsyms, type KallsymsOptions, type KallsymsVersion } from './index.js';

async function main(argv: string[]): Promise<number> {
  const o: KallsymsOptions = {};
  let wordSize: 4 | 8 = 8;
  let endian: 'little' | 'big' = 'little';
  let version: KallsymsVersion | undefined = KALLSYMS_6_1;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--all-symbols') o.allSymbols = true;
    else if (a === '--absolute-percpu') o.absolutePercpu = true;
    else if (a === '--base-relative') o.baseRelative = true;
    else if (a === '--lto-clang') o.ltoClang = true;
    else if (a === '--big-endian') endian = 'big';
    else if (a === '--linux') version = kallsymsVersion(argv[++i] ?? '');
    else if (a === '--word-size' && (argv[i + 1] === '4' || argv[i + 1] === '8')) wordSize = argv[++i] === '4' ? 4 : 8;
    else if (a.startsWith('--')) files.length = 99; // force usage
    else files.push(a);
  }
  const unknown = Object.entries(o).find(([k]) => !version?.options.includes(k as keyof KallsymsOptions));
  if (files.length !== 3 || !version || unknown) {
    process.stderr.write(
      'usage: main.js [--all-symbols] [--absolute-percpu] [--base-relative] [--lto-clang] [--word-size 4|8] [--big-endian] [--linux 6.1|6.12] in.map out.S out.bin\n' +
        '(6.12 takes neither --base-relative nor --lto-clang)\n',
    );
    return 1;
  }
  const [map, sPath, binPath] = files as [string, string, string];
  try {
    const r = kallsyms(readFileSync(map), o, { wordSize, endian }, version);
    for (const d of r.diagnostics) process.stderr.write(`${d}\n`);
    await writeKallsyms(r.tables, sPath, binPath, { blobPath: resolve(binPath) });
    return 0;
  } catch (e) {
    if (!(e instanceof KallsymsError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
