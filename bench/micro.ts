// Micro benchmarks of one recipe line, timed by bench/timeit.c (posix_spawn
// and wait, as make runs a line), commands interleaved A B A B …:
//   trivial  `kbx-shim -c 'set -e;'` (answered inside the shim) against
//            `dash -c :`; median and mean ms per run
//   hit      `kbx-shim -c 'cat a > b'` in a one-rule project whose line is
//            in the cache, with the environment `kbx make` gives make
//            (docs/PROTOCOL.md §1), against `/bin/sh -c 'cat a > b'`;
//            median ms. (Not `cp a b`: cp probes b first, so its key holds
//            "b absent" and it hits only after b is removed.)
//            Every timed shim run is checked to have been a hit (the
//            counters file).
import { readFileSync, rmSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { socketPath } from '../src/daemon/paths.js';
import { cleanEnv, kbx, kbxSummary, mean, median, must, repoRoot, sleepSync } from './common.js';

export interface Timing {
  medianMs: number;
  meanMs: number;
}

export interface MicroResult {
  runs: { trivial: number; hit: number };
  trivial: { shim: Timing; dash: Timing };
  hit: { kbx: Timing; sh: Timing; hits: number; makeLines: string[] };
}

/** The one cacheable line; its only input is a. */
const LINE = 'cat a > b';
const HIT_SLOT = 4; // 'hit' in the counters file (docs/PROTOCOL.md §4)

/** Compiles bench/timeit.c into the work directory (when missing or stale). */
function timer(work: string): string {
  const src = join(repoRoot, 'bench', 'timeit.c');
  const bin = join(work, 'timeit');
  let stale = true;
  try {
    stale = statSync(bin).mtimeMs < statSync(src).mtimeMs;
  } catch {
    /* missing */
  }
  if (stale) must('cc', ['-O2', '-Wall', '-o', bin, src]);
  return bin;
}

/** Runs the timer; returns each command's per-run times in ms. */
function timeit(bin: string, runs: number, cmds: string[][], cwd: string, env: NodeJS.ProcessEnv): number[][] {
  const args = [String(runs)];
  for (const c of cmds) args.push('--', ...c);
  const outp = must(bin, args, { cwd, env });
  const times: number[][] = cmds.map(() => []);
  for (const line of outp.trim().split('\n')) {
    const [i, ns] = line.split(' ');
    times[Number(i)]!.push(Number(ns) / 1e6);
  }
  return times;
}

const timing = (xs: number[]): Timing => ({ medianMs: median(xs), meanMs: mean(xs) });

function hitCount(counters: string): number {
  const buf = readFileSync(counters);
  return Number(buf.readBigUInt64LE(HIT_SLOT * 8));
}

export function runMicro(o: { work: string; trivialRuns: number; hitRuns: number; say: (m: string) => void }): MicroResult {
  rmSync(o.work, { recursive: true, force: true });
  const proj = join(o.work, 'proj');
  const store = join(o.work, 'kbx-store');
  mkdirSync(proj, { recursive: true });
  writeFileSync(join(proj, 'Makefile'), `b: a\n\t${LINE}\n`);
  writeFileSync(join(proj, 'a'), 'the input of the one cacheable line\n'.repeat(20));
  const bin = timer(o.work);
  const kenv = cleanEnv({ KBX_DIR: store });

  try {
    // Through make first: the line misses and is stored, then hits.
    const make = () => {
      const r = spawnSync(process.execPath, [kbx.main, 'make'], { cwd: proj, env: kenv, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`kbx make in ${proj} failed:\n${r.stderr}`);
      return kbxSummary(r.stderr)?.line ?? '(no summary line)';
    };
    const makeLines = [make()];
    rmSync(join(proj, 'b'));
    sleepSync(300); // let the daemon finish writing the entry in the background
    makeLines.push(make());
    o.say(`micro: through make: ${makeLines.join(' / then: ')}`);

    // The environment kbx make gives every shim (src/cli/make.ts).
    const counters = join(o.work, 'bench.counters');
    writeFileSync(counters, Buffer.alloc(16 * 8));
    const env = cleanEnv({
      KBX_DIR: store,
      KBX_SOCKET: socketPath(store),
      KBX_TRACER: kbx.tracer,
      KBX_REAL_SHELL: '/bin/sh',
      KBX_COUNTERS: counters,
      KBX_BUILD_ID: `bench-${process.pid}`,
      KBX_ROOTS: proj,
      KBX_TIMEOUT_MS: '60000',
      KBX_MAKE: 'make',
    });

    // Trivial lines never reach the daemon, but the shim sees the same variables as in a build.
    const [shimT, dashT] = timeit(bin, o.trivialRuns, [[kbx.shim, '-c', 'set -e;'], ['dash', '-c', ':']], proj, env);
    const trivial = { shim: timing(shimT!), dash: timing(dashT!) };
    o.say(`micro: trivial line: shim ${trivial.shim.medianMs.toFixed(3)} ms, dash ${trivial.dash.medianMs.toFixed(3)} ms (median of ${o.trivialRuns})`);

    // This environment is not make's, so the first run misses and stores; wait for it to hit.
    for (let i = 0; i < 100 && hitCount(counters) === 0; i++) {
      must(kbx.shim, ['-c', LINE], { cwd: proj, env });
      sleepSync(50);
    }
    if (hitCount(counters) === 0) throw new Error(`${LINE} never hit when run by the shim directly`);
    const before = hitCount(counters);
    const [kbxT, shT] = timeit(bin, o.hitRuns, [[kbx.shim, '-c', LINE], ['/bin/sh', '-c', LINE]], proj, env);
    const hits = hitCount(counters) - before;
    const hit = { kbx: timing(kbxT!), sh: timing(shT!), hits, makeLines };
    o.say(`micro: one hit: shim ${hit.kbx.medianMs.toFixed(3)} ms, sh ${hit.sh.medianMs.toFixed(3)} ms (median of ${o.hitRuns}; ${hits} of ${o.hitRuns} were hits)`);
    return { runs: { trivial: o.trivialRuns, hit: o.hitRuns }, trivial, hit };
  } finally {
    spawnSync(process.execPath, [kbx.main, 'daemon', 'stop'], { env: kenv, stdio: 'ignore' });
  }
}
