// Build farm benchmark (issue 15): on one machine distcc cannot beat local
// compiles; this measures what composing kbx with it costs. Linux 6.1
// tinyconfig, each mode in its own O= directory under --work:
//   plain        make -j<cores>                         (CC=gcc)
//   distcc       make CC="distcc gcc" -j<jobs>          (two distccd on loopback)
//   kbx+distcc   kbx make CC="distcc gcc" -j<jobs>      (empty store)
//   warm CC=gcc  make clean, then kbx make CC=gcc -j<cores> on kbx+distcc's store
// and compares each vmlinux with plain's.
//   node dist/bench/farm.js [--jobs 8] [--cores 2] [--work /var/tmp/kbx-bench-farm]
// Run it under `flock /var/tmp/kbx-kernel.lock` on a shared machine.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPRODUCIBLE, cleanEnv, kbx, kbxSummary, must, readLog, snapshotKbx, timed } from './common.js';
import { Distccd } from '../test/support/distcc.js';
import { kernelTree } from '../test/support/kernel-tree.js';

const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '8' }, cores: { type: 'string', default: String(cpus().length) }, work: { type: 'string', default: '/var/tmp/kbx-bench-farm' } },
});
const work = values.work!;
const tree = kernelTree();
if (!tree) throw new Error('Linux 6.1 sources missing: apt-get install linux-source-6.1');
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'logs'), { recursive: true });
snapshotKbx(join(work, 'kbx-code'));

const farm = [await Distccd.start(Number(values.jobs) / 2), await Distccd.start(Number(values.jobs) / 2)];
// Without DISTCC_NO_REWRITE_CROSS Debian's distcc configures another kernel than CC=gcc (README, Build farms).
const distccEnv = { DISTCC_HOSTS: farm.map((d) => d.host(Number(values.jobs) / 2)).join(' '), DISTCC_DIR: join(work, 'distcc'), DISTCC_NO_REWRITE_CROSS: '1' };
mkdirSync(distccEnv.DISTCC_DIR);
const kbxDir = join(work, 'kbx-store');
const env = cleanEnv({ ...REPRODUCIBLE, ...distccEnv, KBX_DIR: kbxDir });
const served = () => farm.reduce((n, d) => n + d.compilesServed(), 0);

interface Row {
  name: string;
  seconds: number;
  line?: string;
  served: number;
  same?: boolean;
}
const rows: Row[] = [];
const run = (name: string, mode: string, kbxRun: boolean, args: string[]) => {
  const out = join(work, mode);
  if (!existsSync(join(out, '.config'))) must('make', ['-C', tree, `O=${out}`, 'tinyconfig'], { env });
  const log = join(work, 'logs', `${name.replace(/\W+/g, '-')}.log`);
  const before = served();
  const cmd = kbxRun ? [process.execPath, [kbx.main, 'make', '-C', tree, `O=${out}`, ...args]] : ['make', ['-C', tree, `O=${out}`, ...args]];
  const t = timed(cmd[0] as string, cmd[1] as string[], { cwd: tree, env, log });
  if (t.status !== 0) throw new Error(`${name} failed: see ${log}`);
  const plain = join(work, 'plain', 'vmlinux');
  const same = existsSync(plain) ? readFileSync(join(out, 'vmlinux')).equals(readFileSync(plain)) : undefined;
  rows.push({ name, seconds: t.seconds, line: kbxSummary(readLog(log))?.line, served: served() - before, same });
  console.error(`${name}: ${t.seconds.toFixed(1)} s`);
};

try {
  run('plain, cold', 'plain', false, [`-j${values.cores}`]);
  run('distcc alone, cold', 'distcc', false, ['CC=distcc gcc', `-j${values.jobs}`]);
  run('kbx + distcc, cold', 'kbx', true, ['CC=distcc gcc', `-j${values.jobs}`]);
  must('make', ['-C', tree, `O=${join(work, 'kbx')}`, 'clean'], { env });
  run('kbx CC=gcc after make clean (warm)', 'kbx', true, ['CC=gcc', `-j${values.cores}`]);
} finally {
  for (const d of farm) await d.stop();
}

const by = (n: string) => rows.find((r) => r.name.startsWith(n))!.seconds;
console.log(`| build | seconds | / plain | / distcc alone | distccd compiles | vmlinux = plain | kbx summary |`);
console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
for (const r of rows) {
  const cells = [r.name, r.seconds.toFixed(1), (r.seconds / by('plain')).toFixed(2), (r.seconds / by('distcc')).toFixed(2), String(r.served), r.same === undefined ? '' : r.same ? 'yes' : 'NO', r.line ?? ''];
  console.log(`| ${cells.join(' | ')} |`);
}
