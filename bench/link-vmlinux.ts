// Linking vmlinux after `touch fs/ioctl.c`: the tree's scripts/link-vmlinux.sh
// (Linux 6.1 or 6.12) against `kbx link-vmlinux`, side by side in one run,
// on a KALLSYMS tree.
//
//   npx tsc -p . && node dist/bench/link-vmlinux.js [--tree OBJTREE] [--runs N] [--stage-only] [--work DIR]
//
// OBJTREE: a built object tree (O=) with CONFIG_KALLSYMS; by default the 6.1
// tree the link and boot tests share (test/support/link-tree.ts), built on
// first use. --stage-only measures the link stage alone and touches no
// source file (it removes OBJTREE's vmlinux to have make link once for the
// capture). DIR: where the bench keeps its files (default /var/tmp/kbx-bench-link). Two measurements, each alternating the variants run by run so
// that they see the same machine load, medians reported:
//
//   whole rebuild   touch fs/ioctl.c, then `make -j2 vmlinux` three ways:
//                   plain make (the script links), plain make with the link
//                   routed to kbx (the argument `kbx make` adds, nothing
//                   else), and `kbx make` (cache and routed link; its store
//                   is warmed by one untimed round first)
//   link stage      what make runs for vmlinux alone, on the same inputs:
//                   the script, then `kbx link-vmlinux`, with the arguments
//                   and environment make passed the script
//
// Full links are counted by an `ld` first on PATH that logs every call with
// a linker script (vmlinux's, not `ld -r`). kbx's own timeline (its report's
// steps) is printed for the median kbx run: where the time goes.
//
// The run measures a copy of the built kbx (bench/common.ts snapshotKbx):
// other work rebuilding dist/ must not change the code half way through.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LinkReport } from '../src/kernel/link/events.js';
import { makefileSeries } from '../src/kernel/link/detect.js';
import { routeOverride } from '../src/kernel/link/route.js';
import { kernelTree } from '../test/support/kernel-tree.js';
import { captureOverride, countingLd, linkTree, readLinkCall, runKbxLink, runStockLink } from '../test/support/link-tree.js';
import { cleanEnv, kbx, kbxSummary, median, snapshotKbx, timed } from './common.js';

const { values } = parseArgs({
  options: { tree: { type: 'string' }, runs: { type: 'string', default: '5' }, 'stage-only': { type: 'boolean', default: false }, work: { type: 'string', default: '/var/tmp/kbx-bench-link' } },
});
const WORK = values.work;
const runs = Number(values.runs);

function srcOf(objtree: string): string {
  return realpathSync(join(objtree, 'source')); // an O= tree links to its source tree
}

interface Sample {
  seconds: number;
  links: number;
  report?: LinkReport;
}

const pad = (s: string, n: number) => s.padEnd(n);
const secs = (x: number) => x.toFixed(3).padStart(8);
const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)} %`;

function main(): void {
  let out = values.tree;
  if (!out) {
    const src = kernelTree();
    if (!src) {
      process.stdout.write('link-vmlinux bench: no Linux 6.1 source (apt-get install linux-source-6.1)\n');
      return;
    }
    out = linkTree(src).out;
  }
  if (!existsSync(join(out, 'vmlinux.o'))) throw new Error(`${out} is not a built object tree (no vmlinux.o)`);
  if (!/^CONFIG_KALLSYMS=y$/m.test(readFileSync(join(out, '.config'), 'utf8'))) throw new Error(`${out} is not configured with CONFIG_KALLSYMS`);
  const src = srcOf(out);
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  snapshotKbx(join(WORK, 'kbx-code'));
  const entry = join(WORK, 'kbx-code', 'dist', 'src', 'cli', 'link-vmlinux.js');
  const log = join(WORK, 'make.log');
  const ld = countingLd(join(WORK, 'ld'), 'ld');
  const env = cleanEnv({ PATH: `${ld.dir}:${process.env.PATH}` });
  const touch = () => {
    const now = new Date();
    utimesSync(join(src, 'fs/ioctl.c'), now, now);
  };
  const counted = <T>(f: () => T): { value: T; links: number } => {
    const before = ld.links();
    const value = f();
    return { value, links: ld.links() - before };
  };

  // ---- whole rebuild ----
  const make = (extra: string[]) => () => timed('make', ['-C', src, `O=${out}`, '-j2', 'vmlinux', ...extra], { cwd: src, env, log });
  const kbxEnv = { ...env, KBX_DIR: join(WORK, 'store') };
  const kbxMake = () => timed(process.execPath, [kbx.main, 'make', '--progress', 'off', '-C', src, `O=${out}`, '-j2', 'vmlinux'], { cwd: src, env: kbxEnv, log });
  const variants: [string, () => ReturnType<ReturnType<typeof make>>][] = [
    ['make (the script links)', make([])],
    ['make, link routed to kbx', make([routeOverride(process.execPath, entry)])],
    ['kbx make', kbxMake],
  ];
  // One untimed round: every variant's recipe recorded in .vmlinux.cmd once, kbx's store filled.
  for (const [, run] of values['stage-only'] ? [] : variants) {
    touch();
    if (run().status !== 0) throw new Error(`warm-up build failed, see ${log}`);
  }
  const whole = new Map<string, Sample[]>(variants.map(([n]) => [n, []]));
  for (let i = 0; i < (values['stage-only'] ? 0 : runs); i++) {
    for (const [name, run] of variants) {
      touch();
      const { value, links } = counted(run);
      if (value.status !== 0) throw new Error(`${name} failed, see ${log}`);
      whole.get(name)!.push({ seconds: value.seconds, links });
    }
  }
  const lastKbx = values['stage-only'] ? '' : (kbxSummary(readFileSync(log, 'utf8'))?.line ?? '');
  if (!values['stage-only']) execFileSync(process.execPath, [kbx.main, 'daemon', 'stop'], { env: kbxEnv, stdio: 'ignore' });

  // ---- link stage alone ----
  if (values['stage-only']) rmSync(join(out, 'vmlinux'), { force: true });
  else touch();
  timed('make', ['-C', src, `O=${out}`, '-j2', 'vmlinux', captureOverride()], { cwd: src, env, log });
  const call = readLinkCall(out);
  call.env.PATH = env.PATH; // the counting ld
  const stage = new Map<string, Sample[]>([['scripts/link-vmlinux.sh', []], ['kbx link-vmlinux', []]]);
  for (let i = 0; i < runs; i++) {
    const s = counted(() => runStockLink(out, call));
    if (s.value.status !== 0) throw new Error(`stock link failed:\n${s.value.stderr}`);
    stage.get('scripts/link-vmlinux.sh')!.push({ seconds: s.value.seconds, links: s.links });
    const rep = join(WORK, `report-${i}.json`);
    const k = counted(() => runKbxLink(out, call, { KBX_LINK_REPORT: rep }, undefined, entry));
    if (k.value.status !== 0) throw new Error(`kbx link failed:\n${k.value.stderr}`);
    stage.get('kbx link-vmlinux')!.push({ seconds: k.value.seconds, links: k.links, report: JSON.parse(readFileSync(rep, 'utf8')) as LinkReport });
  }

  // ---- report ----
  const rows = (m: Map<string, Sample[]>): string =>
    [...m]
      .map(([name, xs]) => `  ${pad(name, 30)} ${secs(median(xs.map((x) => x.seconds)))} ${String(median(xs.map((x) => x.links))).padStart(11)}`)
      .join('\n');
  const med = (m: Map<string, Sample[]>, name: string) => median(m.get(name)!.map((x) => x.seconds));
  const conf = readFileSync(join(out, '.config'), 'utf8');
  const on = ['64BIT', 'KALLSYMS_ALL', 'SMP', 'MODULES', 'DEBUG_INFO_BTF'].filter((o) => conf.includes(`\nCONFIG_${o}=y`));
  const kbxRuns = stage.get('kbx link-vmlinux')!;
  const mid = [...kbxRuns].sort((a, b) => a.seconds - b.seconds)[kbxRuns.length >> 1]!;
  const r = mid.report!;
  const k = r.kallsyms;
  const steps = (r.steps ?? [])
    .slice()
    .sort((a, b) => a.at - b.at)
    .map((s) => `    ${pad(s.step, 34)} ${s.at.toFixed(3)} s  +${s.seconds.toFixed(3)} s`)
    .join('\n');
  const ms = med(stage, 'scripts/link-vmlinux.sh');
  const mk = med(stage, 'kbx link-vmlinux');
  const wp = med(whole, 'make (the script links)');
  process.stdout.write(
    `kbx link-vmlinux benchmark: ${out} (${makefileSeries(readFileSync(join(src, 'Makefile'), 'utf8')) ?? '?'}, ${on.join(' ')}), ${k?.symbols ?? '?'} kallsyms symbols; median of ${runs}, 2 cores\n\n` +
      `whole rebuild: touch fs/ioctl.c; make -j2 vmlinux\n  ${pad('variant', 30)} ${'seconds'.padStart(8)} ${'full links'.padStart(11)}\n${rows(whole)}\n` +
      `  routed / plain: ${pct(med(whole, 'make, link routed to kbx'), wp)}; kbx make / plain: ${pct(med(whole, 'kbx make'), wp)}\n` +
      `  last kbx make: ${lastKbx}\n\n` +
      `link stage alone (what make runs for vmlinux)\n  ${pad('variant', 30)} ${'seconds'.padStart(8)} ${'full links'.padStart(11)}\n${rows(stage)}\n` +
      `  kbx / stock: ${pct(mk, ms)} of the time (goal: at most 40 %)\n` +
      (k ? `  kallsyms: ${k.tableBytes} bytes, ${k.paddingBytes} of padding (${((100 * k.paddingBytes) / k.tableBytes).toFixed(2)} %), reservation ${k.reservationReused ? 'reused' : 'computed'}, name tables ${k.names ?? '?'}\n` : '') +
      `\nthe median kbx link, step by step (seconds from process start; steps may overlap)\n` +
      `    ${pad('node and kbx loaded', 34)} ${(r.startup ?? 0).toFixed(3)} s\n${steps}\n` +
      `    ${pad('process exit', 34)} ${mid.seconds.toFixed(3)} s\n` +
      `\nmake output: ${log}\n`,
  );
}

main();
