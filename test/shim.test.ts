// The shell shim (native/shim/kbx-shim.c) as make sees it: real processes,
// a real make, and a small in-test daemon peer speaking docs/PROTOCOL.md.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNative, shimPath } from '../src/native/build.js';
import { FrameReader, MsgType, encodeFrame, type Frame } from '../src/daemon/protocol.js';
import { cleanEnv } from './support/env.js';
import { parseShimEvents } from '../src/builds/shim-events.js';

const SLOT = { trivial: 0, recursive: 1, passDaemon: 2, fallback: 3, hit: 4, miss: 5, passConfig: 6, passFlags: 7, unseenEnded: 8, unseenUnknown: 9, warned: 15 };

let dir: string;
let n = 0;
/** A fresh directory per test case, so side effects never leak between cases. */
function scratch(): string {
  const d = join(dir, `t${n++}`);
  mkdirSync(d);
  return realpathSync(d);
}

before(() => {
  try {
    buildNative({ force: true });
  } catch (err) {
    // The shim is compiled first; a missing tracer source must not hide it.
    if (!/kbx-trace\.c/.test((err as Error).message) || !existsSync(shimPath)) throw err;
  }
  dir = mkdtempSync(join(tmpdir(), 'kbx-shim-test-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));


interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** Runs a program asynchronously (the in-test peer must keep serving meanwhile). */
function run(
  file: string,
  args: string[],
  opts: { env: Record<string, string>; cwd?: string; onStdout?: (s: string, child: ReturnType<typeof spawn>) => void },
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env, cwd: opts.cwd ?? dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => {
      out.push(b);
      opts.onStdout?.(Buffer.concat(out).toString(), child);
    });
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
  });
}

const shim = (args: string[], env: Record<string, string>, cwd?: string) => run(shimPath, args, { env, cwd });

function newCounters(d: string): string {
  const p = join(d, 'counters');
  writeFileSync(p, Buffer.alloc(512));
  return p;
}
function counters(p: string): number[] {
  const b = readFileSync(p);
  return Array.from({ length: 16 }, (_, i) => Number(b.readBigUInt64LE(i * 8)));
}

/** A shell that records each run in a file, then is /bin/sh. */
function recordingShell(d: string): { path: string; runs: () => number } {
  const path = join(d, 'recording-sh');
  const log = join(d, 'shell-runs');
  writeFileSync(path, `#!/bin/sh\necho x >> '${log}'\nexec /bin/sh "$@"\n`);
  chmodSync(path, 0o755);
  return { path, runs: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').length - 1 : 0) };
}

describe('trivial lines', () => {
  const cases: string[][] = [
    ['-c', ''],
    ['-c', '   \t '],
    ['-c', ':'],
    ['-c', 'true'],
    ['-c', 'set -e'],
    ['-c', 'set -e;'],
    ['-c', 'set -e; '],
    ['-c', "echo '  CC      init/main.o'"],
    ['-c', "set -e; echo '  CC [M]  drivers/foo.o';"],
    ['-c', 'echo'],
    ['-c', 'echo -n'],
    ['-c', "echo -n 'no newline'"],
    ['-c', "echo '-n' quoted-option"],
    ['-c', 'echo -n - x'],
    ['-c', "echo a'b  c'd   e\tf"],
    ['-c', "echo '' x ''"],
    ['-c', "echo 'a$b*?[c]{}~#\"`|&;<>()'"],
    ['-c', 'echo a=b %x ^y] 1,2 @z +w'],
    ['-c', "echo 'é ü \x81\x88'"],
    ['-c', "printf 'line one\\nline two\\n'"],
    ['-c', "printf 'no newline'"],
    ['-c', ': anything at all'],
    ['-c', 'true; :;set -e ;  true'],
    ['-c', "set -e; echo one; echo 'two  spaces'"],
    ['-ec', "echo 'flags -ec'"],
    ['-e', '-c', 'set -e; :'],
    // kbuild's `cmd` with an empty command: traps that delete the target on a signal, then nothing.
    ['-c', "set -e;  trap 'rm -f init/main.o; trap - HUP; kill -s HUP $$' HUP;  trap 'rm -f init/main.o; trap - INT; kill -s INT $$' INT;  trap 'rm -f init/main.o; trap - QUIT; kill -s QUIT $$' QUIT;  trap 'rm -f init/main.o; trap - TERM; kill -s TERM $$' TERM;  trap 'rm -f init/main.o; trap - PIPE; kill -s PIPE $$' PIPE; "],
    ['-c', 'trap - INT TERM'],
  ];

  test('print byte-identical output to /bin/sh -c, without any shell or daemon', async () => {
    const d = scratch();
    const ctr = newCounters(d);
    // If any case reached a shell, it would fail to start and print an error.
    const env = cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr, KBX_REAL_SHELL: join(d, 'no-shell') });
    for (const args of cases) {
      const got = await shim(args, env, d);
      const want = await run('/bin/sh', args, { env: cleanEnv(), cwd: d });
      const what = JSON.stringify(args);
      assert.equal(got.stdout.toString('latin1'), want.stdout.toString('latin1'), what);
      assert.equal(got.stderr.toString(), '', what);
      assert.equal(got.code, want.code, what);
    }
    const c = counters(ctr);
    assert.equal(c[SLOT.trivial], cases.length);
    assert.equal(c[SLOT.fallback], 0);
  });

  test('everything else is run by the real shell, with its side effects', async () => {
    const d = scratch();
    const ctr = newCounters(d);
    const sh = recordingShell(d);
    const env = cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr, KBX_REAL_SHELL: sh.path, KBX_PASSTHROUGH: '1', HOME: '/home/x' });
    const lines = [
      'echo "double quoted"',
      'echo $HOME',
      "echo 'a\\nb'",
      'echo a\\\\nb',
      "echo 'multi\nline'",
      'echo *',
      'echo ~',
      'echo a #comment',
      'echo a > redirected',
      'FOO=1 echo assignment',
      "printf '%s\\n' formatted",
      "printf 'tab\\tx'",
      'true x',
      "trap 'echo at-exit' EXIT",
      "trap 'echo x' 0",
      'trap',
      "trap 'echo x' HUP; echo done > side-effect",
      'echo -e -n x',
      'echo -n -e x',
      'set -x',
      ';',
      'set -e;;',
      'exit 3',
      "set -e;  echo '  CC      init/main.o'; touch side-effect",
    ];
    for (const line of lines) {
      const got = await shim(['-c', line], env, d);
      if (line.includes('side-effect')) assert.ok(existsSync(join(d, 'side-effect')), 'the shim ran the whole line');
      rmSync(join(d, 'side-effect'), { force: true });
      const want = await run('/bin/sh', ['-c', line], { env: cleanEnv({ HOME: '/home/x' }), cwd: d });
      assert.equal(got.stdout.toString(), want.stdout.toString(), line);
      assert.equal(got.stderr.toString(), want.stderr.toString(), line);
      assert.equal(got.code, want.code, line);
    }
    assert.equal(sh.runs(), lines.length);
    const c = counters(ctr);
    assert.equal(c[SLOT.trivial], 0);
    assert.equal(c[SLOT.passConfig], lines.length);
  });
});

describe('what the shim does not understand, it leaves to the real shell', () => {
  test('without KBX_SOCKET, $0/$1 arguments, -x and +e reach /bin/sh unchanged', async () => {
    const d = scratch();
    const ctr = newCounters(d);
    const calls = [
      { args: ['-c', 'echo "$0 $1 $#"', 'zero', 'one'], env: cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr }) },
      { args: ['-xc', 'true'], env: cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr }) },
      { args: ['+e', '-c', 'false; echo after'], env: cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr }) },
      { args: ['-c'], env: cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr }) },
      // No KBX_SOCKET: even a trivial-looking line goes to the shell.
      { args: ['-c', 'echo plain'], env: cleanEnv({ KBX_COUNTERS: ctr }) },
      { args: ['-c', 'nonexistent-command-xyz'], env: cleanEnv({ KBX_COUNTERS: ctr }) },
    ];
    for (const { args, env } of calls) {
      const got = await shim(args, env, d);
      const want = await run('/bin/sh', args, { env: cleanEnv(), cwd: d });
      const what = JSON.stringify(args);
      assert.equal(got.stdout.toString(), want.stdout.toString(), what);
      assert.equal(got.stderr.toString(), want.stderr.toString(), what);
      assert.equal(got.code, want.code, what);
    }
    const c = counters(ctr);
    assert.deepEqual([...c.slice(0, SLOT.unseenEnded), ...c.slice(SLOT.unseenEnded + 1)], Array(15).fill(0), 'none of these is counted');
    assert.equal(c[SLOT.unseenEnded], 4, 'the daemon learns when each line with KBX_SOCKET has ended');
  });

  test('shell flags other than -c (.POSIX: -ec) are passed through, not cached', async () => {
    const d = scratch();
    const ctr = newCounters(d);
    const got = await shim(['-ec', 'false; echo not-reached'], cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr }), d);
    assert.equal(got.code, 1);
    assert.equal(got.stdout.toString(), '');
    assert.equal(got.stderr.toString(), '', 'no daemon warning: the daemon was not asked');
    assert.equal(counters(ctr)[SLOT.passFlags], 1);
  });
});

describe('under a real make', () => {
  const makefile = [
    'all: a b c sub',
    'a:',
    "\t@set -e; echo '  GEN     a'",
    '\t@printf \'x\\n\' > a.out; cat a.out',
    'b:',
    '\techo "b: $$(( 2 + 3 ))"',
    "\t@:",
    'c:',
    '\t@test -n "$(shell echo from-shell-call)" && echo c ok',
    'sub:',
    '\t$(MAKE) -C subdir --no-print-directory',
    '',
  ].join('\n');
  // With TOGETHER=1 both jobs must run at the same time: only a working
  // jobserver in the sub-make allows that under -j2.
  const subMakefile = [
    'all: p1 p2',
    'p%:',
    '\t@touch $@.started; $(if $(TOGETHER),for i in $$(seq 100); do [ -e $(if $(filter p1,$@),p2,p1).started ] && exit 0; sleep 0.05; done; echo "$@ ran alone"; exit 1,echo $@ done)',
    '',
  ].join('\n');

  function project(): string {
    const d = scratch();
    writeFileSync(join(d, 'Makefile'), makefile);
    mkdirSync(join(d, 'subdir'));
    writeFileSync(join(d, 'subdir', 'Makefile'), subMakefile);
    return d;
  }
  const clean = (d: string) => execFileSync('/bin/sh', ['-c', 'rm -f a.out subdir/*.started'], { cwd: d });

  test('with and without -j2, the output matches plain make (no KBX_SOCKET)', async () => {
    const d = project();
    for (const jobs of [[], ['-j2', '-Otarget', 'TOGETHER=1']]) {
      clean(d);
      const plain = await run('make', [...jobs], { env: cleanEnv(), cwd: d });
      clean(d);
      const kbx = await run('make', [...jobs, `SHELL=${shimPath}`], { env: cleanEnv(), cwd: d });
      assert.equal(plain.code, 0, plain.stderr.toString());
      assert.equal(kbx.code, 0, kbx.stderr.toString());
      const lines = (r: Result) => r.stdout.toString().split('\n').sort();
      if (jobs.length) assert.deepEqual(lines(kbx), lines(plain));
      else assert.equal(kbx.stdout.toString(), plain.stdout.toString());
      assert.equal(kbx.stderr.toString(), plain.stderr.toString());
    }
  });

  test('a recursive $(MAKE) is passed through and its jobserver works, even with a daemon configured', async () => {
    const d = project();
    const ctr = newCounters(d);
    clean(d);
    const env = cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr });
    const r = await run('make', ['-j2', `SHELL=${shimPath}`, 'TOGETHER=1', 'sub'], { env, cwd: d });
    assert.equal(r.code, 0, r.stdout.toString() + r.stderr.toString());
    assert.doesNotMatch(r.stderr.toString(), /jobserver unavailable/);
    assert.ok(existsSync(join(d, 'subdir', 'p1.started')) && existsSync(join(d, 'subdir', 'p2.started')));
    const c = counters(ctr);
    assert.equal(c[SLOT.recursive], 1);
    assert.equal(c[SLOT.fallback], 2, 'p1 and p2 were cacheable lines');
  });

  test('under -j2 a `+` line gets the jobserver, and the daemon is asked for it as for any line whose text runs no make', async () => {
    const d = scratch();
    const ctr = newCounters(d);
    writeFileSync(join(d, 'Makefile'), 'all: plus plain\nplus:\n\t+@echo "plus"\nplain:\n\t@echo "plain"\n');
    const r = await run('make', ['-j2', `SHELL=${shimPath}`], {
      env: cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr }),
      cwd: d,
    });
    assert.equal(r.code, 0, r.stderr.toString());
    assert.deepEqual(r.stdout.toString().split('\n').sort(), ['', 'plain', 'plus']);
    const c = counters(ctr);
    // Both asked the daemon, here unreachable: two fallbacks, no pass-through as recursive make.
    assert.deepEqual([c[SLOT.recursive], c[SLOT.fallback]], [0, 2]);
  });

  test('with KBX_SOCKET pointing at nothing the build succeeds, warning once', async () => {
    const d = scratch();
    const ctr = newCounters(d);
    const targets = ['t1', 't2', 't3', 't4', 't5'];
    writeFileSync(
      join(d, 'Makefile'),
      `all: ${targets.join(' ')}\n${targets.join(' ')}:\n\t@set -e; echo '  GEN     $@'\n\t@echo made $@ > $@.out; cat $@.out\n`,
    );
    const r = await run('make', ['-j2', `SHELL=${shimPath}`], {
      env: cleanEnv({ KBX_SOCKET: join(d, 'no-daemon'), KBX_COUNTERS: ctr }),
      cwd: d,
    });
    assert.equal(r.code, 0, r.stderr.toString());
    for (const t of targets) assert.equal(readFileSync(join(d, `${t}.out`), 'utf8'), `made ${t}\n`);
    const warnings = r.stderr.toString().split('\n').filter((l) => l.startsWith('kbx: '));
    assert.equal(warnings.length, 1, r.stderr.toString());
    assert.match(warnings[0]!, /^kbx: cannot connect to the daemon at .*no-daemon \(No such file or directory\); running recipe lines without the cache \(see kbx daemon status\)$/);
    const c = counters(ctr);
    assert.equal(c[SLOT.fallback], targets.length);
    assert.equal(c[SLOT.trivial], targets.length);
    assert.equal(c[SLOT.warned], 1);
  });
});

/** A daemon stand-in: answers each connection's frames with `reply`. */
interface Peer {
  socket: string;
  lookups: Frame[];
  dones: Frame[];
  close(): Promise<void>;
}
type Reply = (f: Frame, conn: net.Socket) => void;

function startPeer(d: string, reply: Reply): Promise<Peer> {
  const socket = join(d, 'daemon.sock');
  const lookups: Frame[] = [];
  const dones: Frame[] = [];
  const conns = new Set<net.Socket>();
  const server = net.createServer((conn) => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    conn.on('error', () => {});
    const reader = new FrameReader();
    conn.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk)) {
        // Copy: the fields are views into the reader's buffer.
        const copy = { type: f.type, fields: f.fields.map((b) => Buffer.from(b)) };
        (f.type === MsgType.Lookup ? lookups : dones).push(copy);
        reply(copy, conn);
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(socket, () =>
      resolve({
        socket,
        lookups,
        dones,
        close: () =>
          new Promise<void>((res) => {
            for (const c of conns) c.destroy();
            server.close(() => res());
          }),
      }),
    ),
  );
}

/** Replies to LOOKUP with `frame`, to DONE with ACK. */
const answer = (frame: Buffer): Reply => (f, conn) => conn.write(f.type === MsgType.Lookup ? frame : encodeFrame(MsgType.Ack, []));

/** A preloadable library whose constructor appends `tag` to $KBX_TRACE_LOG. */
function preloadLib(d: string, tag: string): string {
  const src = join(d, `${tag}.c`);
  const so = join(d, `${tag}.so`);
  writeFileSync(
    src,
    `#include <fcntl.h>\n#include <stdlib.h>\n#include <unistd.h>\n` +
      `__attribute__((constructor)) static void init(void) {\n` +
      `  const char *p = getenv("KBX_TRACE_LOG"); if (!p) return;\n` +
      `  int fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0644); if (fd < 0) return;\n` +
      `  if (write(fd, "${tag}\\n", ${tag.length + 1}) < 0) {}\n  close(fd);\n}\n`,
  );
  execFileSync(process.env.KBX_NATIVE_CC ?? 'cc', ['-shared', '-fPIC', '-o', so, src]);
  return so;
}

describe('talking to the daemon', () => {
  /** Runs a line that traps TERM (exit 9) and sends the shim SIGTERM once the line is running. */
  function termWhenReady(env: Record<string, string>, d: string): Promise<Result> {
    const line = "trap 'echo got-term; exit 9' TERM; echo ready; sleep 5 & wait";
    let sent = false;
    return run(shimPath, ['-c', line], {
      env,
      cwd: d,
      onStdout: (s, child) => {
        if (!sent && s.includes('ready')) (sent = true), child.kill('SIGTERM');
      },
    });
  }

  function shimEnv(d: string, peer: Peer, extra: Record<string, string> = {}) {
    return cleanEnv({ KBX_SOCKET: peer.socket, KBX_COUNTERS: newCounters(d), KBX_BUILD_ID: 'build-42', ...extra });
  }

  test('LOOKUP carries version, build id, cwd, command, tty flags and umask, and the environment; HIT replays bytes exactly', async () => {
    const d = scratch();
    const stdout = Buffer.from('out\0put\n\0\xff', 'latin1');
    const stderr = Buffer.from('err\0or\r\n', 'latin1');
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Hit, ['7', stdout, stderr])));
    const env = shimEnv(d, peer, { FOO: 'bar=baz' });
    const r = await shim(['-c', 'cc -c foo.c -o foo.o'], env, d);
    await peer.close();
    assert.equal(r.code, 7);
    assert.deepEqual(r.stdout, stdout);
    assert.deepEqual(r.stderr, stderr);
    assert.equal(peer.lookups.length, 1);
    const [version, buildId, cwd, command, tty, ...environ] = peer.lookups[0]!.fields.map((b) => b.toString());
    // No terminal; then the umask (this process's, which the shim inherits).
    const mask = process.umask().toString(8).padStart(3, '0');
    assert.deepEqual([version, buildId, cwd, command, tty], ['1', 'build-42', d, 'cc -c foo.c -o foo.o', `u${mask}`]);
    assert.deepEqual(environ.sort(), Object.entries(env).map(([k, v]) => `${k}=${v}`).sort());
    assert.equal(counters(env.KBX_COUNTERS!)[SLOT.hit], 1);
  });

  test('PASS runs the line in the real shell', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Pass, ['reads-terminal'])));
    const env = shimEnv(d, peer);
    const r = await shim(['-c', 'echo passed; touch pass-marker; exit 4'], env, d);
    await peer.close();
    assert.equal(r.code, 4);
    assert.equal(r.stdout.toString(), 'passed\n');
    assert.equal(r.stderr.toString(), '');
    assert.ok(existsSync(join(d, 'pass-marker')));
    const c = counters(env.KBX_COUNTERS!);
    assert.deepEqual([c[SLOT.passDaemon], c[SLOT.fallback]], [1, 0]);
  });

  test('with KBX_EVENTS, pass-through and trivial lines are recorded with their times, status and reason', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Pass, ['runs-date'])));
    const events = join(d, 'events');
    writeFileSync(events, '');
    const env = shimEnv(d, peer, { KBX_EVENTS: events });
    const before = Date.now() * 1000;
    const passed = await shim(['-c', 'echo passed; sleep 0.2; exit 4'], env, d);
    const trivial = await shim(['-c', 'echo hi'], env, d);
    const killed = await shim(['-c', 'kill -TERM $$'], env, d);
    await peer.close();
    assert.equal(passed.code, 4);
    assert.equal(passed.stdout.toString(), 'passed\n');
    assert.equal(trivial.stdout.toString(), 'hi\n');
    assert.equal(killed.signal, 'SIGTERM', 'the shim dies of the line\'s signal');
    const lines = parseShimEvents(readFileSync(events));
    assert.deepEqual(
      lines.map((l) => [l.kind, l.exit, l.command, l.reason, l.cwd]),
      [
        ['pass', 4, 'echo passed; sleep 0.2; exit 4', 'runs-date', d],
        ['trivial', 0, 'echo hi', undefined, d],
        ['pass', 128 + 15, 'kill -TERM $$', 'runs-date', d],
      ],
    );
    assert.ok(lines[0]!.startUs >= before - 1000 && lines[0]!.endUs - lines[0]!.startUs >= 150_000, JSON.stringify(lines[0]));
    // The progress display's view of the line most recently passed through.
    const c = readFileSync(env.KBX_COUNTERS!);
    assert.equal(c.toString('utf8', 136, c.indexOf(0, 136)), 'kill -TERM $$');
    assert.equal(Number(c.readBigUInt64LE(128)) % 2, 0);
  });

  test('with KBX_EVENTS, SIGTERM sent to the shim reaches the pass-through line it waits for', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Pass, ['runs-date'])));
    const events = join(d, 'events');
    writeFileSync(events, '');
    const env = shimEnv(d, peer, { KBX_EVENTS: events });
    const r = await termWhenReady(env, d);
    await peer.close();
    assert.equal(r.code, 9);
    assert.equal(r.stdout.toString(), 'ready\ngot-term\n');
    assert.deepEqual(parseShimEvents(readFileSync(events)).map((l) => [l.kind, l.exit]), [['pass', 9]]);
  });

  test('without KBX_EVENTS, SIGTERM sent to the shim also reaches the pass-through line it waits for', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Pass, ['runs-date'])));
    const env = shimEnv(d, peer);
    const r = await termWhenReady(env, d);
    await peer.close();
    assert.equal(r.code, 9);
    assert.equal(r.stdout.toString(), 'ready\ngot-term\n');
    assert.equal(counters(env.KBX_COUNTERS!)[SLOT.unseenEnded], 1);
  });

  test('every line the daemon does not run counts its end in slot 8 before the shim exits; trivial lines, hits and misses do not', async () => {
    const d = scratch();
    for (const sub of ['pass', 'hit', 'build']) mkdirSync(join(d, sub));
    const pass = await startPeer(join(d, 'pass'), answer(encodeFrame(MsgType.Pass, ['runs-date'])));
    const hit = await startPeer(join(d, 'hit'), answer(encodeFrame(MsgType.Hit, ['0', '', ''])));
    const ctr = newCounters(join(d, 'build')); // shimEnv makes a fresh one in d for each call
    const env = (peer: Peer, extra: Record<string, string> = {}) => shimEnv(d, peer, { KBX_COUNTERS: ctr, ...extra });
    const ended = () => counters(ctr)[SLOT.unseenEnded];
    // Each line reads the count as it runs: the shim adds to it only after the line's end.
    const seen = async (args: string[], e: Record<string, string>) => Number((await shim(args, e, d)).stdout.toString().trim());
    const show = `od -An -tu8 -j${SLOT.unseenEnded * 8} -N8 ${ctr}`;
    assert.equal(await seen(['-c', `${show} # make`], env(pass)), 0, 'recursive make');
    assert.equal(ended(), 1);
    assert.equal(await seen(['-c', show], env(pass)), 1, 'PASS');
    assert.equal(await seen(['-c', show], env(pass, { KBX_PASSTHROUGH: '1' })), 2, 'KBX_PASSTHROUGH');
    assert.equal(await seen(['-ec', show], env(pass)), 3, 'shell flags');
    assert.equal(await seen(['-c', show], env(pass, { KBX_SOCKET: join(d, 'no-daemon') })), 4, 'fallback');
    assert.equal(ended(), 5);
    await shim(['-c', 'echo trivial'], env(pass), d);
    await shim(['-c', 'cc -c x.c'], env(hit), d);
    await pass.close();
    await hit.close();
    assert.equal(ended(), 5, 'trivial lines and hits change no file the daemon does not know of');
    assert.equal(counters(ctr)[SLOT.unseenUnknown], 0);
  });

  test('lines that run make never reach the daemon', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Pass, ['x'])));
    const env = shimEnv(d, peer, { KBX_MAKE: 'gmake' });
    for (const line of ['gmake -v', 'cd . && /usr/local/bin/gmake', 'true;gmake', '(gmake)', 'x | gmake']) await shim(['-c', line], env, d);
    for (const line of ['echo gmakefile >/dev/null', 'echo cgmake >/dev/null', 'echo make >/dev/null']) await shim(['-c', line], env, d);
    await peer.close();
    assert.deepEqual(
      peer.lookups.map((f) => f.fields[3]!.toString()),
      ['echo gmakefile >/dev/null', 'echo cgmake >/dev/null', 'echo make >/dev/null'],
    );
    assert.equal(counters(env.KBX_COUNTERS!)[SLOT.recursive], 5);
  });

  test('MISS runs the line under the tracer and reports it in DONE', async () => {
    const d = scratch();
    const tracer = preloadLib(d, 'tracer');
    const other = preloadLib(d, 'other');
    const traceLog = join(d, 'trace.log');
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Miss, ['action-9', traceLog])));
    const env = shimEnv(d, peer, { KBX_TRACER: tracer, LD_PRELOAD: other });
    const line = 'echo "preload=$LD_PRELOAD"; echo "log=$KBX_TRACE_LOG" >&2; head -c 200000 /dev/zero; exit 3';
    const r = await shim(['-c', line], env, d);
    await peer.close();
    const wantOut = Buffer.concat([Buffer.from(`preload=${tracer} ${other}\n`), Buffer.alloc(200000)]);
    assert.equal(r.code, 3);
    assert.deepEqual(r.stdout, wantOut);
    assert.equal(r.stderr.toString(), `log=${traceLog}\n`);
    // Both libraries were loaded into each of the line's processes (sh, head).
    assert.deepEqual(readFileSync(traceLog, 'utf8').split('\n').sort(), ['', 'other', 'other', 'tracer', 'tracer']);
    assert.equal(peer.dones.length, 1);
    const [id, status, out, err, elapsed] = peer.dones[0]!.fields;
    assert.equal(peer.dones[0]!.fields.length, 5);
    assert.equal(id!.toString(), 'action-9');
    assert.equal(status!.toString(), '3');
    assert.deepEqual(out, wantOut);
    assert.equal(err!.toString(), `log=${traceLog}\n`);
    assert.match(elapsed!.toString(), /^[0-9]+$/);
    assert.equal(counters(env.KBX_COUNTERS!)[SLOT.miss], 1);
  });

  test('a line killed by a signal is reported as sig:N and the shim dies of the same signal', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Miss, ['a1', join(d, 'trace.log')])));
    const env = shimEnv(d, peer, { KBX_TRACER: preloadLib(d, 'tracer') });
    const r = await shim(['-c', 'echo before; kill -TERM $$; echo after'], env, d);
    await peer.close();
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(r.stdout.toString(), 'before\n');
    assert.deepEqual(peer.dones[0]!.fields.slice(0, 3).map(String), ['a1', 'sig:15', 'before\n']);
  });

  test('SIGTERM sent to the shim reaches the line', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Miss, ['a2', join(d, 'trace.log')])));
    const env = shimEnv(d, peer, { KBX_TRACER: preloadLib(d, 'tracer') });
    const r = await termWhenReady(env, d);
    await peer.close();
    assert.equal(r.code, 9);
    assert.equal(r.stdout.toString(), 'ready\ngot-term\n');
    assert.equal(peer.dones[0]!.fields[1]!.toString(), '9');
  });

  test('a signal ignored by make stays ignored for the line (nohup)', async () => {
    const d = scratch();
    const peer = await startPeer(d, answer(encodeFrame(MsgType.Miss, ['a4', join(d, 'trace.log')])));
    const env = shimEnv(d, peer, { KBX_TRACER: preloadLib(d, 'tracer'), SHIM: shimPath });
    // dash's `trap '' HUP` makes SIGHUP ignored across exec, as nohup does.
    const r = await run('/bin/sh', ['-c', `trap '' HUP; exec "$SHIM" -c 'kill -HUP $$; echo survived'`], { env, cwd: d });
    await peer.close();
    assert.equal(r.code, 0, r.stderr.toString());
    assert.equal(r.stdout.toString(), 'survived\n');
    assert.equal(peer.dones.length, 1, 'the line went through MISS');
  });

  test('a daemon that never ACKs a DONE does not change the exit status', async () => {
    const d = scratch();
    const peer = await startPeer(d, (f, conn) => {
      if (f.type === MsgType.Lookup) conn.write(encodeFrame(MsgType.Miss, ['a3', join(d, 'trace.log')]));
      else conn.destroy();
    });
    const env = shimEnv(d, peer, { KBX_TRACER: preloadLib(d, 'tracer'), KBX_TIMEOUT_MS: '300' });
    const r = await shim(['-c', 'echo once >> ran; exit 5'], env, d);
    await peer.close();
    assert.equal(r.code, 5);
    assert.equal(r.stderr.toString(), '');
    assert.equal(readFileSync(join(d, 'ran'), 'utf8'), 'once\n', 'the line ran exactly once');
  });

  test('a daemon that never answers: the line runs after KBX_TIMEOUT_MS', async () => {
    const d = scratch();
    const peer = await startPeer(d, () => {});
    const env = shimEnv(d, peer, { KBX_TIMEOUT_MS: '300' });
    const t0 = Date.now();
    const r = await shim(['-c', 'echo ran; touch timeout-marker'], env, d);
    await peer.close();
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.toString(), 'ran\n');
    assert.match(r.stderr.toString(), /^kbx: the daemon did not answer within 300 ms; running recipe lines without the cache/);
    assert.ok(existsSync(join(d, 'timeout-marker')));
    assert.equal(counters(env.KBX_COUNTERS!)[SLOT.fallback], 1);
  });

  const garbage: Array<[string, Buffer, RegExp]> = [
    ['bytes that are no frame', Buffer.from('hello, this is not a frame'), /malformed reply/],
    ['an unknown message type', encodeFrame(99, ['x']), /unknown message type 99/],
    ['a HIT with a bad status', encodeFrame(MsgType.Hit, ['0x1', 'out', 'err']), /malformed HIT/],
    ['a HIT with too few fields', encodeFrame(MsgType.Hit, ['0']), /malformed HIT/],
    ['a MISS without a trace log', encodeFrame(MsgType.Miss, ['id']), /malformed MISS/],
    ['a field overrunning its frame', Buffer.from([9, 0, 0, 0, 2, 200, 0, 0, 0, 65, 65, 65, 65]), /malformed reply/],
    ['a truncated frame, then close', encodeFrame(MsgType.Hit, ['0', 'out', 'err']).subarray(0, 12), /closed the connection/],
    ['an empty frame', Buffer.from([0, 0, 0, 0]), /malformed reply/],
  ];
  for (const [what, bytes, why] of garbage) {
    test(`a daemon that sends ${what}: the line runs without the cache`, async () => {
      const d = scratch();
      const peer = await startPeer(d, (_f, conn) => conn.end(bytes));
      const env = shimEnv(d, peer);
      const r = await shim(['-c', 'echo ran; touch garbage-marker'], env, d);
      await peer.close();
      assert.equal(r.code, 0);
      assert.equal(r.stdout.toString(), 'ran\n');
      assert.match(r.stderr.toString(), why);
      assert.ok(existsSync(join(d, 'garbage-marker')));
      const c = counters(env.KBX_COUNTERS!);
      assert.deepEqual([c[SLOT.fallback], c[SLOT.hit], c[SLOT.miss]], [1, 0, 0]);
    });
  }
});
