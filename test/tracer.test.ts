// The LD_PRELOAD tracer (native/tracer/kbx-trace.c) under real programs: the
// shell, coreutils, gcc, make, and a small probe program for the libc calls
// those do not make. Each test reads the trace log back with a strict local
// parser for docs/PROTOCOL.md section 3, so a malformed line fails the test.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildNative, tracerPath } from '../src/native/build.js';
import { cleanEnv } from './support/env.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const probeSource = join(repoRoot, 'test', 'fixtures', 'tracer', 'probe.c');

interface TraceEvent {
  op: string;
  path: string; // for `!`, the reason; for `f`, what failed; for `q`, what was asked and by which program; for `i`, empty
  ino?: bigint;
  size?: bigint;
  mtimeNs?: bigint;
}

/** Parses a whole trace log; throws on any line that is not a well-formed event. */
function parseTrace(text: string): TraceEvent[] {
  if (text !== '' && !text.endsWith('\n')) throw new Error('trace log does not end with a newline');
  const events: TraceEvent[] = [];
  for (const line of text.split('\n').slice(0, -1)) {
    let m: RegExpExecArray | null;
    if ((m = /^([mnNwd]) (\d+) (\d+) (-?\d+) (\/.*)$/.exec(line))) {
      events.push({ op: m[1]!, ino: BigInt(m[2]!), size: BigInt(m[3]!), mtimeNs: BigInt(m[4]!), path: m[5]! });
    } else if ((m = /^([rsaxeklX]) (\/.*)$/.exec(line))) {
      events.push({ op: m[1]!, path: m[2]! });
    } else if (line === 'i') {
      events.push({ op: 'i', path: '' });
    } else if ((m = /^([!fq]) (.+)$/.exec(line))) {
      events.push({ op: m[1]!, path: m[2]! });
    } else {
      throw new Error(`malformed trace line: ${JSON.stringify(line)}`);
    }
  }
  return events;
}

let root: string;
let probe: string;
let n = 0;

/** A fresh directory per test (real path: the tracer reports what getcwd says). */
function scratch(): string {
  const d = join(root, `t${n++}`);
  mkdirSync(d);
  return realpathSync(d);
}


interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  log: string;
  events: TraceEvent[];
}

/**
 * Runs a program under the tracer. `input` feeds standard input through a pipe
 * from outside (as make's own stdin would be); without it stdin is /dev/null.
 * `trace: false` preloads the library without KBX_TRACE_LOG.
 */
function run(
  cwd: string,
  file: string,
  args: string[],
  opts: { env?: Record<string, string>; input?: string; trace?: boolean; preload?: boolean } = {},
): Run {
  const log = join(root, `log${n++}`);
  const env = cleanEnv(opts.env);
  if (opts.preload !== false) env.LD_PRELOAD = tracerPath;
  if (opts.trace !== false && opts.preload !== false) env.KBX_TRACE_LOG = log;
  const r = spawnSync(file, args, {
    cwd,
    env,
    encoding: 'utf8',
    input: opts.input,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (r.error) throw r.error;
  const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, log: text, events: parseTrace(text) };
}

function sh(cwd: string, script: string, opts: Parameters<typeof run>[3] = {}): Run {
  return run(cwd, '/bin/sh', ['-c', script], opts);
}

function has(r: Run, op: string, path: string): boolean {
  return r.events.some((e) => e.op === op && e.path === path);
}

function expectEvent(r: Run, op: string, path: string): TraceEvent {
  const e = r.events.find((ev) => ev.op === op && ev.path === path);
  assert.ok(e, `expected "${op} ${path}" in the trace:\n${r.log}`);
  return e;
}

/** Asserts that the event carries this stat (`null`: the path did not exist, 0 0 0). */
function assertStat(e: TraceEvent, st: { ino: bigint; size: bigint; mtimeNs: bigint } | null): void {
  const want = st ? [st.ino, st.size, st.mtimeNs] : [0n, 0n, 0n];
  assert.deepEqual([e.ino, e.size, e.mtimeNs], want, `stat of "${e.op} ${e.path}"`);
}

function expectNoEvent(r: Run, op: string, path: string): void {
  assert.ok(!has(r, op, path), `did not expect "${op} ${path}" in the trace:\n${r.log}`);
}

before(() => {
  buildNative({ force: true });
  root = mkdtempSync(join(tmpdir(), 'kbx-tracer-test-'));
  probe = join(realpathSync(root), 'probe');
  execFileSync('cc', ['-O2', '-o', probe, probeSource]);
});
after(() => rmSync(root, { recursive: true, force: true }));

test('a shell redirect: cat reads a, the shell writes b, and both programs are recorded', () => {
  const d = scratch();
  writeFileSync(join(d, 'a'), 'hello\n');
  const r = sh(d, 'cat a > b');
  assert.equal(r.status, 0);
  assert.equal(readFileSync(join(d, 'b'), 'utf8'), 'hello\n');
  expectEvent(r, 'r', join(d, 'a'));
  expectEvent(r, 'w', join(d, 'b'));
  const cat = r.events.find((e) => e.op === 'e' && basename(e.path) === 'cat');
  assert.ok(cat, `no exec of cat:\n${r.log}`);
  expectEvent(r, 'x', realpathSync(cat.path));
  expectEvent(r, 'x', realpathSync('/bin/sh'));
  assert.ok(r.events.some((e) => e.op === 'x' && /\/libc\.so\.6$/.test(e.path)), 'libc is recorded');
  assert.ok(!r.events.some((e) => e.op === 'x' && e.path === tracerPath), 'the tracer leaves itself out');
  assert.ok(r.events.every((e) => e.op === 'i' || e.op === '!' || e.path.startsWith('/')));
});

test('a compile: header read, absent include dir and header probed, cc1 and as run, object written, temporaries deleted', () => {
  const d = scratch();
  mkdirSync(join(d, 'inc'));
  mkdirSync(join(d, 'tmp'));
  writeFileSync(join(d, 'inc', 'foo.h'), '#define FOO 3\n');
  writeFileSync(join(d, 'foo.c'), '#include "foo.h"\nint f(void) { return FOO; }\n');
  const r = run(d, 'gcc', ['-Imissing', '-Iinc', '-c', 'foo.c', '-o', 'foo.o'], { env: { TMPDIR: join(d, 'tmp') } });
  assert.equal(r.status, 0, r.stderr);
  expectEvent(r, 'r', join(d, 'foo.c'));
  expectEvent(r, 'r', join(d, 'inc', 'foo.h'));
  expectEvent(r, 'a', join(d, 'missing')); // cpp drops an absent -I dir at startup
  expectEvent(r, 'a', join(d, 'foo.h')); // "foo.h" is looked for next to foo.c first
  expectEvent(r, 'w', join(d, 'foo.o'));
  assert.ok(r.events.some((e) => e.op === 'x' && basename(e.path) === 'cc1'), `cc1 ran:\n${r.log}`);
  assert.ok(r.events.some((e) => e.op === 'e' && basename(e.path) === 'as'), `as was executed:\n${r.log}`);
  assert.ok(r.events.some((e) => e.op === 'x' && /(^|-)as$/.test(basename(e.path))), `as ran:\n${r.log}`);
  const temps = r.events.filter((e) => e.op === 'w' && e.path.startsWith(join(d, 'tmp') + '/'));
  assert.ok(temps.length > 0, `a temporary was written:\n${r.log}`);
  for (const t of temps) expectEvent(r, 'd', t.path);
});

test('mv, ln -s, mkdir and rm report rename (with the old stat), symlink, mkdir and delete', () => {
  const d = scratch();
  writeFileSync(join(d, 'f'), 'content');
  const st = statSync(join(d, 'f'), { bigint: true });
  const r = sh(d, 'mv f g && ln -s g l && mkdir sub && rm l');
  assert.equal(r.status, 0, r.stderr);
  const moved = expectEvent(r, 'n', join(d, 'f'));
  assert.equal(moved.ino, st.ino);
  assert.equal(moved.size, 7n);
  assert.equal(moved.mtimeNs, st.mtimeNs);
  const i = r.events.indexOf(moved);
  assert.deepEqual(r.events[i + 1], { op: 'N', path: join(d, 'g'), ino: 0n, size: 0n, mtimeNs: 0n }, 'n is followed by N');
  expectEvent(r, 'l', join(d, 'l'));
  expectEvent(r, 'k', join(d, 'sub'));
  const rmLink = expectEvent(r, 'd', join(d, 'l'));
  assert.ok(rmLink.ino! > 0n && rmLink.size === 1n, `d has the symlink's own stat (lstat):\n${r.log}`);
});

test('appending modifies in place: m with the size and mtime before, 0 0 0 for a new file', () => {
  const d = scratch();
  writeFileSync(join(d, 'f'), 'hello');
  const st = statSync(join(d, 'f'), { bigint: true });
  const r = sh(d, 'printf x >> f; printf y >> new');
  assert.equal(readFileSync(join(d, 'f'), 'utf8'), 'hellox');
  const m = expectEvent(r, 'm', join(d, 'f'));
  assert.deepEqual([m.ino, m.size, m.mtimeNs], [st.ino, 5n, st.mtimeNs]);
  const fresh = expectEvent(r, 'm', join(d, 'new'));
  assert.deepEqual([fresh.ino, fresh.size, fresh.mtimeNs], [0n, 0n, 0n]);
});

test('objcopy in place: foo.o is read, then replaced by a change that carries its stat from before', () => {
  const d = scratch();
  writeFileSync(join(d, 'foo.c'), 'int x;\n');
  writeFileSync(join(d, 'f'), 'section data\n');
  execFileSync('gcc', ['-c', 'foo.c', '-o', 'foo.o'], { cwd: d });
  const st = statSync(join(d, 'foo.o'), { bigint: true });
  const r = run(d, 'objcopy', ['--add-section', '.x=f', 'foo.o']);
  assert.equal(r.status, 0, r.stderr);
  const foo = join(d, 'foo.o');
  const read = r.events.indexOf(expectEvent(r, 'r', foo));
  // Older binutils rename their temporary over foo.o (N); 2.36 and later copy
  // it back into foo.o with a truncating open (w). Either carries the stat.
  const change = r.events.findIndex((e) => (e.op === 'N' || e.op === 'w') && e.path === foo);
  assert.ok(change > read, `foo.o is read, then replaced:\n${r.log}`);
  assertStat(r.events[change]!, st);
  // The temporary comes from mkstemp inside libc: new (0 0 0), gone at the end.
  const temp = r.events.find((e) => e.op === 'w' && dirname(e.path) === d && e.path !== foo);
  assert.ok(temp, `the temporary is logged:\n${r.log}`);
  assertStat(temp, null);
  assert.ok(has(r, 'd', temp.path) || has(r, 'n', temp.path), `the temporary is removed or renamed:\n${r.log}`);
  assert.ok(!existsSync(temp.path));
});

test('sed -i: the mkstemp temporary is written, then renamed over the file with its old stat', () => {
  const d = scratch();
  writeFileSync(join(d, 'f'), 'aaa\n');
  const st = statSync(join(d, 'f'), { bigint: true });
  const r = run(d, 'sed', ['-i', 's/a/b/', 'f']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(d, 'f'), 'utf8'), 'baa\n');
  const f = join(d, 'f');
  const read = r.events.indexOf(expectEvent(r, 'r', f));
  const temp = r.events.findIndex((e) => e.op === 'w' && e.path.startsWith(d + '/') && e.path !== f);
  assert.ok(temp > read, `sed's temporary is logged as w:\n${r.log}`);
  const tempPath = r.events[temp]!.path;
  assertStat(r.events[temp]!, null);
  const renamed = r.events.findIndex((e) => e.op === 'n' && e.path === tempPath);
  assert.ok(renamed > temp, r.log);
  assert.equal(r.events[renamed]!.size, 4n, 'n has the temporary as written');
  assert.equal(r.events[renamed + 1]!.op, 'N');
  assert.equal(r.events[renamed + 1]!.path, f);
  assertStat(r.events[renamed + 1]!, st);
});

test('truncating, replacing and removing an existing file carry its old stat; new files 0 0 0', () => {
  const d = scratch();
  for (const f of ['t', 'm', 'rm']) writeFileSync(join(d, f), `old ${f}\n`);
  const st = Object.fromEntries(['t', 'm', 'rm'].map((f) => [f, statSync(join(d, f), { bigint: true })]));
  const r = sh(d, ': > t; : > fresh; echo new > src; mv src m; ln m hard; rm rm');
  assert.equal(r.status, 0, r.stderr);
  assertStat(expectEvent(r, 'w', join(d, 't')), st.t!);
  assertStat(expectEvent(r, 'w', join(d, 'fresh')), null);
  assertStat(expectEvent(r, 'N', join(d, 'm')), st.m!);
  assertStat(expectEvent(r, 'N', join(d, 'hard')), null);
  assertStat(expectEvent(r, 'd', join(d, 'rm')), st.rm!);
  expectNoEvent(r, 'a', join(d, 'rm'));
});

test('mktemp and the mk*temp* family: the file made is w 0 0 0, the directory k; names made absolute', () => {
  const d = scratch();
  mkdirSync(join(d, 'tmp'));
  const r = sh(d, 'mktemp; mktemp -d', { env: { TMPDIR: join(d, 'tmp') } });
  assert.equal(r.status, 0, r.stderr);
  const [file, dir] = r.stdout.trim().split('\n');
  assertStat(expectEvent(r, 'w', file!), null);
  expectEvent(r, 'k', dir!);

  mkdirSync(join(d, 'sub'));
  const p = run(d, probe, ['mktemps', 'sub']);
  const made = p.stdout.trim().split(' ');
  assert.equal(made.slice(0, 2).join(' '), 'mktemps ok', p.stdout);
  const names = made.slice(2).map((t) => join(d, t));
  assert.match(names[2]!, /\/t2\w{6}\.s$/);
  for (const t of names.slice(0, 5)) assertStat(expectEvent(p, 'w', t), null);
  expectEvent(p, 'k', names[5]!);
  assert.equal(p.events.filter((e) => e.op === 'w' || e.op === 'k').length, 6, p.log);
});

test('relative paths follow cd; *at calls on a directory fd resolve it through /proc/self/fd', () => {
  const d = scratch();
  mkdirSync(join(d, 'sub', 'tree', 'a'), { recursive: true });
  writeFileSync(join(d, 'sub', 'rel.txt'), 'x');
  writeFileSync(join(d, 'sub', 'tree', 'a', 'file'), 'x');
  const r = sh(d, 'cd sub && cat rel.txt && rm -r tree');
  assert.equal(r.status, 0, r.stderr);
  expectEvent(r, 'r', join(d, 'sub', 'rel.txt'));
  expectEvent(r, 'd', join(d, 'sub', 'tree', 'a', 'file'));
  expectEvent(r, 'd', join(d, 'sub', 'tree', 'a'));
  expectEvent(r, 'd', join(d, 'sub', 'tree'));

  const p = run(d, probe, ['openat', 'sub', 'rel.txt', '--', 'openat', 'sub', 'nope']);
  assert.equal(p.stdout, 'openat ok\nopenat No such file or directory\n');
  expectEvent(p, 'r', join(d, 'sub', 'rel.txt'));
  expectEvent(p, 'a', join(d, 'sub', 'nope'));
});

test('fopen modes: r reads, w/w+/wx write, a/a+/r+ modify; a missing file is absent', () => {
  const d = scratch();
  for (const f of ['r', 'a', 'aplus', 'rplus', 'w', 'wplus']) writeFileSync(join(d, f), 'old');
  const steps = [
    ['r', 'r'], ['w', 'w'], ['w+', 'wplus'], ['wx', 'wx'], ['a', 'a'], ['a+', 'aplus'], ['r+', 'rplus'], ['r', 'missing'],
  ];
  const r = run(d, probe, steps.flatMap(([mode, f], i) => [...(i ? ['--'] : []), 'fopen', mode!, f!]));
  assert.equal(r.status, 0, r.stderr);
  expectEvent(r, 'r', join(d, 'r'));
  for (const f of ['w', 'wplus', 'wx']) expectEvent(r, 'w', join(d, f));
  for (const f of ['a', 'aplus', 'rplus']) assert.equal(expectEvent(r, 'm', join(d, f)).size, 3n);
  expectEvent(r, 'a', join(d, 'missing'));
  expectNoEvent(r, 'r', join(d, 'missing'));
});

test('renameat2 RENAME_EXCHANGE reports both directions; O_TMPFILE names nothing', () => {
  const d = scratch();
  writeFileSync(join(d, 'x'), '1');
  writeFileSync(join(d, 'y'), '22');
  const sx = statSync(join(d, 'x'), { bigint: true });
  const sy = statSync(join(d, 'y'), { bigint: true });
  const r = run(d, probe, ['exchange', 'x', 'y', '--', 'tmpfile', '.']);
  assert.match(r.stdout, /^exchange ok\n/);
  const moves = r.events.filter((e) => 'nN'.includes(e.op));
  const ev = (op: string, f: string, st: typeof sx) => ({ op, path: join(d, f), ino: st.ino, size: st.size, mtimeNs: st.mtimeNs });
  assert.deepEqual(moves, [ev('n', 'x', sx), ev('N', 'y', sy), ev('n', 'y', sy), ev('N', 'x', sx)]);
  assert.ok(!r.events.some((e) => e.op === 'w' || e.op === 'm'), r.log);
});

test('find lists DIR and each subdirectory (r); its dirfd opens and saved cwd are probes (s)', () => {
  const d = scratch();
  mkdirSync(join(d, 'src', 'sub', 'deep'), { recursive: true });
  writeFileSync(join(d, 'src', 'a.x'), '');
  writeFileSync(join(d, 'src', 'sub', 'deep', 'b.x'), '');
  const r = run(d, 'find', ['src', '-name', '*.x']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n').sort(), ['', 'src/a.x', 'src/sub/deep/b.x']);
  for (const dir of ['src', 'src/sub', 'src/sub/deep']) expectEvent(r, 'r', join(d, dir));
  // find opens "." only to come back to it: the cwd's listing is no input.
  assert.ok(!r.events.some((e) => e.op === 'r' && (e.path === d || e.path === `${d}/.`)), r.log);
});

test('mkdir -p and cat of a directory open directories without reading a listing: s, not r', () => {
  const d = scratch();
  const r = sh(d, 'mkdir -p . a/b && mkdir -p a/b/c; cat a 2>/dev/null; echo $?');
  assert.equal(r.stdout, '1\n');
  expectEvent(r, 'k', join(d, 'a', 'b', 'c'));
  assert.ok(!r.events.some((e) => e.op === 'r' && e.path.startsWith(d)), `no listing read:\n${r.log}`);
  expectEvent(r, 's', join(d, 'a'));
});

test('the shell glob, opendir, fdopendir, scandir, fts, nftw, ftw and glob() log the listings they read', () => {
  const d = scratch();
  mkdirSync(join(d, 'src', 'sub'), { recursive: true });
  writeFileSync(join(d, 'src', 'a.c'), '');
  writeFileSync(join(d, 'src', 'sub', 'b.c'), '');
  const tree = ['src', 'src/a.c', 'src/sub', 'src/sub/b.c'].join(' ');
  const dirs = [join(d, 'src'), join(d, 'src', 'sub')];

  const glob = sh(join(d, 'src'), 'echo *.c');
  assert.equal(glob.stdout, 'a.c\n');
  expectEvent(glob, 'r', `${join(d, 'src')}/.`); // dash lists "." with opendir

  const py = run(d, 'python3', ['-c', 'import os; print(sorted(os.listdir("src")), sorted(e.name for e in os.scandir(os.open("src/sub", os.O_RDONLY))))']);
  assert.equal(py.status, 0, py.stderr);
  expectEvent(py, 'r', join(d, 'src')); // opendir
  expectEvent(py, 'r', join(d, 'src', 'sub')); // fdopendir

  const steps: [string[], string, string[]][] = [
    [['fdopendir', 'src'], 'fdopendir . .. a.c sub', [dirs[0]!]],
    [['scandir', 'src'], 'scandir . .. a.c sub', [dirs[0]!]],
    [['fts', 'src'], `fts ${tree}`, dirs],
    [['fts-nochdir', 'src'], `fts-nochdir ${tree}`, dirs],
    [['nftw', 'src'], `nftw ${tree}`, dirs],
    [['nftw-chdir', 'src'], `nftw-chdir ${tree}`, dirs],
    [['ftw', 'src'], `ftw ${tree}`, dirs],
    [['glob', 'src/*/*.c'], 'glob src/sub/b.c', dirs],
  ];
  for (const [args, out, listed] of steps) {
    const plain = run(d, probe, args, { preload: false });
    const p = run(d, probe, args);
    assert.equal(plain.stdout, `${out}\n`);
    assert.equal(p.stdout, plain.stdout, 'tracing changes nothing');
    const reads = p.events.filter((e) => e.op === 'r' && e.path.startsWith(d)).map((e) => e.path);
    assert.deepEqual([...new Set(reads)].sort(), listed, `${args.join(' ')}:\n${p.log}`);
  }

  const missing = run(d, probe, ['nftw', 'nope', '--', 'scandir', 'nope', '--', 'glob', 'nope/*']);
  assert.equal(missing.stdout, 'No such file or directory\nNo such file or directory\nglob nomatch\n');
  assert.ok(!missing.events.some((e) => e.op === 'r' && e.path.startsWith(d)), missing.log);
  expectEvent(missing, 'a', join(d, 'nope'));
});

test('execvp and posix_spawnp: absent PATH candidates before the program found, then the program; one there but not executable is an X probe', () => {
  const d = scratch();
  for (const b of ['bin0', 'bin1', 'bin2']) mkdirSync(join(d, b));
  writeFileSync(join(d, 'bin0', 'tool'), 'not executable');
  writeFileSync(join(d, 'bin2', 'tool'), '#!/bin/sh\necho tool ran\n');
  chmodSync(join(d, 'bin2', 'tool'), 0o755);
  const env = { PATH: `${d}/bin0:${d}/bin1:${d}/bin2:/usr/bin:/bin` };
  const r = run(d, probe, ['spawnp', 'tool', '--', 'execvp', 'tool'], { env });
  assert.equal(r.stdout, 'tool ran\nspawnp ok\ntool ran\n');
  const search = r.events.filter((e) => e.path.endsWith('/tool') && 'saeX'.includes(e.op)).map((e) => `${e.op} ${e.path}`);
  const once = [`X ${d}/bin0/tool`, `a ${d}/bin1/tool`, `e ${d}/bin2/tool`];
  assert.deepEqual(search, [...once, ...once]);

  const missing = run(d, probe, ['execvp', 'nosuch'], { env });
  assert.equal(missing.stdout, 'execvp No such file or directory\n');
  for (const b of ['bin0', 'bin1', 'bin2']) expectEvent(missing, 'a', join(d, b, 'nosuch'));
  expectNoEvent(missing, 'e', join(d, 'bin2', 'nosuch'));

  const l = run(d, probe, ['execl', join(d, 'bin2', 'tool')]);
  assert.equal(l.stdout, 'tool ran\n');
  expectEvent(l, 'e', join(d, 'bin2', 'tool'));
});

test('standard input: i only for reads of what came from outside the line', () => {
  const d = scratch();
  writeFileSync(join(d, 'f'), 'file\n');
  const outer = sh(d, 'cat', { input: 'hi\n' });
  assert.equal(outer.stdout, 'hi\n');
  assert.ok(has(outer, 'i', ''), outer.log);
  assert.equal(outer.events.filter((e) => e.op === 'i').length, 1, 'once per process');

  const getchar = run(d, probe, ['getchar'], { input: 'A' });
  assert.equal(getchar.stdout, 'getchar 65\n');
  assert.ok(has(getchar, 'i', ''), getchar.log);

  const inner = sh(d, 'echo x | cat', { input: 'unused\n' });
  assert.equal(inner.stdout, 'x\n');
  assert.ok(!has(inner, 'i', ''), `a pipe made by the line is not stdin:\n${inner.log}`);

  const file = sh(d, 'cat < f', { input: 'unused\n' });
  assert.equal(file.stdout, 'file\n');
  assert.ok(!has(file, 'i', ''), file.log);
  expectEvent(file, 'r', join(d, 'f'));

  const devnull = sh(d, 'cat');
  assert.ok(!has(devnull, 'i', ''), devnull.log);
});

test('f: a call failing other than absent or existing, a child killed by a signal; not an absent file, nor SIGPIPE', () => {
  const d = scratch();
  symlinkSync('loop', join(d, 'loop'));
  const r = sh(d, "cat loop; cat absent; sh -c 'kill -9 $$'; yes | head -n 1");
  assert.equal(r.status, 0);
  const failures = r.events.filter((e) => e.op === 'f').map((e) => e.path);
  assert.equal(failures.length, 2, r.log);
  assert.match(failures[0]!, /^errno 40 (\S*\/)?loop$/); // ELOOP
  assert.equal(failures[1], 'child killed by signal 9');
  expectEvent(r, 'a', join(d, 'absent'));
});

test('a path with a newline is reported as ! instead of a broken line', () => {
  const d = scratch();
  writeFileSync(join(d, 'two\nlines'), 'x');
  const r = sh(d, 'cat "$F"', { env: { F: 'two\nlines' } });
  assert.equal(r.stdout, 'x');
  assert.ok(r.events.some((e) => e.op === '!' && /newline/.test(e.path)), r.log);
});

test('the log sits at a high descriptor and is reopened if a program closes it', () => {
  const d = scratch();
  const r = run(d, '/bin/ls', ['/proc/self/fd']);
  assert.ok(r.stdout.split('\n').some((fd) => Number(fd) >= 800), r.stdout);
  const closed = run(d, '/bin/bash', ['-c', 'exec 800>&-; echo > after']);
  assert.equal(closed.status, 0, closed.stderr);
  expectEvent(closed, 'w', join(d, 'after'));
});

test('a static program is named by the exec that starts it but records nothing itself', () => {
  const d = scratch();
  writeFileSync(join(d, 's.c'), 'int main(void) { return 0; }\n');
  execFileSync('cc', ['-static', '-o', join(d, 'static'), join(d, 's.c')]);
  const r = sh(d, './static');
  assert.equal(r.status, 0);
  expectEvent(r, 'e', `${d}/./static`);
  expectNoEvent(r, 'x', join(d, 'static'));
});

test('make -j4: lines of concurrent processes are never mixed', () => {
  const d = scratch();
  const targets = Array.from({ length: 24 }, (_, i) => `out${i}`);
  writeFileSync(join(d, 'src'), 'x\n'.repeat(100));
  writeFileSync(
    join(d, 'Makefile'),
    `all: ${targets.join(' ')}\n` +
      `out%:\n\t@for i in 1 2 3 4 5 6 7 8; do cat src; ls $(CURDIR) > /dev/null; done > $@\n`,
  );
  const r = run(d, 'make', ['-j4', '-s'], { env: { MAKEFLAGS: '' } });
  assert.equal(r.status, 0, r.stderr);
  // parseTrace has already rejected any malformed line.
  assert.ok(r.events.length > 24 * 8 * 4, `${r.events.length} events`);
  for (const t of targets) expectEvent(r, 'w', join(d, t));
  assert.equal(r.events.filter((e) => e.op === 'r' && e.path === join(d, 'src')).length, 24 * 8);
});

test('without KBX_TRACE_LOG the library changes nothing, and tracing changes no output', () => {
  const d = scratch();
  writeFileSync(join(d, 'bad.c'), 'int f(void) { return undeclared; }\n');
  writeFileSync(join(d, 'f'), 'data\n');
  const script =
    'ls -la . | sed "s/  */ /g"; cat f missing; echo "status $?"; ls nonexist; ' +
    `${probe} stat nonexist -- stat f -- fopen r nonexist -- fopen wx f; ` +
    'gcc -c bad.c -o bad.o; echo "gcc $?"; printf "a\\nb\\n" | sort -r; cat';
  const plain = sh(d, script, { preload: false, input: 'stdin text\n' });
  const off = sh(d, script, { trace: false, input: 'stdin text\n' });
  const on = sh(d, script, { input: 'stdin text\n' });
  assert.match(plain.stdout, /stat -1 No such file or directory/);
  assert.match(plain.stdout, /stdin text/);
  for (const r of [off, on]) {
    assert.deepEqual([r.status, r.stdout, r.stderr], [plain.status, plain.stdout, plain.stderr]);
  }
  assert.equal(off.log, '', 'no log without KBX_TRACE_LOG');
  assert.ok(on.events.length > 0);
});

test('a child given an emptied or new environment keeps the tracer; one that had it off stays off', () => {
  const d = scratch();
  writeFileSync(join(d, 'src'), 'x\n');
  const script =
    `env -i sh -c 'cat src > o1' && ${probe} spawn-noenv 'cat src > o2' -- vfork-noenv 'cat src > o3'` +
    ` -- clearenv-system 'cat src > o4' -- execle-noenv 'cat src > o5'`;
  const r = sh(d, script);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'spawn-noenv ok\nvfork-noenv 0\nclearenv-system 0\n');
  for (let i = 1; i <= 5; i++) expectEvent(r, 'w', join(d, `o${i}`));
  assert.equal(r.events.filter((e) => e.op === 'r' && e.path === join(d, 'src')).length, 5, r.log);

  // What an emptied environment holds under the tracer: the tracer's own variables only.
  const env = sh(d, 'env -i env | sort');
  const stdin = /^KBX_TRACE_STDIN=.*$/m.exec(env.stdout)?.[0];
  assert.ok(stdin, env.stdout);
  assert.equal(env.stdout, `KBX_TRACE_LOG=${join(root, 'log' + (n - 1))}\n${stdin}\nLD_PRELOAD=${tracerPath}\n`);
  // A program's own preload stays, after the tracer.
  const own = sh(d, 'env LD_PRELOAD=libm.so.6 sh -c \'echo "$LD_PRELOAD"\'');
  assert.equal(own.stdout, `${tracerPath} libm.so.6\n`);
  // Without KBX_TRACE_LOG the library adds nothing.
  assert.equal(sh(d, 'env -i env', { trace: false }).stdout, '');
});

test('programs that cannot load the tracer (32-bit, static, set-id, a script run by one) are logged ! and run without it', () => {
  const d = scratch();
  writeFileSync(join(d, 'p.c'), '#include <stdio.h>\nint main(void) { puts("ran"); return 0; }\n');
  const m32 = spawnSync('cc', ['-m32', '-o', join(d, 'p32'), join(d, 'p.c')], { encoding: 'utf8' });
  assert.equal(m32.status, 0, `cc -m32 failed (apt-get install gcc-multilib): ${m32.stderr}`);
  execFileSync('cc', ['-static', '-o', join(d, 'pstatic'), join(d, 'p.c')]);
  execFileSync('cc', ['-o', join(d, 'psetid'), join(d, 'p.c')]);
  chmodSync(join(d, 'psetid'), 0o4755);
  writeFileSync(join(d, 'script'), `#!${d}/p32\n`);
  chmodSync(join(d, 'script'), 0o755);
  const cases: [string, RegExp][] = [
    ['./p32', /^32-bit program: .*\/p32$/],
    ['./pstatic', /^static program: .*\/pstatic$/],
    ['./psetid', /^set-id program: .*\/psetid$/],
    ['./script', /^32-bit program: .*\/script$/],
  ];
  for (const [prog, why] of cases) {
    const r = sh(d, `${prog}; echo done`);
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'ran\ndone\n', ''], `${prog} runs as without the tracer`);
    assert.ok(r.events.some((e) => e.op === '!' && why.test(e.path)), `${prog}:\n${r.log}`);
  }
  // An ordinary dynamic program is no such thing.
  const ok = sh(d, 'cc -o p p.c && ./p');
  assert.equal(ok.stdout, 'ran\n');
  assert.ok(!ok.events.some((e) => e.op === '!'), ok.log);
});

test('a change through a symlink is logged again under the path it changed; reads and plain paths are not', () => {
  const d = scratch();
  const away = scratch();
  mkdirSync(join(d, 'sub'));
  writeFileSync(join(away, 'victim'), 'old\n');
  const r = sh(
    d,
    `ln -s ${away}/victim link; ln -s ${away} dir; cat link > read; echo hi > link; echo hi > dir/f; mkdir dir/k; ` +
      'mv dir/f dir/g; rm dir/g; truncate -s 0 link; echo a > ./sub/../x; echo b > sub//y',
  );
  assert.equal(r.status, 0, r.stderr);
  const pairs: [string, string, string][] = [
    ['w', 'link', 'victim'],
    ['w', 'dir/f', 'f'],
    ['k', 'dir/k', 'k'],
    ['n', 'dir/f', 'f'],
    ['N', 'dir/g', 'g'],
    ['d', 'dir/g', 'g'],
    ['m', 'link', 'victim'],
  ];
  for (const [op, given, real] of pairs) {
    const i = r.events.indexOf(expectEvent(r, op, join(d, given)));
    const next = r.events[i + 1]!;
    assert.deepEqual([next.op, next.path], [op, join(away, real)], `${op} ${given} then its real path:\n${r.log}`);
    assert.deepEqual([next.ino, next.size, next.mtimeNs], [r.events[i]!.ino, r.events[i]!.size, r.events[i]!.mtimeNs]);
  }
  expectEvent(r, 'r', join(d, 'link'));
  expectNoEvent(r, 'r', join(away, 'victim'));
  // No symlink on the way: one event, spelt as given.
  expectEvent(r, 'w', `${d}/./sub/../x`);
  expectNoEvent(r, 'w', join(d, 'x'));
  expectEvent(r, 'w', `${d}/sub//y`);
  expectNoEvent(r, 'w', join(d, 'sub', 'y'));
  assert.equal(r.events.filter((e) => e.path.startsWith(away)).length, pairs.length, r.log);
});

test("perl's start-up reads of /dev/urandom (hash and rand() seeds) are not logged; a script's own read is", () => {
  const d = scratch();
  writeFileSync(join(d, 'in'), 'hello\n');
  const quiet = run(d, '/usr/bin/perl', ['-ne', 'print uc', 'in']);
  assert.equal(quiet.stdout, 'HELLO\n', quiet.stderr);
  expectNoEvent(quiet, 'r', '/dev/urandom');
  expectEvent(quiet, 'r', join(d, 'in'));
  const seeded = run(d, '/usr/bin/perl', ['-e', 'print 1'], { env: { PERL_HASH_SEED: '0' } });
  expectNoEvent(seeded, 'r', '/dev/urandom');
  // The script's own read comes after the start-up ones: the window is closed.
  for (const env of [{}, { PERL_HASH_SEED: '0' }] as Record<string, string>[]) {
    const own = run(d, '/usr/bin/perl', ['-e', 'open(my $f, "<", "/dev/urandom") or die; read($f, my $b, 4); print length $b'], { env });
    assert.equal(own.stdout, '4', own.stderr);
    expectEvent(own, 'r', '/dev/urandom');
  }
  // Other programs keep logging it.
  const od = run(d, '/usr/bin/od', ['-N', '4', '/dev/urandom']);
  expectEvent(od, 'r', '/dev/urandom');
});

test("asking for the host's identity and talking to a socket: q host and q net, with the executable's name", () => {
  const d = scratch();
  // coreutils' uname calls uname(2); hostname asks gethostname.
  expectEvent(run(d, '/usr/bin/uname', ['-n']), 'q', 'host uname');
  expectEvent(run(d, '/usr/bin/hostname', []), 'q', 'host hostname');
  // bash run as sh is named by its executable: bash.
  const sh = run(d, '/bin/bash', ['-c', 'exec -a sh /bin/bash -c :']);
  assert.deepEqual(sh.events.filter((e) => e.op === 'q').map((e) => e.path), ['host bash', 'host bash']);
  // A refused connection is a connection tried all the same.
  const net = run(d, '/bin/bash', ['-c', 'echo > /dev/tcp/127.0.0.1/1'], {});
  assert.notEqual(net.status, 0);
  expectEvent(net, 'q', 'net bash');
  // Programs that do neither log neither.
  assert.deepEqual(run(d, '/bin/cat', ['/dev/null']).events.filter((e) => e.op === 'q'), []);
});

test('access, faccessat, eaccess and euidaccess: X when they ask for X_OK (granted or denied), s for other modes, a when absent', () => {
  const d = scratch();
  writeFileSync(join(d, 'plain'), 'data');
  writeFileSync(join(d, 'tool'), '#!/bin/sh\n');
  chmodSync(join(d, 'tool'), 0o755);
  // dash's test asks faccessat, bash's eaccess or faccessat, coreutils' test euidaccess.
  for (const t of ['[', 'bash -c [', '/usr/bin/test']) {
    const text = (args: string) => (t.startsWith('bash') ? `bash -c '[ ${args} ]'` : t === '[' ? `[ ${args} ]` : `${t} ${args}`);
    const r = run(d, '/bin/sh', ['-c', `${text('-x plain')}; ${text('-x tool')}; ${text('-x gone')}; ${text('-r plain')}; true`]);
    expectEvent(r, 'X', join(d, 'plain'));
    expectEvent(r, 'X', join(d, 'tool'));
    expectEvent(r, 'a', join(d, 'gone'));
    expectNoEvent(r, 'f', join(d, 'plain'));
    assert.ok(r.events.some((e) => e.op === 's' && e.path === join(d, 'plain')), `${t}: ${r.log}`);
  }
});
