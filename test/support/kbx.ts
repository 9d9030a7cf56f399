// Runs the real kbx CLI against throwaway projects: each test gets its own
// store directory (and so its own daemon), stopped when the test ends.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const kbxMain = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

// Every temporary directory a test or bench process made, removed when it
// exits with status 0 (kept after a failure, to look at; and with
// KBX_KEEP_TEST_DIRS set): without this a day of test runs left 20 GB in /tmp.
const madeDirs: string[] = [];
process.on('exit', (code) => {
  if (code !== 0 || process.env.KBX_KEEP_TEST_DIRS) return;
  for (const d of madeDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // a directory a test made unreadable; nothing to do at exit
    }
  }
});

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `kbx-${prefix}-`));
  madeDirs.push(dir);
  return dir;
}

/** Writes a tree of files (path → content) under dir. */
/** A fresh project directory (<temp>/proj) holding files. */
export function projectDir(tag: string, files: Record<string, string>): string {
  const dir = join(tempDir(tag), 'proj');
  writeTree(dir, files);
  return dir;
}

/** r, after asserting it exited 0 (its stderr's end says why not). */
export function ok(r: RunResult): RunResult {
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  return r;
}

export function writeTree(dir: string, files: Record<string, string>): void {
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
}

export class Kbx {
  readonly dir: string;

  constructor(
    name: string,
    private readonly extraEnv: Record<string, string> = {},
  ) {
    this.dir = tempDir(`store-${name}`);
  }

  env(more: Record<string, string> = {}): NodeJS.ProcessEnv {
    // Replay (off by default, on where a test says so) answers lines before make asks: tests that count
    // the shim's hits and misses turn it on themselves (test/replay.test.ts).
    const env: NodeJS.ProcessEnv = { ...process.env, KBX_DIR: this.dir, KBX_IDLE_TIMEOUT: '120', KBX_REPLAY: 'false', ...this.extraEnv, ...more };
    for (const k of Object.keys(env)) if (k.startsWith('MAKE') || k === 'MFLAGS') delete env[k];
    return env;
  }

  /** A command kbx runs under (e.g. `ip netns exec NS`: a farm whose daemons only its namespace reaches). */
  launcher: string[] = [];

  /**
   * hangMs: a bound on a build that could loop (make restarting forever): kbx
   * gets SIGTERM, which it hands to make. A guard against a hung CI run, never
   * a speed check: set it far above the build's time on a slow machine.
   */
  run(args: string[], opts: { cwd?: string; env?: Record<string, string>; hangMs?: number } = {}): RunResult {
    const [cmd, ...pre] = [...this.launcher, process.execPath];
    const r = spawnSync(cmd!, [...pre, kbxMain, ...args], {
      cwd: opts.cwd,
      env: this.env(opts.env),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.hangMs ? { timeout: opts.hangMs, killSignal: 'SIGTERM' as const } : {}),
    });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  make(cwd: string, args: string[] = [], env: Record<string, string> = {}, hangMs?: number): RunResult {
    const r = this.run(['make', ...args], { cwd, env, hangMs });
    // A build's record is written after kbx make returns; a tree changed before
    // it is (a test's next step, at once) leaves that build unreplayable
    // (replay/unchanged.ts changedSince). A person's next command comes
    // seconds later: wait for the record as `kbx builds` does.
    if (this.env(env).KBX_REPLAY === 'true') this.run(['builds']);
    return r;
  }

  /** Starts `kbx make` without waiting, for builds that run side by side or get disturbed. */
  makeAsync(cwd: string, args: string[] = []): Promise<RunResult> {
    return new Promise((resolvePromise) => {
      const child = spawn(process.execPath, [kbxMain, 'make', ...args], {
        cwd,
        env: this.env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolvePromise({ status: code ?? -1, stdout, stderr }));
    });
  }

  stats(): Record<string, number> {
    const r = this.run(['stats', '--json']);
    return (JSON.parse(r.stdout) as { counts: Record<string, number> }).counts;
  }

  stop(): void {
    this.run(['daemon', 'stop']);
  }
}

/** Runs plain make (no kbx) for the reference build. */
export function plainMake(cwd: string, args: string[] = [], env: Record<string, string> = {}, launcher: string[] = []): RunResult {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of Object.keys(e)) if (k.startsWith('MAKE') || k === 'MFLAGS') delete e[k];
  const [cmd, ...pre] = [...launcher, 'make'];
  const r = spawnSync(cmd!, [...pre, ...args], { cwd, env: e, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Every regular file under dir (relative path → content), for comparing two builds. */
export function snapshot(dir: string, skip: RegExp = /^$/): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const rel = relative(dir, p);
      if (skip.test(rel)) continue;
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.set(rel, readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** Parses the `kbx: N lines …` summary line into counts. */
export interface Summary {
  lines: number;
  trivial: number;
  passthrough: number;
  hits: number;
  misses: number;
  fallback: number;
  stored: number;
  /** Of those stored, the ones still being written when make returned. */
  writing: number;
}

export function summary(stderr: string): Summary {
  const line = stderr.split('\n').find((l) => /^kbx: \d+ lines/.test(l));
  if (!line) throw new Error(`no kbx summary line in:\n${stderr}`);
  const get = (re: RegExp) => Number(re.exec(line)?.[1] ?? 0);
  return {
    lines: get(/(\d+) lines/),
    trivial: get(/(\d+) trivial/),
    passthrough: get(/(\d+) pass-through/),
    hits: get(/(\d+) hits/),
    misses: get(/(\d+) misses/),
    fallback: get(/(\d+) ran without the cache/),
    stored: get(/\((\d+) stored[,)]/),
    writing: get(/(\d+) still being written/),
  };
}

/** A fresh copy of test/fixtures/<name> in its own temporary directory. */
export function copyFixture(name: string, tag: string = name): string {
  const dir = join(tempDir(tag), 'proj');
  cpSync(join(repoRoot, 'test', 'fixtures', name), dir, { recursive: true });
  return dir;
}

/** Asserts that two trees hold the same files with the same bytes. */
export function assertSameTree(actual: string, expected: string): void {
  const a = snapshot(actual);
  const e = snapshot(expected);
  assert.deepEqual([...a.keys()].sort(), [...e.keys()].sort());
  for (const [p, data] of e) assert.ok(a.get(p)!.equals(data), `${p} differs from the plain build`);
}

// Two goals over the same item lines, each run by every build (FORCE): two
// builds at once run or restore the same lines, with the same keys, side by
// side. Item lines write through a temporary renamed into place, as kbuild's
// do, so that neither build ever reads a half-written item of the other.
export const SHARED_ITEMS = 20;
export const SHARED_MAKEFILE = `ITEMS := ${Array.from({ length: SHARED_ITEMS }, (_, i) => `item${i + 1}.txt`).join(' ')}
all: forward.txt backward.txt
item%.txt: FORCE
\techo "item $*" > $@.tmp.$$$$ && mv $@.tmp.$$$$ $@
forward.txt: $(ITEMS)
\tcat $^ > $@
backward.txt: $(ITEMS)
\ttac $^ > $@
FORCE:
clean:
\trm -f item*.txt forward.txt backward.txt
.PHONY: FORCE clean
`;
