// The link stage alone, Linux 6.1's scripts/link-vmlinux.sh against
// `kbx link-vmlinux`, on the same built tree after `touch fs/ioctl.c`.
//
//   npx tsc -p . && node dist/bench/link-vmlinux.js [objtree] [runs]
//
// objtree: a 6.1 tree configured with KALLSYMS and built (default: the test
// tree /var/tmp/kbx-link-test/out, else /var/tmp/kbx-kallsyms-work64). The
// benchmark touches fs/ioctl.c and runs make up to the link with what make
// passes the script captured, then runs both link stages alternately (same
// inputs, same machine load), each with an `ld` that counts full links.
// Reports medians, the number of full links each did, and kbx / stock.

import { existsSync, readFileSync, realpathSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import type { LinkReport } from '../src/kernel/link/events.js';
import { captureOverride, countingLd, make, readLinkCall, runKbxLink, runStockLink } from '../test/support/link-tree.js';

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function pickTree(): string | undefined {
  const arg = process.argv[2];
  if (arg) return arg;
  return ['/var/tmp/kbx-link-test/out', '/var/tmp/kbx-kallsyms-work64'].find((d) => existsSync(join(d, 'vmlinux.o')));
}

function srcOf(objtree: string): string {
  // An O= tree links to its source tree as `source`.
  return existsSync(join(objtree, 'source')) ? realpathSync(join(objtree, 'source')) : objtree;
}

function main(): void {
  const objtree = pickTree();
  if (!objtree) {
    process.stdout.write('link-vmlinux bench: no built 6.1 tree (run the link-vmlinux test first, or pass one)\n');
    return;
  }
  const runs = Number(process.argv[3] ?? 5);
  const src = srcOf(objtree);
  const now = new Date();
  utimesSync(join(src, 'fs/ioctl.c'), now, now);
  const makeArgs = src === objtree ? ['-j2', 'vmlinux', captureOverride()] : [`O=${objtree}`, '-j2', 'vmlinux', captureOverride()];
  make(src, makeArgs);
  const call = readLinkCall(objtree);

  const stock: number[] = [];
  const kbx: number[] = [];
  let stockLinks = 0;
  let kbxLinks = 0;
  let padding = '';
  for (let i = 0; i < runs; i++) {
    const ls = countingLd(`/tmp/kbx-bench-link/stock-${i}`);
    const s = runStockLink(objtree, call, ls.path);
    if (s.status !== 0) throw new Error(`stock link failed:\n${s.stderr}`);
    stock.push(s.seconds);
    stockLinks = ls.links();
    const lk = countingLd(`/tmp/kbx-bench-link/kbx-${i}`);
    const rep = `/tmp/kbx-bench-link/kbx-${i}/report.json`;
    const k = runKbxLink(objtree, call, { KBX_LINK_REPORT: rep }, lk.path);
    if (k.status !== 0) throw new Error(`kbx link failed:\n${k.stderr}`);
    kbx.push(k.seconds);
    kbxLinks = lk.links();
    const r = JSON.parse(readFileSync(rep, 'utf8')) as LinkReport;
    if (r.mode !== 'single') process.stdout.write(`kbx fell back: ${r.reason}\n`);
    if (r.kallsyms) {
      const p = r.kallsyms;
      padding = `${p.paddingBytes} bytes of ${p.tableBytes} (${((100 * p.paddingBytes) / p.tableBytes).toFixed(2)} %)`;
    }
  }
  const ms = median(stock);
  const mk = median(kbx);
  process.stdout.write(
    `link stage after touch fs/ioctl.c, ${objtree}, median of ${runs}\n` +
      `  ${'variant'.padEnd(22)} ${'seconds'.padStart(8)} ${'full links'.padStart(11)}\n` +
      `  ${'scripts/link-vmlinux.sh'.padEnd(22)} ${ms.toFixed(3).padStart(8)} ${String(stockLinks).padStart(11)}\n` +
      `  ${'kbx link-vmlinux'.padEnd(22)} ${mk.toFixed(3).padStart(8)} ${String(kbxLinks).padStart(11)}\n` +
      `  kbx / stock: ${((100 * mk) / ms).toFixed(1)} % of the time (goal: at most 40 %), ${kbxLinks} link(s) vs ${stockLinks}\n` +
      `  kallsyms padding: ${padding}\n`,
  );
}

main();
