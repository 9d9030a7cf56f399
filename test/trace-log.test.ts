// Golden bytes for the trace log (docs/PROTOCOL.md section 3): literal log
// text through parseTraceLog (src/observe/trace-log.ts) and classifyAccesses
// (src/observe/accesses.ts), with the exact result expected. The tracer's side
// of the same format is tested against real programs in tracer.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyAccesses, type Accesses } from '../src/observe/accesses.js';
import { parseTraceLog, type PreStat } from '../src/observe/trace-log.js';

const opts = { ignorePrefixes: ['/cache'], uncacheablePrograms: ['date'] };

function pre(ino: bigint, size: bigint, mtimeNs: bigint): PreStat {
  return { ino, size, mtimeNs };
}

const ZERO = pre(0n, 0n, 0n);

/** Parses and classifies; the log must parse cleanly. */
function classify(log: string): Accesses {
  const { events, bad } = parseTraceLog(log);
  assert.deepEqual(bad, [], 'the log parses');
  return classifyAccesses(events, bad, opts);
}

function uncacheable(reason: string): Accesses {
  return { inputs: [], written: [], deleted: [], gone: [], execed: [], execProbed: [], uncacheable: reason };
}

test('every op in its exact form', () => {
  const log =
    'r /b/a.c\n' +
    'w 0 0 0 /b/a.o\n' +
    'w 12 345 1700000000123456789 /b/old.o\n' +
    'm 7 5 -1000000000 /b/ancient\n' +
    's /usr/include\n' +
    'a /b/missing.h\n' +
    'x /usr/lib/x86_64-linux-gnu/libc.so.6\n' +
    'e /usr/bin/as\n' +
    'd 18446744073709551615 0 1 /b/tmp\n' +
    'n 3 4 5 /b/t\n' +
    'N 0 0 0 /b/u\n' +
    'k /b/dir\n' +
    'l /b/link\n' +
    'i\n' +
    '! path contains a newline (event r)\n' +
    'q host python3.11\n' +
    'q net curl\n';
  assert.deepEqual(parseTraceLog(log), {
    events: [
      { op: 'r', path: '/b/a.c' },
      { op: 'w', path: '/b/a.o', pre: ZERO },
      { op: 'w', path: '/b/old.o', pre: pre(12n, 345n, 1700000000123456789n) },
      { op: 'm', path: '/b/ancient', pre: pre(7n, 5n, -1000000000n) },
      { op: 's', path: '/usr/include' },
      { op: 'a', path: '/b/missing.h' },
      { op: 'x', path: '/usr/lib/x86_64-linux-gnu/libc.so.6' },
      { op: 'e', path: '/usr/bin/as' },
      { op: 'd', path: '/b/tmp', pre: pre(18446744073709551615n, 0n, 1n) },
      { op: 'n', path: '/b/t', pre: pre(3n, 4n, 5n) },
      { op: 'N', path: '/b/u', pre: ZERO },
      { op: 'k', path: '/b/dir' },
      { op: 'l', path: '/b/link' },
      { op: 'i', path: '' },
      { op: '!', path: 'path contains a newline (event r)' },
      { op: 'q', path: 'host python3.11' },
      { op: 'q', path: 'net curl' },
    ],
    bad: [],
  });
  assert.deepEqual(parseTraceLog(''), { events: [], bad: [] });
});

test('hostile paths are kept byte for byte and never taken for stat numbers', () => {
  const log =
    'r /a b/ c \n' + // spaces, a trailing one too
    'w 1 2 3 /1 2 3 /x\n' + // digits after the stat belong to the path
    'r /1 2 3 /y\n' + // looks like a stat but r has none: a path
    'd 1 2 3 /b/\r\n' + // carriage return
    'r /b/../../etc/passwd\n' + // no normalisation
    'r /b/\uFFFD/ünïcödé\n'; // valid UTF-8, U+FFFD included
  assert.deepEqual(parseTraceLog(Buffer.from(log, 'utf8')), {
    events: [
      { op: 'r', path: '/a b/ c ' },
      { op: 'w', path: '/1 2 3 /x', pre: pre(1n, 2n, 3n) },
      { op: 'r', path: '/1 2 3 /y' },
      { op: 'd', path: '/b/\r', pre: pre(1n, 2n, 3n) },
      { op: 'r', path: '/b/../../etc/passwd' },
      { op: 'r', path: '/b/\uFFFD/ünïcödé' },
    ],
    bad: [],
  });
});

test('malformed lines are bad, and any bad line makes the recipe line uncacheable', () => {
  const lines = [
    'z /b/x', // unknown op
    'w /b/x', // missing stat
    'N /b/x',
    'd /b/x',
    'm 1 2 /b/x', // two numbers
    'n 1 2 3 b/x', // relative path
    'r 1 2 3', // no path at all
    'r b/x', // relative path
    'r', // no path
    'r/b/x', // no space
    'w  1 2 3 /b/x', // two spaces
    'm -1 2 3 /b/x', // negative ino
    'd 1 -2 3 /b/x', // negative size
    'w 0x1 2 3 /b/x', // not decimal
    '', // empty line
    'i ', // i takes nothing
    'i /b/x',
    'r /b/nul\0byte',
    '!', // ! needs a space
  ];
  const parsed = parseTraceLog(lines.map((l) => l + '\n').join('') + 'r /b/ok\n');
  assert.deepEqual(parsed, { events: [{ op: 'r', path: '/b/ok' }], bad: lines });
  assert.deepEqual(classifyAccesses(parsed.events, parsed.bad, opts), uncacheable('trace-corrupt'));
});

test('a log cut short: the unterminated last line is bad', () => {
  const parsed = parseTraceLog('r /b/a.c\nw 0 0 0 /b/a');
  assert.deepEqual(parsed, { events: [{ op: 'r', path: '/b/a.c' }], bad: ['w 0 0 0 /b/a'] });
  assert.deepEqual(classifyAccesses(parsed.events, parsed.bad, opts), uncacheable('trace-corrupt'));
  // Cut inside a multi-byte character.
  const cut = Buffer.from('r /b/a\nr /b/é\n', 'utf8').subarray(0, -2);
  assert.deepEqual(parseTraceLog(cut), { events: [{ op: 'r', path: '/b/a' }], bad: ['r /b/\uFFFD'] });
});

test('bytes that are not UTF-8 make a line bad: decoding would merge different paths', () => {
  const log = Buffer.concat([
    Buffer.from('r /b/ok\nr /b/'),
    Buffer.from([0xff]),
    Buffer.from('\nr /b/\uFFFD\n', 'utf8'),
  ]);
  assert.deepEqual(parseTraceLog(log), {
    events: [{ op: 'r', path: '/b/ok' }, { op: 'r', path: '/b/\uFFFD' }],
    bad: ['r /b/\uFFFD'],
  });
});

test('objcopy in place (rename): foo.o is an input known by its stat before the rename, and an output', () => {
  const foo = pre(1234n, 832n, 1700000000000000001n);
  const log =
    'x /usr/bin/objcopy\n' +
    'r /b/foo.o\n' +
    'w 0 0 0 /b/stT17HF5\n' +
    'n 99 904 1700000000500000000 /b/stT17HF5\n' +
    'N 1234 832 1700000000000000001 /b/foo.o\n';
  assert.deepEqual(classify(log), {
    inputs: [
      { kind: 'c', path: '/b/foo.o', pre: foo },
      { kind: 'c', path: '/usr/bin/objcopy' },
    ],
    written: ['/b/foo.o', '/b/stT17HF5'],
    deleted: ['/b/stT17HF5'],
    gone: ['/b/stT17HF5'],
    execed: [],
    execProbed: [],
  });
});

test('objcopy in place (copy back, binutils >= 2.36): the truncating open carries the stat', () => {
  const log =
    'r /b/foo.o\n' +
    'w 0 0 0 /b/stT17HF5\n' +
    'w 1234 832 1700000000000000001 /b/foo.o\n' +
    'd 99 904 1700000000500000000 /b/stT17HF5\n';
  assert.deepEqual(classify(log), {
    inputs: [{ kind: 'c', path: '/b/foo.o', pre: pre(1234n, 832n, 1700000000000000001n) }],
    written: ['/b/foo.o', '/b/stT17HF5'],
    deleted: ['/b/stT17HF5'],
    gone: ['/b/stT17HF5'],
    execed: [],
    execProbed: [],
  });
});

test('sed -i: the mkstemp temporary is written, renamed over f; f is an input with its old stat', () => {
  const log =
    'r /b/f\n' +
    'w 0 0 0 /b/./sedtVc1XU\n' +
    'n 5 4 6 /b/./sedtVc1XU\n' +
    'N 7 4 8 /b/f\n';
  assert.deepEqual(classify(log), {
    inputs: [{ kind: 'c', path: '/b/f', pre: pre(7n, 4n, 8n) }],
    written: ['/b/f', '/b/./sedtVc1XU'],
    deleted: ['/b/./sedtVc1XU'],
    gone: ['/b/./sedtVc1XU'],
    execed: [],
    execProbed: [],
  });
});

test('a stat on a first write or removal makes no input', () => {
  // `: > existing`, `mv new existing`, `rm existing`, `mktemp -d`.
  const log =
    'w 1 10 100 /b/existing\n' +
    'N 2 20 200 /b/replaced\n' +
    'd 3 30 300 /b/removed\n' +
    'w 0 0 0 /tmp/tmp.V5s8RAaTLq\n' +
    'k /tmp/tmp.3vtG3mZ02J\n';
  assert.deepEqual(classify(log), {
    inputs: [],
    written: ['/b/existing', '/b/replaced', '/tmp/tmp.V5s8RAaTLq', '/tmp/tmp.3vtG3mZ02J'],
    deleted: ['/b/removed'],
    gone: [],
    execed: [],
    execProbed: [],
  });
});

test('read then removed or truncated: an input with the stat before; probes keep existence only', () => {
  const log =
    'r /b/gone\n' +
    'd 3 30 300 /b/gone\n' +
    'r /b/trunc\n' +
    'w 4 40 400 /b/trunc\n' +
    'm 5 50 500 /b/appended\n' +
    'm 0 0 0 /b/new\n' +
    'a /b/checked\n' +
    'm 0 0 0 /b/checked\n' +
    's /b/probed\n' +
    'w 6 60 600 /b/probed\n' +
    'a /b/absent\n' +
    'w 0 0 0 /b/absent\n' +
    'r /b/twice\n' +
    'n 7 70 700 /b/twice\n' +
    'N 0 0 0 /b/moved\n' +
    'w 0 0 0 /b/twice\n' +
    'd 8 0 800 /b/twice\n';
  assert.deepEqual(classify(log), {
    inputs: [
      { kind: 'e', path: '/b/absent', startAbsent: true },
      { kind: 'c', path: '/b/appended', pre: pre(5n, 50n, 500n) },
      { kind: 'c', path: '/b/checked', pre: ZERO, startAbsent: true }, // looked before creating: absent only
      { kind: 'c', path: '/b/gone', pre: pre(3n, 30n, 300n) },
      { kind: 'c', path: '/b/new', pre: ZERO, createdEmpty: true }, // touch, >>: absent or empty
      { kind: 'e', path: '/b/probed' },
      { kind: 'c', path: '/b/trunc', pre: pre(4n, 40n, 400n) },
      { kind: 'c', path: '/b/twice', pre: pre(7n, 70n, 700n) }, // the first change decides
    ],
    written: ['/b/trunc', '/b/appended', '/b/new', '/b/checked', '/b/probed', '/b/absent', '/b/twice', '/b/moved'],
    deleted: ['/b/gone', '/b/twice'],
    gone: ['/b/twice'],
    execed: [],
    execProbed: [],
  });
});

test('stdin, untraceable events, terminals and uncacheable programs', () => {
  assert.deepEqual(classify('r /b/a\ni\n'), uncacheable('reads-stdin'));
  assert.deepEqual(classify('! path too long (event w)\n'), uncacheable('untraceable: path too long (event w)'));
  assert.deepEqual(classify('w 0 0 0 /dev/tty\n'), uncacheable('uses-terminal'));
  assert.deepEqual(classify('x /usr/bin/date\n'), uncacheable('runs-date'));
  assert.deepEqual(classify('r /proc/cpuinfo\n'), uncacheable('reads-/proc/cpuinfo'));
  assert.deepEqual(classify('w 0 0 0 /dev/null\nr /proc/self/maps\nw 0 0 0 /cache/x\ne /usr/bin/cc\n'), {
    inputs: [],
    written: [],
    deleted: [],
    gone: [],
    execed: ['/usr/bin/cc'],
    execProbed: [],
  });
});

test('a line that ran make is not cached: make, gmake, a versioned make or the build\'s own make by its file name', () => {
  for (const prog of ['/usr/bin/make', '/usr/local/bin/gmake', '/opt/make-4.4/bin/make-4.4', '/usr/bin/gmake-4.3']) {
    assert.deepEqual(classify(`x /bin/dash\nx ${prog}\nr /b/Makefile\n`), uncacheable('runs-make'), prog);
  }
  const { events } = parseTraceLog('x /bin/dash\nx /opt/bin/mk\n');
  assert.deepEqual(classifyAccesses(events, [], { ...opts, makeName: 'mk' }), uncacheable('runs-make'));
  // Names that only contain make, and make's files read as data, are not make.
  for (const log of ['x /usr/bin/cmake\n', 'x /usr/bin/makeinfo\n', 'x /usr/bin/automake\n', 'r /usr/bin/make\n']) {
    assert.equal(classify(log).uncacheable, undefined, log);
  }
});

test('reading /dev/urandom makes a line uncacheable; writing /dev/null does not', () => {
  const opts = { ignorePrefixes: [], uncacheablePrograms: [] };
  const rand = parseTraceLog('x /usr/bin/od\nr /dev/urandom\nw 0 0 0 /b/seed.h\n');
  assert.equal(classifyAccesses(rand.events, rand.bad, opts).uncacheable, 'reads-/dev/urandom');
  const nul = parseTraceLog('x /usr/bin/gcc\nw 0 0 0 /dev/null\na /dev/null.gch\n');
  const acc = classifyAccesses(nul.events, nul.bad, opts);
  assert.equal(acc.uncacheable, undefined);
  assert.deepEqual(acc.inputs.map((i) => [i.kind, i.path]), [['e', '/dev/null.gch'], ['c', '/usr/bin/gcc']]);
});

// A probe of a file the line then replaces whole (accesses.ts, replacers.ts):
// keyed "absent or a file" only when every program of the line replaces its
// output blindly and the shell text tests no file itself.
const GCC_PROGRAMS =
  'x /usr/bin/dash\nx /lib/x86_64-linux-gnu/libc.so.6\ne /usr/bin/gcc\nx /usr/bin/x86_64-linux-gnu-gcc-12\n' +
  'e /usr/lib/gcc/x86_64-linux-gnu/12/cc1\nx /usr/lib/gcc/x86_64-linux-gnu/12/cc1\ne /usr/bin/as\nx /usr/bin/x86_64-linux-gnu-as\n';
const GCC_ABSENT = 'r /b/a.c\na /b/a.o\na /b/a.o\nw 0 0 0 /b/a.o\n';
const GCC_PRESENT = 'r /b/a.c\ns /b/a.o\ns /b/a.o\nd 12 1096 1700000000000000000 /b/a.o\nw 0 0 0 /b/a.o\n';

function probeOf(log: string, command: string, path = '/b/a.o') {
  const { events, bad } = parseTraceLog(log);
  assert.deepEqual(bad, []);
  const acc = classifyAccesses(events, bad, { ...opts, command });
  assert.equal(acc.uncacheable, undefined);
  return acc.inputs.find((i) => i.path === path);
}

test('gcc -c -o: the output probe, absent or present, is keyed as replaced', () => {
  const cmd = 'set -e; gcc -Iinclude -c -o a.o a.c; rm -f .a.o.d';
  assert.deepEqual(probeOf(GCC_PROGRAMS + GCC_ABSENT, cmd), { kind: 'e', path: '/b/a.o', startAbsent: true, replaced: true });
  assert.deepEqual(probeOf(GCC_PROGRAMS + GCC_PRESENT, cmd), { kind: 'e', path: '/b/a.o', replaced: true });
  // A rename onto the output replaces it whole too; the ld chmod after the write changes nothing.
  const renamed = 'x /usr/bin/x86_64-linux-gnu-objcopy\ns /b/a.o\nw 0 0 0 /b/t\nn 5 6 7 /b/t\nN 12 1096 1 /b/a.o\nm 8 9 10 /b/a.o\n';
  assert.deepEqual(probeOf(renamed, 'objcopy x a.o'), { kind: 'e', path: '/b/a.o', replaced: true });
  // Without the command text (an older caller) nothing changes.
  const { events, bad } = parseTraceLog(GCC_PROGRAMS + GCC_PRESENT);
  assert.deepEqual(classifyAccesses(events, bad, opts).inputs.find((i) => i.path === '/b/a.o'), { kind: 'e', path: '/b/a.o' });
});

test('a probe stays what it saw when the write was not a whole replacement or the file was read', () => {
  const cmd = 'gcc -c -o a.o a.c';
  const keep = (log: string, path = '/b/a.o') => assert.equal(probeOf(GCC_PROGRAMS + log, cmd, path)?.replaced, undefined, log);
  keep('s /b/a.o\nw 12 1096 1 /b/a.o\n'); // truncated in place: mode, links and symlinks of the old file decide
  keep('s /b/a.o\nr /b/a.o\nd 12 1096 1 /b/a.o\nw 0 0 0 /b/a.o\n'); // its content was read: a content input
  keep('a /b/a.o\nw 0 0 0 /b/a.o\nd 13 5 2 /b/a.o\n'); // removed again: a temporary, not an output
  keep('a /b/d\nk /b/d\n', '/b/d'); // a directory (mkdir without -p fails on one that exists)
  keep('a /b/l\nl /b/l\n', '/b/l'); // a symlink (ln -s fails on one that exists)
  keep('a /b/a.o\n'); // only probed
  assert.deepEqual(probeOf(GCC_PROGRAMS + 's /b/a.o\nm 12 1096 1 /b/a.o\n', cmd), { kind: 'c', path: '/b/a.o', pre: pre(12n, 1096n, 1n) });
});

test('conditional lines keep the probe: shell tests, other programs, a second shell', () => {
  const keep = (programs: string, cmd: string) => assert.equal(probeOf(programs + GCC_ABSENT, cmd)?.replaced, undefined, cmd);
  // The shell's own test: gcc alone would be blind, the line is not.
  keep(GCC_PROGRAMS, '[ -e a.o ] || gcc -c -o a.o a.c');
  keep(GCC_PROGRAMS, 'test -e a.o || gcc -c -o a.o a.c');
  keep(GCC_PROGRAMS, "te''st -e a.o || gcc -c -o a.o a.c");
  keep(GCC_PROGRAMS, 'if [[ ! -f a.o ]]; then gcc -c -o a.o a.c; fi');
  keep(GCC_PROGRAMS, 'T=test; $T -e a.o || gcc -c -o a.o a.c');
  keep(GCC_PROGRAMS, 'eval "gcc -c -o a.o a.c"');
  keep(GCC_PROGRAMS, 'set -C; gcc -c -o a.o a.c');
  const rm = 'e /usr/bin/rm\nx /usr/bin/rm\n';
  keep(GCC_PROGRAMS + rm, 'rm a.o; gcc -c -o a.o a.c'); // rm without -f complains when a.o is absent
  keep(GCC_PROGRAMS + rm, '/bin/rm -v a.o; gcc -c -o a.o a.c');
  keep(GCC_PROGRAMS + 'e /usr/bin/mkdir\nx /usr/bin/mkdir\n', 'mkdir o; gcc -c -o a.o a.c'); // fails when o exists
  assert.equal(probeOf(GCC_PROGRAMS + rm + GCC_ABSENT, 'rm -rf a.o; mkdir -p o && gcc -c -o a.o a.c')?.replaced, true);
  // A directory named rm in the text is an argument (Linux's arch/x86/realmode/rm); an rm run from elsewhere is no rm.
  assert.equal(probeOf(GCC_PROGRAMS + GCC_ABSENT, 'gcc -I /src/arch/x86/realmode/rm -I ./rm -c -o a.o a.c')?.replaced, true);
  keep(GCC_PROGRAMS + 'e /b/rm\nx /b/rm\n', './rm -f a.o; gcc -c -o a.o a.c');
  // A program not known to replace its output blindly: cp (test -e out || cp src out, cp -n, ...).
  keep(GCC_PROGRAMS + 'e /usr/bin/cp\nx /usr/bin/cp\n', 'gcc -c -o a.o a.c && cp a.o b.o');
  keep(GCC_PROGRAMS + 'e /usr/bin/ar\nx /usr/bin/x86_64-linux-gnu-ar\n', 'gcc -c -o a.o a.c && ar rcs a.a a.o');
  // A script run by a second shell can test anything.
  keep(GCC_PROGRAMS + 'e /bin/sh\nx /usr/bin/dash\n', 'sh check.sh; gcc -c -o a.o a.c');
  keep(GCC_PROGRAMS.replace('/usr/bin/dash', '/usr/bin/bash'), 'gcc -c -o a.o a.c');
  // Any program started before the first change of a.o counts, even one that only reads.
  keep(GCC_PROGRAMS + 'e /b/fixdep\nx /b/fixdep\n', 'gcc -c -o a.o a.c; ./fixdep');
});

test('programs started after the output was replaced cannot have seen what was there', () => {
  // kbuild's compile line: objtool and fixdep run after gcc; the trap text never runs.
  const kbuild =
    "set -e;  trap 'rm -f a.o; trap - HUP; kill -s HUP $$' HUP; gcc -Wp,-MMD,./.a.o.d -c -o a.o a.c; " +
    "./tools/objtool/objtool --orc a.o; scripts/basic/fixdep ./.a.o.d a.o 'gcc -c -o a.o a.c' > ./.a.o.cmd; rm -f ./.a.o.d";
  const after =
    'e /k/tools/objtool/objtool\nx /k/tools/objtool/objtool\nx /lib/x86_64-linux-gnu/libelf.so.1\nr /b/a.o\nm 20 1096 5 /b/a.o\n' +
    'e /k/scripts/basic/fixdep\nx /k/scripts/basic/fixdep\nw 0 0 0 /b/.a.o.cmd\ne /usr/bin/rm\nx /usr/bin/rm\n';
  assert.deepEqual(probeOf(GCC_PROGRAMS + GCC_PRESENT + after, kbuild), { kind: 'e', path: '/b/a.o', replaced: true });
  // The same programs before the change: they may have looked.
  assert.equal(probeOf(GCC_PROGRAMS + after.replace('r /b/a.o\nm 20 1096 5 /b/a.o\n', '') + GCC_PRESENT, kbuild)?.replaced, undefined);
});

test('an X event (access X_OK, a PATH candidate not run) is an existence probe whose execute bits are asked for', () => {
  const acc = classify('X /src/tool.sh\nX /bin/gen\nr /bin/gen\n');
  assert.deepEqual(acc.execProbed, ['/src/tool.sh', '/bin/gen']);
  assert.deepEqual(acc.inputs, [
    { kind: 'c', path: '/bin/gen' },
    { kind: 'e', path: '/src/tool.sh' },
  ]);
});
