// Compiler wrappers in the key (src/fingerprint/wrappers.ts) and kbuild's
// saved commands (src/kernel/cmd-file.ts): pure, on strings and bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envDigest, keyedWithoutWrappers, weakFingerprint } from '../src/fingerprint/key.js';
import { stripWrappers, stripWrappersInMakeflags, simpleCommands } from '../src/fingerprint/wrappers.js';
import { restoredCmdFile, savedCommands, storedCmdFile } from '../src/kernel/cmd-file.js';

// Linux 6.1's compile line for init/main.o, shortened, with CC="<cc>".
const kbuildLine = (cc: string) =>
  `set -e;  echo '  CC      init/main.o'; trap 'rm -f init/main.o; trap - HUP; kill -s HUP $$' HUP; ${cc} -Wp,-MMD,init/.main.o.d -DKBUILD_MODNAME='"main"' -c -o init/main.o init/main.c; ` +
  `scripts/basic/fixdep init/.main.o.d init/main.o '${cc} -Wp,-MMD,init/.main.o.d -DKBUILD_MODNAME='\\''"main"'\\'' -c -o init/main.o init/main.c' > init/.main.o.cmd; rm -f init/.main.o.d`;
const strip = (t: string) => stripWrappers(t).text;

test('a wrapper word that starts a command leaves the key; one anywhere else stays', () => {
  assert.equal(strip('distcc gcc -c a.c'), 'gcc -c a.c');
  assert.equal(strip('ccache distcc gcc -c a.c && /usr/bin/icecc gcc -c b.c'), 'gcc -c a.c && gcc -c b.c');
  assert.equal(strip('if (sccache gcc -Werror -c -x c /dev/null -o "$TMP") >/dev/null 2>&1; then echo y; fi'), 'if (gcc -Werror -c -x c /dev/null -o "$TMP") >/dev/null 2>&1; then echo y; fi');
  assert.equal(strip('X=1 distcc gcc -c a.c'), 'X=1 gcc -c a.c');
  // What a line prints may name the wrapper: not the same line.
  for (const t of ['echo distcc gcc', 'echo "distcc gcc"', 'distcc -c a.c', 'distcc', 'printf %s "$CC"']) assert.equal(strip(t), t);
  assert.deepEqual(stripWrappers('ccache distcc gcc -c a.c').wrappers, ['ccache', 'distcc']);
  // icecream's remote compile records its own options in debug info: with -g it is not gcc's object.
  assert.equal(strip('icecc gcc -O2 -c a.c'), 'gcc -O2 -c a.c');
  assert.equal(strip('icecc gcc -g -c a.c; icecc gcc -c b.c'), 'icecc gcc -g -c a.c; gcc -c b.c');
  assert.equal(strip('icecc gcc -g0 -c a.c'), 'gcc -g0 -c a.c');
  assert.equal(strip('distcc gcc -g -c a.c'), 'gcc -g -c a.c');
  // Preprocessing and compiling to assembly are compiles too.
  assert.equal(strip('distcc gcc -E -P x.S -o x.lds'), 'gcc -E -P x.S -o x.lds');
  assert.equal(strip("ccache gcc -S -o 'x.s' x.c"), "gcc -S -o 'x.s' x.c");
});

test('a wrapper in front of anything but a compile stays: its output may differ', () => {
  // distcc runs `gcc --version` locally as x86_64-linux-gnu-gcc, which prints that
  // name: kbuild's CC_VERSION_TEXT, which Kconfig compares on every make.
  for (const t of [
    'LC_ALL=C distcc gcc --version 2>/dev/null | head -n 1',
    'distcc gcc -v',
    'ccache gcc -print-file-name=include',
    'distcc gcc -o prog a.o b.o',
  ])
    assert.equal(strip(t), t);
  // Each simple command on its own: a compile's wrapper goes, a version probe's stays.
  assert.equal(strip('distcc gcc -c a.c; distcc gcc --version'), 'gcc -c a.c; distcc gcc --version');
});

test("a line that runs no wrapped compile keys CC's wrapper words in its environment", () => {
  const probe = 'LC_ALL=C $(CC) --version 2>/dev/null | head -n 1';
  const key = (cc: string) => {
    const command = probe.replace('$(CC)', cc);
    const env = [`CC=${cc}`, `MAKEFLAGS=rR -- CC=${cc.replace(/ /g, '\\ ')}`];
    return weakFingerprint({ cwd: '/o', command, tty: '', envDigest: envDigest(env, [], undefined, keyedWithoutWrappers(command)) });
  };
  assert.notEqual(key('distcc gcc'), key('gcc'));
  // Nor does a line that runs none at all (`scripts/kconfig/conf`, which reads $CC).
  assert.notEqual(envDigest(['CC=distcc gcc'], []), envDigest(['CC=gcc'], []));
  assert.equal(keyedWithoutWrappers('scripts/kconfig/conf --syncconfig Kconfig'), false);
  // Debian's distcc names gcc x86_64-linux-gnu-gcc outside a compile unless told not to.
  const rewrite = (line: boolean) => envDigest(['CC=distcc gcc', 'DISTCC_NO_REWRITE_CROSS=1'], [], undefined, line);
  assert.notEqual(rewrite(false), envDigest(['CC=distcc gcc'], []));
  assert.equal(rewrite(true), envDigest(['CC=gcc'], [], undefined, true));
  assert.equal(envDigest(['CC=distcc gcc', 'DISTCC_HOSTS=10.0.0.1'], []), envDigest(['CC=distcc gcc'], []));
});

test("kbuild's compile line keys alike with CC=gcc, distcc gcc, icecc gcc, ccache gcc and sccache gcc", () => {
  const key = (cc: string) => {
    const env = [`CC=${cc}`, `MAKEFLAGS=rR -- CC=${cc.replace(/ /g, '\\ ')}`, 'DISTCC_HOSTS=10.0.0.1/8', 'CCACHE_DIR=/c'];
    return weakFingerprint({ cwd: '/o', command: kbuildLine(cc), tty: '', envDigest: envDigest(env, [], undefined, keyedWithoutWrappers(kbuildLine(cc))) });
  };
  const plain = weakFingerprint({ cwd: '/o', command: kbuildLine('gcc'), tty: '', envDigest: envDigest(['CC=gcc', 'MAKEFLAGS=rR -- CC=gcc'], []) });
  for (const cc of ['distcc gcc', 'icecc gcc', 'ccache gcc', 'sccache gcc', 'ccache distcc gcc']) assert.equal(key(cc), plain, cc);
  assert.notEqual(key('clang'), plain);
  // ccache's base_dir changes the object: it stays in the key.
  assert.notEqual(envDigest(['CC=gcc', 'CCACHE_BASEDIR=/src'], []), envDigest(['CC=gcc'], []));
  assert.equal(stripWrappersInMakeflags('rR -- CC=distcc\\ gcc X=a\\ b'), 'rR -- CC=gcc X=a\\ b');
});

test('a .cmd file is stored as CC=gcc writes it and restored with the command the current line saves', () => {
  const cmdFile = (cc: string) => Buffer.from(`cmd_init/main.o := ${cc} -Wp,-MMD,init/.main.o.d -DKBUILD_MODNAME='"main"' -c -o init/main.o init/main.c\n\nsource_init/main.o := init/main.c\n`);
  const path = '/o/init/.main.o.cmd';
  const saved = (cc: string) => savedCommands(simpleCommands(kbuildLine(cc)));
  const stored = storedCmdFile(path, cmdFile('distcc gcc'), saved('distcc gcc'), strip);
  assert.deepEqual(stored, cmdFile('gcc'));
  assert.equal(storedCmdFile(path, cmdFile('gcc'), saved('gcc'), strip), undefined);
  assert.equal(storedCmdFile('/o/init/main.c', cmdFile('distcc gcc'), saved('distcc gcc'), strip), undefined, 'only .cmd files');
  // A .cmd file the line writes in a shape kbx does not know (its key kept the wrapper): stored as written.
  assert.equal(storedCmdFile(path, cmdFile('distcc gcc'), saved('gcc'), strip), undefined);
  assert.equal(storedCmdFile(path, cmdFile('distcc gcc'), new Map(), strip), undefined);

  assert.deepEqual(restoredCmdFile(path, cmdFile('gcc'), saved('icecc gcc'), strip), cmdFile('icecc gcc'));
  assert.equal(restoredCmdFile(path, cmdFile('gcc'), saved('gcc'), strip), undefined);
  // A stored file whose command is not the line's, wrappers aside: not restored.
  assert.equal(restoredCmdFile(path, cmdFile('gcc -O2'), saved('distcc gcc'), strip), null);
  // printf's form (cmd_and_savecmd).
  const printf = savedCommands(simpleCommands(`distcc gcc -E -P x.S -o x.lds; printf '%s\\n' 'cmd_x.lds := distcc gcc -E -P x.S -o x.lds' > .x.lds.cmd`));
  assert.deepEqual(printf, new Map([['x.lds', 'distcc gcc -E -P x.S -o x.lds']]));
});
