// What recording every build costs (issue: "recording the trace costs no more
// than 1 % of build time"): a Linux 6.1 tinyconfig tree, built once through
// kbx, then `make clean` + warm `kbx make` rebuilds alternating between
// recording on (builds_kept = 20) and off (builds_kept = 0), same daemon and
// store, timed and with CPU time counted. The warm rebuild is where recording weighs most: every line is a
// hit and the build takes seconds. Also a cold build's record size.
//
//   npm run build && node dist/bench/recording.js [--rounds 7] [--jobs 2] [--work /var/tmp/kbx-bench-rec]
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { kernelTree } from '../test/support/kernel-tree.js';
import { REPRODUCIBLE, cleanEnv, kbx, kbxSummary, median, must, readLog, snapshotKbx, timed } from './common.js';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    jobs: { type: 'string', default: '2' },
    work: { type: 'string', default: '/var/tmp/kbx-bench-rec' },
  },
});
const tree = kernelTree();
if (!tree) throw new Error('no Linux 6.1 tree: install linux-source-6.1');
const rounds = Number(opt.rounds);
const out = join(opt.work, 'obj');
const store = join(opt.work, 'store');
const log = join(opt.work, 'build.log');
mkdirSync(out, { recursive: true });
snapshotKbx(join(opt.work, 'kbx-code'));
const say = (m: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const env = (kept: string) => cleanEnv({ ...REPRODUCIBLE, KBX_DIR: store, KBX_BUILDS_KEPT: kept, KBX_IDLE_TIMEOUT: '3600' });
const kbxMake = (kept: string, args: string[]) => {
  const t = timed(process.execPath, [kbx.main, 'make', '--progress', 'off', `O=${out}`, ...args], { cwd: tree, env: env(kept), log });
  if (t.status !== 0) throw new Error(`kbx make ${args.join(' ')} failed; see ${log}`);
  return t;
};

say('configuring and building cold through kbx (recording on)');
kbxMake('20', ['tinyconfig']);
const cold = kbxMake('20', [`-j${opt.jobs}`]);
const builds = join(store, 'builds');
const newest = readdirSync(builds).filter((n) => n.endsWith('.json.gz')).map((n) => join(builds, n)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]!;
const coldRecordBytes = statSync(newest).size;

// Wall time swings with whatever else the machine runs; CPU time much less:
// every process of the build (perf stat's task-clock, children included) plus
// the daemon's (from /proc), both taken for each build.
const perfOut = join(opt.work, 'perf.txt');
let daemonPid = 0;
const daemonCpu = () => {
  const f = readFileSync(`/proc/${daemonPid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
};
/** make clean, then a warm kbx make under perf stat (perf changes PATH: every measured build runs under it). */
const measured = (mode: 'on' | 'off') => {
  must('make', ['-C', tree, `O=${out}`, 'clean'], { env: cleanEnv(REPRODUCIBLE) });
  const d0 = daemonCpu();
  const t = timed('perf', ['stat', '-x,', '-e', 'task-clock', '-o', perfOut, process.execPath, kbx.main, 'make', '--progress', 'off', `O=${out}`, `-j${opt.jobs}`], {
    cwd: tree,
    env: env(mode === 'on' ? '20' : '0'),
    log,
  });
  if (t.status !== 0) throw new Error(`kbx make failed; see ${log}`);
  must(process.execPath, [kbx.main, 'builds'], { env: env('20') }); // the record is written before the daemon's CPU is read
  const taskMs = Number(/^([\d.]+),msec,task-clock/m.exec(readFileSync(perfOut, 'utf8'))?.[1]);
  return { wall: t.seconds, cpu: taskMs / 1000 + (daemonCpu() - d0), load: t.load };
};

daemonPid = Number(/pid (\d+)/.exec(must(process.execPath, [kbx.main, 'daemon', 'status'], { env: env('20') }))?.[1]);
// Not measured: the first clean rebuild after a cold build re-runs a few lines (outputs whose prior existence is an input).
measured('on');

const wall: Record<'on' | 'off', number[]> = { on: [], off: [] };
const cpu: Record<'on' | 'off', number[]> = { on: [], off: [] };
for (let i = 0; i < rounds; i++) {
  for (const mode of i % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    const m = measured(mode);
    const s = kbxSummary(readLog(log));
    say(`round ${i + 1} recording ${mode}: ${m.wall.toFixed(2)} s wall, ${m.cpu.toFixed(2)} s CPU (load ${m.load.toFixed(1)}) ${s?.line ?? ''}`);
    wall[mode].push(m.wall);
    cpu[mode].push(m.cpu);
  }
}
must(process.execPath, [kbx.main, 'daemon', 'stop'], { env: env('20') });
const row = (what: string, x: Record<'on' | 'off', number[]>) =>
  `| ${what}, median of ${rounds} | ${median(x.off).toFixed(2)} s | ${median(x.on).toFixed(2)} s | ${(median(x.on) / median(x.off)).toFixed(3)} |\n`;
process.stdout.write(
  `make clean + warm kbx make -j${opt.jobs}, Linux 6.1 tinyconfig\n\n| | recording off | recording on | on / off |\n| --- | --- | --- | --- |\n` +
    row('wall time', wall) +
    row('CPU time (build processes + daemon)', cpu) +
    `\ncold build ${cold.seconds.toFixed(1)} s; its record ${(coldRecordBytes / 1024).toFixed(0)} KiB gzip'd\n`,
);
