// `kbx make ARGS…`: run GNU make with every recipe line going through kbx's
// shim, then print one summary line. Returns make's exit status. If kbx itself
// cannot start (no daemon, no compiler for the shim), make runs plainly: kbx
// never stands between a developer and a build.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { control, ensureDaemon } from '../daemon/client.js';
import { buildFile, daemonLogPath } from '../daemon/paths.js';
import { linkVmlinuxMakeArgs } from '../kernel/link/route.js';
import { buildNative, shimPath, tracerPath } from '../native/build.js';
import { KbxError } from '../util/errors.js';
import { formatSummary, type BuildSummary } from './summary.js';
import { runWithStatusLine, startPlainProgress, type Progress } from './progress.js';
import type { BuildMeta, ReplaySpan } from '../builds/record.js';

const execFileAsync = promisify(execFile);

// The counters file (docs/PROTOCOL.md, section 4): 16 slots, then the line being run.
export const COUNTERS_SIZE = 512;
// Slots of the counters file.
const SLOTS = [
  'trivial', 'passthrough_recursive', 'passthrough_daemon', 'fallback', 'hit', 'miss', 'passthrough_config', 'passthrough_flags',
];

export interface MakeInvocation {
  /** Directory make runs in (after -C). */
  dir: string;
  /** Absolute directories the build may write: the make directory and O=. */
  roots: string[];
  goals: string[];
}

const OPTS_WITH_VALUE = new Set(['-C', '-f', '-I', '-o', '-W', '-l', '--file', '--directory', '--include-dir', '--old-file', '--what-if']);

/** Reads the parts of make's command line that kbx needs; everything is passed to make unchanged. */
export function parseMakeArgs(args: string[], cwd: string, env: NodeJS.ProcessEnv): MakeInvocation {
  let dir = cwd;
  const goals: string[] = [];
  let out: string | undefined = env.KBUILD_OUTPUT;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-C' || a === '--directory') dir = resolve(dir, args[++i] ?? '.');
    else if (a.startsWith('--directory=')) dir = resolve(dir, a.slice(12));
    else if (a.startsWith('-C') && a.length > 2) dir = resolve(dir, a.slice(2));
    else if (OPTS_WITH_VALUE.has(a)) i++;
    else if (a === '-j' && /^\d+$/.test(args[i + 1] ?? '')) i++;
    else if (a.startsWith('O=')) out = a.slice(2);
    else if (a.startsWith('KBUILD_OUTPUT=')) out = a.slice(14);
    else if (!a.startsWith('-') && !a.includes('=')) goals.push(a);
  }
  const roots = [dir];
  if (out) roots.push(resolve(dir, out));
  return { dir, roots, goals };
}

/** Kernel configuration targets talk to the terminal; kbx steps aside for them. */
export function isConfigGoal(goal: string): boolean {
  return /config$/.test(goal);
}

/** Resolves when make is GNU make 4.x; runs while kbx reaches its daemon. */
export async function checkMake(make: string): Promise<void> {
  let text: string;
  try {
    text = (await execFileAsync(make, ['--version'], { encoding: 'utf8' })).stdout;
  } catch {
    throw new KbxError('KBX_NO_MAKE', `could not run '${make} --version'`, 'install GNU make 4.0 or newer (apt-get install make)');
  }
  const m = /GNU Make (\d+)\.(\d+)/.exec(text);
  if (!m || Number(m[1]) < 4)
    throw new KbxError(
      'KBX_UNSUPPORTED_MAKE',
      `'${make}' is ${text.split('\n')[0] || 'not GNU make'}; kbx needs GNU make 4.0 or newer`,
      'install GNU make 4.x and put it first on PATH',
    );
}

function readCounters(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    const buf = readFileSync(file);
    SLOTS.forEach((name, i) => {
      if (buf.length >= (i + 1) * 8) out[name] = Number(buf.readBigUInt64LE(i * 8));
    });
  } catch {
    /* no counters: a build that never ran a line */
  }
  return out;
}

function runMake(make: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolvePromise) => {
    const child = spawn(make, args, { stdio: 'inherit', env });
    // make and its jobs share our terminal's process group and get ^C themselves.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    process.on('SIGTERM', () => child.kill('SIGTERM'));
    child.on('error', () => resolvePromise(127));
    child.on('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      resolvePromise(code ?? (signal ? 128 + (signal === 'SIGINT' ? 2 : 15) : 1));
    });
  });
}

/** Where progress goes: a status line on a terminal, plain lines elsewhere; never for interactive config targets. */
function progressMode(cfg: Config, inv: MakeInvocation): 'tty' | 'plain' | 'off' {
  if (inv.goals.some(isConfigGoal) || cfg.progress === 'off') return 'off';
  if (cfg.progress === 'auto') return process.stdout.isTTY ? 'tty' : 'plain';
  return cfg.progress;
}

/** The last recorded build of the same directory and arguments (-j aside): what this one will probably do. */
async function previousBuild(kbxDir: string, dir: string, args: string[]): Promise<BuildMeta | undefined> {
  const { listBuilds } = await import('../builds/archive.js');
  const key = (a: string[]) => a.filter((x) => !/^(-j\d*|--jobs(=\d+)?)$/.test(x)).join('\0');
  return listBuilds(kbxDir).find((m) => m.dir === dir && key(m.args) === key(args));
}

export async function kbxMake(args: string[], cfg: Config, opts: { make?: string } = {}): Promise<number> {
  const make = opts.make ?? 'make';
  const makeChecked = checkMake(make);
  makeChecked.catch(() => {}); // awaited below, once the daemon is reached
  const inv = parseMakeArgs(args, process.cwd(), process.env);
  let sock: string;
  const buildId = `${Date.now().toString(36)}-${process.pid}`;
  // In $KBX_DIR/builds, which ensureDaemon made private.
  const countersFile = buildFile(cfg.dir, buildId, 'counters')!;
  const eventsFile = buildFile(cfg.dir, buildId, 'events')!;
  const record = cfg.buildsKept > 0;
  try {
    buildNative();
    sock = await ensureDaemon(cfg);
    // A full disk under KBX_DIR fails here: the build still runs, plainly.
    writeFileSync(countersFile, Buffer.alloc(COUNTERS_SIZE));
    if (record) writeFileSync(eventsFile, '');
  } catch (err) {
    rmSync(countersFile, { force: true });
    const msg = err instanceof KbxError ? err.format() : `kbx: ${(err as Error).message}`;
    await makeChecked;
    process.stderr.write(`${msg}\nkbx: running make without the cache\n`);
    return runMake(make, args, process.env);
  }
  await makeChecked.catch((err: unknown) => {
    rmSync(countersFile, { force: true });
    rmSync(eventsFile, { force: true });
    throw err;
  });
  const started = Date.now();
  const replayOn = cfg.replay && record && !inv.goals.some(isConfigGoal);
  // Loaded only when replay is on: its modules cost every other kbx make ~30 ms before make starts.
  const replayCode = replayOn ? await import('./replay.js') : undefined;
  const digest = replayCode?.makeEnvDigest(cfg);
  // Answered once the daemon has finished the stores and records of earlier
  // builds (the last build's record gives the progress estimate).
  await control(sock, { cmd: 'build-start', build: buildId, startMs: started, record, envDigest: digest }).catch(() => {});

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KBX_SOCKET: sock,
    KBX_TRACER: tracerPath,
    KBX_SHIM: shimPath,
    KBX_REAL_SHELL: cfg.realShell,
    KBX_COUNTERS: countersFile,
    ...(record ? { KBX_EVENTS: eventsFile } : {}),
    KBX_BUILD_ID: buildId,
    KBX_ROOTS: inv.roots.join(':'),
    KBX_TIMEOUT_MS: String(cfg.shimTimeoutMs),
    KBX_MAKE: make.slice(make.lastIndexOf('/') + 1),
  };
  if (!record) delete env.KBX_EVENTS;
  if (inv.goals.some(isConfigGoal)) env.KBX_PASSTHROUGH = '1';

  let replay: ReplaySpan | undefined;
  if (replayCode) {
    Object.assign(env, replayCode.makeLogEnv(tracerPath, buildFile(cfg.dir, buildId, 'makelog')!));
    replay = await replayCode.replayBeforeMake(sock, buildId, inv, args, digest!);
  }
  const route = cfg.linkVmlinux ? linkVmlinuxMakeArgs(inv, (line) => process.stderr.write(line)) : [];
  const makeArgs = [...args, ...route, `SHELL=${shimPath}`];
  const mode = progressMode(cfg, inv);
  const progress: Progress = { countersFile, startedMs: started };
  // make starts first: reading the earlier builds' records (for the expected
  // line count and the ETA) and loading that code overlap make's own start.
  const running = mode === 'tty' ? runWithStatusLine(make, makeArgs, env, progress) : runMake(make, makeArgs, env);
  let stop = () => {};
  if (mode !== 'off') {
    progress.previous = await previousBuild(cfg.dir, inv.dir, args).catch(() => undefined);
    if (mode === 'plain') stop = startPlainProgress(progress, cfg.progressIntervalSec * 1000);
  }
  const status = await running;
  stop();
  const elapsedMs = Date.now() - started;

  const shim = readCounters(countersFile);
  rmSync(countersFile, { force: true });
  let daemon: BuildSummary['daemon'];
  try {
    // With shared stores the reply waits for the build's uploads (bounded by their timeouts).
    const waitMs = cfg.remotes.length ? 3_600_000 : 30_000;
    daemon = await control(sock, { cmd: 'build-end', build: buildId, events: eventsFile, dir: inv.dir, args, exit: status }, waitMs);
  } catch {
    daemon = undefined;
    rmSync(eventsFile, { force: true }); // otherwise the daemon removes it once it has read it
  }
  process.stderr.write(formatSummary({ shim, daemon, elapsedMs, logFile: daemonLogPath(cfg.dir), replay }) + '\n');
  return status;
}
