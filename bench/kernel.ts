// Real kernel builds, side by side: plain `make`, `make CC="ccache gcc"` and
// `kbx make`, each in its own O= directory of the one shared source tree, with
// its own fresh CCACHE_DIR / KBX_DIR. Scenarios, each run for every mode in
// turn (plain, ccache, kbx) so that all three see similar machine load:
//   cold   first build, empty caches
//   warm   `make clean` (not timed), then build again: plain rebuilds,
//          ccache and kbx build from their caches
//   noop   `make` on the built tree
//   touch  `touch fs/ioctl.c` in the source tree, then `make`
//   header `touch include/linux/fs.h` (content unchanged), then `make`
//   switch a branch switch and back (`git checkout other && git checkout -`):
//          every file under fs/, include/linux/ and kernel/ of the source
//          tree gets a new mtime, its bytes unchanged, then `make`
// Measured: wall-clock seconds of the whole make (for kbx, the whole `kbx
// make` process, daemon start-up included). Also: whether kbx's vmlinux and
// bzImage equal plain's after each scenario, and the daemon's resident memory
// after the warm build (`kbx daemon status`).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPRODUCIBLE, cleanEnv, kbx, kbxSummary, must, readLog, timed, type KbxSummary } from './common.js';

// kbx: kbx as configured by default. kbx-replay: kbx with replay before make
// (KBX_REPLAY=true), its own O= tree and the kbx mode's store and daemon (so
// its cold build is served from the cache).
export type Mode = 'plain' | 'ccache' | 'kbx' | 'kbx-replay';
export type KernelScenario = 'cold' | 'warm' | 'noop' | 'touch' | 'header' | 'switch';
export const MODES: Mode[] = ['plain', 'ccache', 'kbx', 'kbx-replay'];
const isKbx = (m: Mode) => m === 'kbx' || m === 'kbx-replay';
export const KERNEL_SCENARIOS: KernelScenario[] = ['cold', 'warm', 'noop', 'touch', 'header', 'switch'];
export type KernelConfig = 'tinyconfig' | 'modversions';

/** Configures out (a new O= directory) with plain make: tinyconfig, and for modversions MODULES, MODVERSIONS and KALLSYMS on top. */
export function configureKernel(tree: string, out: string, config: KernelConfig, ccArgs: string[], env: NodeJS.ProcessEnv): void {
  mkdirSync(out, { recursive: true });
  const mk = (args: string[]) => must('make', [`O=${out}`, ...ccArgs, ...args], { cwd: tree, env });
  mk(['tinyconfig']);
  if (config !== 'modversions') return;
  must(join(tree, 'scripts/config'), ['--file', join(out, '.config'), '--enable', 'MODULES', '--enable', 'MODVERSIONS', '--enable', 'KALLSYMS']);
  mk(['olddefconfig']);
  const cfg = readFileSync(join(out, '.config'), 'utf8');
  for (const k of ['MODULES', 'MODVERSIONS', 'KALLSYMS'])
    if (!new RegExp(`^CONFIG_${k}=y$`, 'm').test(cfg)) throw new Error(`CONFIG_${k} is not set in ${out}/.config after olddefconfig`);
}

export interface KernelRun {
  scenario: KernelScenario;
  mode: Mode;
  status: number;
  seconds: number;
  load: number;
  log: string;
  kbx?: KbxSummary;
  ccache?: { hits: number; misses: number };
}

export interface Same {
  vmlinux: boolean;
  bzImage: boolean;
}

export interface KernelResult {
  runs: KernelRun[];
  /** kbx's (and ccache's) artifacts against plain's, after each scenario. */
  same: Partial<Record<KernelScenario, { kbx?: Same; 'kbx-replay'?: Same; ccache?: Same }>>;
  /** Daemon resident memory after the warm build, MiB, and the status line it came from. */
  rss?: { mib: number; line: string };
  /** Daemon pid after each kbx run: a change means the daemon was restarted. */
  daemonPids: Partial<Record<KernelScenario, number>>;
}

export interface KernelOptions {
  tree: string;
  config: KernelConfig;
  jobs: number;
  modes: Mode[];
  scenarios: KernelScenario[];
  /** /var/tmp/kbx-bench/<config> */
  work: string;
  say: (msg: string) => void;
}

// The file each touch scenario touches in the source tree (its content stays).
const TOUCHED: Partial<Record<KernelScenario, string>> = { touch: 'fs/ioctl.c', header: 'include/linux/fs.h' };
// The branch switch: the 6.1 sources are not a git repository, so the switch is
// modelled as git leaves it: every file it checked out has a new mtime and its
// old bytes. The set is whole directories a stable update touches in part.
const SWITCHED = ['fs', 'include/linux', 'kernel'];

/** Files under the SWITCHED directories of tree, relative paths. */
export function switchedFiles(tree: string): string[] {
  return SWITCHED.flatMap((d) =>
    readdirSync(join(tree, d), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => relative(tree, join(e.parentPath ?? e.path, e.name))),
  );
}

export function runKernel(o: KernelOptions): KernelResult {
  const res: KernelResult = { runs: [], same: {}, daemonPids: {} };
  const logs = join(o.work, 'logs');
  const out = (m: Mode) => join(o.work, m);
  const kbxDir = join(o.work, 'kbx-store');
  const ccacheDir = join(o.work, 'ccache-store');
  // The daemon must live from the cold build to the warm one even on a slow
  // machine (the default idle timeout is 15 minutes).
  const env = (m: Mode): NodeJS.ProcessEnv =>
    cleanEnv({
      ...REPRODUCIBLE,
      ...(m === 'ccache' ? { CCACHE_DIR: ccacheDir } : {}),
      ...(isKbx(m) ? { KBX_DIR: kbxDir, KBX_IDLE_TIMEOUT: '7200' } : {}),
      ...(m === 'kbx-replay' ? { KBX_REPLAY: 'true' } : {}),
    });
  const ccArgs = (m: Mode) => (m === 'ccache' ? ['CC=ccache gcc'] : []);
  const kbxCli = (args: string[]) => must(process.execPath, [kbx.main, ...args], { env: env('kbx') });

  // Fresh output directories and caches.
  if (existsSync(kbxDir)) spawnQuiet(() => kbxCli(['daemon', 'stop']));
  rmSync(o.work, { recursive: true, force: true });
  mkdirSync(logs, { recursive: true });

  // Configuration: plain make for every mode (not timed), the same .config.
  for (const m of o.modes) {
    mkdirSync(out(m), { recursive: true });
    configureKernel(o.tree, out(m), o.config, ccArgs(m), env(m));
  }
  o.say(`configured ${o.config} in ${o.modes.map(out).join(', ')}`);
  const switched = o.scenarios.includes('switch') ? switchedFiles(o.tree) : [];
  if (switched.length) o.say(`switch: ${switched.length} files under ${SWITCHED.join(', ')} get a new mtime before each mode's build`);

  const build = (s: KernelScenario, m: Mode): KernelRun => {
    const log = join(logs, `${s}-${m}.log`);
    const args = [`O=${out(m)}`, `-j${o.jobs}`, ...ccArgs(m)];
    if (m === 'ccache') must('ccache', ['-z'], { env: env(m) });
    const touched = s === 'switch' ? switched : TOUCHED[s] ? [TOUCHED[s]!] : [];
    const now = new Date();
    for (const f of touched) utimesSync(join(o.tree, f), now, now);
    const t = isKbx(m)
      ? timed(process.execPath, [kbx.main, 'make', ...args], { cwd: o.tree, env: env(m), log })
      : timed('make', args, { cwd: o.tree, env: env(m), log });
    const run: KernelRun = { scenario: s, mode: m, ...t, log };
    if (isKbx(m)) {
      run.kbx = kbxSummary(readLog(log));
      const st = statusLine(kbxCli);
      const pid = /pid (\d+)/.exec(st)?.[1];
      if (pid && m === 'kbx') res.daemonPids[s] = Number(pid);
      if (s === 'warm' && m === 'kbx') {
        const mib = /(\d+) MiB resident/.exec(st)?.[1];
        if (mib) res.rss = { mib: Number(mib), line: st.trim() };
      }
    }
    if (m === 'ccache') run.ccache = ccacheStats(must('ccache', ['--print-stats'], { env: env(m) }));
    const tail = run.kbx ? ` — ${run.kbx.line}` : run.ccache ? ` — ccache ${run.ccache.hits} hits, ${run.ccache.misses} misses` : '';
    o.say(`${s.padEnd(5)} ${m.padEnd(6)} ${run.seconds.toFixed(1).padStart(7)} s  (load ${t.load.toFixed(2)}${run.status ? `, EXIT ${run.status}, see ${log}` : ''})${tail}`);
    return run;
  };

  for (const s of o.scenarios) {
    for (const m of o.modes) {
      if (s === 'warm') {
        const log = join(logs, `clean-${m}.log`);
        const c = timed('make', [`O=${out(m)}`, ...ccArgs(m), 'clean'], { cwd: o.tree, env: env(m), log });
        if (c.status !== 0) throw new Error(`make clean failed for ${m}, see ${log}`);
      }
      res.runs.push(build(s, m));
    }
    // Compare with plain's artifacts while both trees hold this scenario's build.
    if (o.modes.includes('plain')) {
      const cmp: { kbx?: Same; 'kbx-replay'?: Same; ccache?: Same } = {};
      for (const m of ['kbx', 'kbx-replay', 'ccache'] as const) if (o.modes.includes(m)) cmp[m] = compare(out('plain'), out(m));
      res.same[s] = cmp;
    }
  }
  if (o.modes.some(isKbx)) {
    writeFileSync(join(o.work, 'kbx-stats.json'), must(process.execPath, [kbx.main, 'stats', '--json'], { env: env('kbx') }));
    spawnQuiet(() => kbxCli(['daemon', 'stop']));
  }
  return res;
}

function compare(a: string, b: string): Same {
  const eq = (f: string) => {
    try {
      return readFileSync(join(a, f)).equals(readFileSync(join(b, f)));
    } catch {
      return false;
    }
  };
  return { vmlinux: eq('vmlinux'), bzImage: eq('arch/x86/boot/bzImage') };
}

function statusLine(kbxCli: (args: string[]) => string): string {
  try {
    return kbxCli(['daemon', 'status']);
  } catch {
    return 'kbx daemon: not running';
  }
}

function ccacheStats(text: string): { hits: number; misses: number } {
  const v = (k: string) => Number(new RegExp(`^${k}\\t(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { hits: v('direct_cache_hit') + v('preprocessed_cache_hit'), misses: v('cache_miss') };
}

function spawnQuiet(f: () => unknown): void {
  try {
    f();
  } catch {
    /* nothing to stop */
  }
}
