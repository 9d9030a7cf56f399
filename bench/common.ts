// Shared pieces of the benchmark: where things are, the environment every
// build gets, running a command with its output in a log file, and reading
// the `kbx: N lines …` summary line.
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/bench/common.js). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The kbx this run measures: the repository's, or the snapshot taken by snapshotKbx(). */
export const kbx = {
  main: join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
  shim: join(repoRoot, 'build', 'native', 'kbx-shell', 'sh'),
  tracer: join(repoRoot, 'build', 'native', 'libkbxtrace.so'),
};

/**
 * Copies the built kbx (dist/src, build/native, native/, package.json) to dir
 * and measures that copy from then on: a rebuild of the repository during the
 * run would otherwise change the daemon's code id, and the next `kbx make`
 * would replace the daemon (and its warm stat cache) half way through.
 */
export function snapshotKbx(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'dist'), { recursive: true });
  cpSync(join(repoRoot, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
  cpSync(join(repoRoot, 'build', 'native'), join(dir, 'build', 'native'), { recursive: true, preserveTimestamps: true });
  cpSync(join(repoRoot, 'native'), join(dir, 'native'), { recursive: true, preserveTimestamps: true });
  cpSync(join(repoRoot, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  kbx.main = join(dir, 'dist', 'src', 'cli', 'main.js');
  kbx.shim = join(dir, 'build', 'native', 'kbx-shell', 'sh');
  kbx.tracer = join(dir, 'build', 'native', 'libkbxtrace.so');
}

/** Fixed so that two builds of the same tree give the same bytes. */
export const REPRODUCIBLE: Record<string, string> = {
  KBUILD_BUILD_TIMESTAMP: 'Thu Jan  1 00:00:00 UTC 2026',
  KBUILD_BUILD_USER: 'kbx',
  KBUILD_BUILD_HOST: 'kbx',
  KBUILD_BUILD_VERSION: '1',
};

/** This process's environment without make's own variables (we may run under make), plus extra. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (k.startsWith('MAKE') || k === 'MFLAGS') delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith('KBX_') && !(k in extra)) delete env[k];
  return env;
}

export interface Timed {
  status: number;
  seconds: number;
  /** 1-minute load average when the command started. */
  load: number;
}

/** Runs cmd with stdout and stderr appended to logFile; wall-clock seconds. */
export function timed(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; log: string }): Timed {
  const fd = openSync(opts.log, 'a');
  const load = loadavg()[0]!;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', fd, fd] });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  closeSync(fd);
  return { status: r.status ?? -1, seconds, load };
}

/** Runs a command that must succeed, returning its stdout. */
export function must(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${(r.stderr ?? '').slice(-3000)}`);
  return r.stdout;
}

export interface KbxSummary {
  line: string;
  lines: number;
  trivial: number;
  passthrough: number;
  hits: number;
  misses: number;
  stored: number;
}

/** The last `kbx: N lines …` line of a log, parsed. */
export function kbxSummary(text: string): KbxSummary | undefined {
  const line = text.split('\n').filter((l) => /^kbx: \d+ lines/.test(l)).pop();
  if (!line) return undefined;
  const get = (re: RegExp) => Number(re.exec(line)?.[1] ?? 0);
  return {
    line,
    lines: get(/(\d+) lines/),
    trivial: get(/(\d+) trivial/),
    passthrough: get(/(\d+) pass-through/),
    hits: get(/(\d+) hits/),
    misses: get(/(\d+) misses/),
    stored: get(/\((\d+) stored[,)]/),
  };
}

export function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
