// What recording every build costs (issue: "recording the trace costs no more
// than 1 % of build time"): a Linux 6.1 tinyconfig tree, built once through
// kbx, then `make clean` + warm `kbx make` rebuilds alternating between
// recording on (builds_kept = 20) and off (builds_kept = 0), same daemon and
// store. The warm rebuild is where recording weighs most: every line is a
// hit and the build takes seconds. Also a cold build's record size.
//
//   npm run build && node dist/bench/recording.js [--rounds 7] [--jobs 2] [--work /var/tmp/kbx-bench-rec]
import { mkdirSync, readdirSync, statSync } from 'node:fs';
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

// The first clean rebuild after a cold build re-runs a few lines (outputs whose prior existence is an input): not measured.
must('make', ['-C', tree, `O=${out}`, 'clean'], { env: cleanEnv(REPRODUCIBLE) });
kbxMake('20', [`-j${opt.jobs}`]);

const times: Record<'on' | 'off', number[]> = { on: [], off: [] };
for (let i = 0; i < rounds; i++) {
  for (const mode of i % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    must('make', ['-C', tree, `O=${out}`, 'clean'], { env: cleanEnv(REPRODUCIBLE) });
    const t = kbxMake(mode === 'on' ? '20' : '0', [`-j${opt.jobs}`]);
    const s = kbxSummary(readLog(log));
    say(`round ${i + 1} recording ${mode}: ${t.seconds.toFixed(2)} s (load ${t.load.toFixed(1)}) ${s?.line ?? ''}`);
    times[mode].push(t.seconds);
  }
}
must(process.execPath, [kbx.main, 'daemon', 'stop'], { env: env('20') });
const on = median(times.on);
const off = median(times.off);
process.stdout.write(
  `| | recording off | recording on | on / off |\n| --- | --- | --- | --- |\n` +
    `| make clean + warm kbx make -j${opt.jobs}, median of ${rounds} | ${off.toFixed(2)} s | ${on.toFixed(2)} s | ${(on / off).toFixed(3)} |\n` +
    `\ncold build ${cold.seconds.toFixed(1)} s; its record ${(coldRecordBytes / 1024).toFixed(0)} KiB gzip'd\n`,
);
