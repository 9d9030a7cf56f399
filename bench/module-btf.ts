// Module BTF after a body-only edit of vmlinux (issue 13): plain make against
// kbx make, side by side in one run, on Linux 6.1 tinyconfig with BTF for
// vmlinux and modules and a dozen or more modules (test/kernel-module-btf's).
//
//   npx tsc -p . && node dist/bench/module-btf.js [--rounds N] [--work DIR]
//
// One hard-linked copy of the 6.1 source; two object trees, each configured
// and built cold by plain make (untimed; a copy of an O= tree would not do:
// tools/ records absolute object paths, and objtool rebuilt in the copy
// rebuilds every object), so that plain and kbx each rebuild their own tree. Each round edits the body of hex_to_bin (lib/hexdump.c, in vmlinux:
// code, not types), then runs `make -j2` (vmlinux, modules, bzImage) on the
// plain tree and `kbx make -j2` on the kbx tree (kbx's store starts empty).
// Rounds 1 and 2 are the first relinks after a cold build (pahole rewrites
// each .ko's .BTF once, so a module's BTF line sees two new inputs); round
// 3 on is the steady state.
//
// Per round and variant: wall time; module BTF lines and the time in them
// (kbx: its build record's per-line times, hits and misses; plain: the time
// of every `pahole ... --btf_base vmlinux` run, logged by a `pahole` first on
// PATH); and module pahole runs (kbx: one per missed line).

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadBuild } from '../src/builds/archive.js';
import type { LineRecord } from '../src/builds/record.js';
import { kernelTree } from '../test/support/kernel-tree.js';
import { LINK_TREE_OPTIONS } from '../test/support/link-tree.js';
import { BODY_FILE, MODULE_OPTIONS, bodyEdited, isBtfLine } from '../test/support/module-btf-tree.js';
import { cleanEnv, kbx, kbxSummary, must, readLog, snapshotKbx, timed } from './common.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '4' }, work: { type: 'string', default: '/var/tmp/kbx-bench-module-btf' } } });
const ROUNDS = Number(values.rounds);
const WORK = values.work!;
const SRC = join(WORK, 'src');
const PLAIN = join(WORK, 'plain');
const KBX = join(WORK, 'kbx');

// test/kernel-module-btf.test.ts's tree and edit (test/support/module-btf-tree.ts).
const MODULES = MODULE_OPTIONS;

interface Run {
  seconds: number;
  /** Module BTF lines (plain: pahole --btf_base runs). */
  btfLines: number;
  btfSeconds: number;
  hits: number;
  paholeRuns: number;
  load: number;
}

/** Configures and builds the tree `out` with plain make; the build's seconds. */
function coldTree(out: string, env: NodeJS.ProcessEnv, log: string): number {
  const make = (args: string[]) => {
    const r = timed('make', ['-C', SRC, `O=${out}`, ...args], { cwd: SRC, env, log });
    if (r.status !== 0) throw new Error(`make ${args[0] ?? ''} failed, see ${log}`);
    return r.seconds;
  };
  make(['tinyconfig']);
  const on = [...LINK_TREE_OPTIONS, 'CRYPTO'];
  must(join(SRC, 'scripts/config'), ['--file', join(out, '.config'), ...on.flatMap((o) => ['-e', o]), '-d', 'UNWINDER_GUESS', '-d', 'DEBUG_INFO_NONE', ...MODULES.flatMap((m) => ['-m', m])]);
  make(['olddefconfig']);
  const text = readFileSync(join(out, '.config'), 'utf8');
  for (const o of ['DEBUG_INFO_BTF', 'DEBUG_INFO_BTF_MODULES']) if (!text.includes(`\nCONFIG_${o}=y\n`)) throw new Error(`CONFIG_${o} is not y`);
  return make(['-j2']);
}

/** A `pahole` that logs start, end and arguments of each run, then the real one's status. */
function countingPahole(dir: string): { dir: string; runs: () => Array<{ seconds: number; args: string }> } {
  mkdirSync(dir, { recursive: true });
  const real = execFileSync('sh', ['-c', 'command -v pahole'], { encoding: 'utf8' }).trim();
  const log = join(dir, 'pahole.log');
  writeFileSync(join(dir, 'pahole'), `#!/bin/sh\nt0=$(date +%s.%N)\n'${real}' "$@"\ns=$?\nprintf '%s %s %s\\n' "$t0" "$(date +%s.%N)" "$*" >> '${log}'\nexit $s\n`);
  chmodSync(join(dir, 'pahole'), 0o755);
  return {
    dir,
    runs: () => {
      const rows = readLog(log).split('\n').filter(Boolean).map((l) => {
        const [a, b, ...args] = l.split(' ');
        return { seconds: Number(b) - Number(a), args: args.join(' ') };
      });
      writeFileSync(log, '');
      return rows;
    },
  };
}

function edit(n: number): void {
  const edited = bodyEdited(readFileSync(join(kernelTree()!, BODY_FILE), 'utf8'), n);
  const p = join(SRC, BODY_FILE);
  unlinkSync(p); // a new inode: the shared tree's file stays as it is
  writeFileSync(p, edited);
}

function main(): void {
  const shared = kernelTree();
  if (!shared) {
    process.stdout.write('module-btf bench: no Linux 6.1 source (apt-get install linux-source-6.1)\n');
    return;
  }
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  snapshotKbx(join(WORK, 'kbx-code'));
  execFileSync('cp', ['-al', shared, SRC]);
  const env = cleanEnv();
  const log = join(WORK, 'make.log');
  const cold = coldTree(PLAIN, env, log);
  coldTree(KBX, env, log);
  const modules = readFileSync(join(PLAIN, 'modules.order'), 'utf8').split('\n').filter(Boolean).length;

  const pahole = countingPahole(join(WORK, 'bin'));
  const plainEnv = { ...env, PATH: `${pahole.dir}:${env.PATH}` };
  const kbxEnv = cleanEnv({ KBX_DIR: join(WORK, 'store') });
  const rows: Array<{ plain: Run; kbx: Run }> = [];
  for (let n = 1; n <= ROUNDS; n++) {
    edit(n);
    pahole.runs();
    const p = timed('make', ['-C', SRC, `O=${PLAIN}`, '-j2'], { cwd: SRC, env: plainEnv, log });
    if (p.status !== 0) throw new Error(`plain make failed, see ${log}`);
    const btf = pahole.runs().filter((r) => r.args.includes('--btf_base'));
    const plain: Run = { seconds: p.seconds, btfLines: btf.length, btfSeconds: btf.reduce((s, r) => s + r.seconds, 0), hits: 0, paholeRuns: btf.length, load: p.load };

    const before = readLog(log).length;
    const k = timed(process.execPath, [kbx.main, 'make', '--progress', 'off', '-C', SRC, `O=${KBX}`, '-j2'], { cwd: SRC, env: kbxEnv, log });
    if (k.status !== 0) throw new Error(`kbx make failed, see ${log}`);
    must(process.execPath, [kbx.main, 'builds'], { env: kbxEnv }); // waits for the build's record
    const lines = loadBuild(kbxEnv.KBX_DIR!).lines.filter(isBtfLine);
    const hits = lines.filter((l) => l.kind === 'hit').length;
    const summary = kbxSummary(readLog(log).slice(before))?.line ?? '';
    process.stderr.write(`round ${n}: ${summary}\n`);
    rows.push({ plain, kbx: { seconds: k.seconds, btfLines: lines.length, btfSeconds: lines.reduce((s, l) => s + (l.endUs - l.startUs), 0) / 1e6, hits, paholeRuns: lines.length - hits, load: k.load } });
  }
  must(process.execPath, [kbx.main, 'daemon', 'stop'], { env: kbxEnv });

  const f = (x: number, w = 7) => x.toFixed(2).padStart(w);
  const table = rows
    .map(({ plain, kbx: k }, i) =>
      `  ${String(i + 1).padStart(5)}  ${f(plain.seconds)} ${f(k.seconds)}   ${String(plain.btfLines).padStart(3)} ${f(plain.btfSeconds)}   ${`${k.hits}/${k.btfLines}`.padStart(6)} ${f(k.btfSeconds)}   ${String(plain.paholeRuns).padStart(4)} ${String(k.paholeRuns).padStart(4)}   ${plain.load.toFixed(1)}/${k.load.toFixed(1)}`,
    )
    .join('\n');
  process.stdout.write(
    `module BTF benchmark: Linux 6.1 tinyconfig + BTF + ${modules} modules, ${WORK}; edit hex_to_bin's body, then make -j2 (vmlinux, modules, bzImage); 2 cores\n` +
      `cold build of each tree (plain make, untimed for the table): ${cold.toFixed(0)} s\n\n` +
      `  round  wall s: plain     kbx   plain BTF: runs  s    kbx BTF: hit/lines  s   pahole runs: plain kbx   load (1 min) plain/kbx\n` +
      `${table}\n\n` +
      `plain's BTF seconds: its pahole --btf_base runs; kbx's: its module BTF lines (pahole and resolve_btfids, or the restore).\n` +
      `pahole runs: for module BTF (vmlinux's own run aside). Rounds 1-2: first relinks after a cold build; 3 on: steady state.\n` +
      `make output: ${log}\n`,
  );
}

main();
