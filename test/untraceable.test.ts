// Lines whose processes the tracer could lose sight of, built by real make and
// gcc through kbx: a child given an empty environment, a 32-bit program, and
// writes through a symlink that leads out of the tree. Each must either be
// seen whole or not be stored; a warm build after `make clean` must give what
// plain make gives, and kbx must never write outside the tree.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { untraceableProgram } from '../src/observe/untraceable.js';
import { Kbx, assertSameTree, plainMake, summary, tempDir, writeTree } from './support/kbx.js';

/** A project in a fresh temporary directory (its real path: the tracer reports physical paths). */
function project(tag: string, files: Record<string, string>): string {
  const dir = join(realpathSync(tempDir(tag)), 'proj');
  writeTree(dir, files);
  return dir;
}

/** make's stderr without kbx's own summary and progress lines. */
function makeStderr(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !/^kbx[: ]/.test(l))
    .join('\n');
}

const spawnC = `#include <spawn.h>
#include <sys/wait.h>
int main(void)
{
    char *argv[] = {"sh", "-c", "cat src > out3", 0};
    char *envp[] = {0};
    pid_t pid;
    int st;
    if (posix_spawn(&pid, "/bin/sh", 0, 0, argv, envp)) return 1;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
`;

const envMakefile = `all: out1 out2 out3
out1: src
\tenv -i sh -c 'cat src > out1'
out2: src
\tenv -i /bin/sh -c 'cat src > out2'
out3: src spawn
\t./spawn
spawn: spawn.c
\tgcc -O2 -o spawn spawn.c
clean:
\trm -f out1 out2 out3
`;

describe('children that lose the tracer or cannot load it', () => {
  const kbx = new Kbx('untraceable');
  after(() => kbx.stop());

  test('a child given an emptied environment is still traced: its outputs come back after make clean', () => {
    const files = { Makefile: envMakefile, 'spawn.c': spawnC, src: 'the source\n' };
    const reference = project('env-ref', files);
    assert.equal(plainMake(reference).status, 0);
    const proj = project('env', files);
    const cold = kbx.make(proj);
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(summary(cold.stderr).stored, summary(cold.stderr).misses, cold.stderr);
    assert.equal(plainMake(proj, ['clean']).status, 0);
    const warm = kbx.make(proj);
    assert.equal(warm.status, 0, warm.stderr);
    assert.equal(summary(warm.stderr).hits, 3, warm.stderr);
    for (const f of ['out1', 'out2', 'out3']) {
      assert.ok(existsSync(join(proj, f)), `${f} restored:\n${warm.stderr}`);
      assert.equal(readFileSync(join(proj, f), 'utf8'), 'the source\n');
    }
    assertSameTree(proj, reference);
  });

  test('a 32-bit program: no ld.so complaint, the line is not stored, and a warm build equals plain make', () => {
    const files = {
      Makefile:
        'out32: prog32 src\n\t./prog32 src out32\n' +
        'prog32: prog32.c\n\tgcc -m32 -o prog32 prog32.c\n' +
        'clean:\n\trm -f out32\n',
      'prog32.c':
        '#include <stdio.h>\n' +
        'int main(int argc, char **argv)\n{\n' +
        '    char buf[256];\n    FILE *in = fopen(argv[1], "r"), *out = fopen(argv[2], "w");\n' +
        '    if (!in || !out || !fgets(buf, sizeof buf, in)) return 1;\n' +
        '    return fputs(buf, out) < 0 || fclose(out) != 0;\n}\n',
      src: '32 bits\n',
    };
    const reference = project('m32-ref', files);
    const plain = plainMake(reference);
    assert.equal(plain.status, 0, `gcc -m32 failed (apt-get install gcc-multilib): ${plain.stderr}`);
    const proj = project('m32', files);
    const cold = kbx.make(proj);
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(makeStderr(cold.stderr), makeStderr(plain.stderr), 'stderr as plain make gives it');
    assert.ok((kbx.stats()['uncacheable:untraceable'] ?? 0) >= 1, JSON.stringify(kbx.stats()));
    assert.equal(plainMake(proj, ['clean']).status, 0);
    const warm = kbx.make(proj);
    assert.equal(warm.status, 0, warm.stderr);
    assert.equal(makeStderr(warm.stderr), makeStderr(plain.stderr));
    assert.equal(summary(warm.stderr).hits, 0, warm.stderr);
    assert.equal(readFileSync(join(proj, 'out32'), 'utf8'), '32 bits\n');
    assertSameTree(proj, reference);
  });

  test('writes through a symlink out of the tree: learned uncacheable, and a warm build restores nothing there', () => {
    const outside = realpathSync(tempDir('outside'));
    const refOutside = realpathSync(tempDir('outside-ref'));
    const files = {
      Makefile:
        'all: out d/f\n' +
        'out:\n\tln -sf $(OUTSIDE)/victim out; echo hi > out\n' +
        'd/f:\n\tln -sfn $(OUTSIDE)/sub d; echo hi > d/f\n' +
        'clean:\n\trm -f out d\n',
    };
    for (const d of [outside, refOutside]) mkdirSync(join(d, 'sub'));
    const reference = project('link-ref', files);
    assert.equal(plainMake(reference, [], { OUTSIDE: refOutside }).status, 0);
    const proj = project('link', files);
    const cold = kbx.make(proj, [], { OUTSIDE: outside });
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(summary(cold.stderr).stored, 0, cold.stderr);
    assert.equal(kbx.stats()['uncacheable:writes-outside-tree'], 2, JSON.stringify(kbx.stats()));

    // What lies outside changes; a warm build must leave it to the lines, as plain make does.
    rmSync(join(outside, 'victim'));
    rmSync(join(outside, 'sub', 'f'));
    assert.equal(plainMake(proj, ['clean']).status, 0);
    const warm = kbx.make(proj, [], { OUTSIDE: outside });
    assert.equal(warm.status, 0, warm.stderr);
    assert.equal(summary(warm.stderr).hits, 0, warm.stderr);
    assert.equal(kbx.stats()['pass:writes-outside-tree'], 2, JSON.stringify(kbx.stats()));
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'hi\n');
    assert.equal(readFileSync(join(outside, 'sub', 'f'), 'utf8'), 'hi\n');
    assertSameTree(proj, reference);
    rmSync(outside, { recursive: true, force: true });
    rmSync(refOutside, { recursive: true, force: true });
  });
});

test("the daemon's second look at executed programs: class, machine, static, set-id, through #!", () => {
  const d = realpathSync(tempDir('programs'));
  writeFileSync(join(d, 'p.c'), 'int main(void) { return 0; }\n');
  execFileSync('cc', ['-o', join(d, 'dyn'), join(d, 'p.c')]);
  execFileSync('cc', ['-static', '-o', join(d, 'static'), join(d, 'p.c')]);
  execFileSync('cc', ['-m32', '-o', join(d, 'p32'), join(d, 'p.c')]); // apt-get install gcc-multilib
  copyFileSync(join(d, 'dyn'), join(d, 'setid'));
  chmodSync(join(d, 'setid'), 0o4755);
  writeFileSync(join(d, 'script32'), `#!${d}/p32 -x\n`);
  writeFileSync(join(d, 'script'), '#!/bin/sh\n');
  writeFileSync(join(d, 'text'), 'not a program\n');
  const why = (f: string) => untraceableProgram(join(d, f));
  assert.equal(why('dyn'), undefined);
  assert.equal(why('script'), undefined);
  assert.equal(why('text'), undefined);
  assert.equal(why('missing'), undefined);
  assert.equal(why('static'), 'static-binary');
  assert.equal(why('p32'), 'untraceable: 32-bit program');
  assert.equal(why('script32'), 'untraceable: 32-bit program');
  assert.equal(why('setid'), 'untraceable: set-id program');
  rmSync(d, { recursive: true, force: true });
});
