// ccache inside a recipe line (CC="ccache gcc"), with real ccache: a ccache
// hit may decide from stats alone (its inode cache, compiler_check=mtime), so
// the trace shows kbx existence where the key needs content. The shim makes
// the traced run read content; these are the wrong objects that follows
// otherwise.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Kbx, plainMake, summary, tempDir, writeTree } from './support/kbx.js';

function requireCcache(): void {
  const r = spawnSync('ccache', ['--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, 'ccache is needed (Debian package ccache)');
}

// ccache keeps a file out of its inode cache until its ctime is a couple of
// seconds old; a ctime cannot be backdated.
function letFilesAge(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
}

/** A project compiled with $(CC), and its own ccache directory: inode cache on, compiler_check left at mtime. */
function setup(tag: string, files: Record<string, string>) {
  const root = tempDir(tag);
  const proj = join(root, 'proj');
  writeTree(proj, { Makefile: 'main.o: main.c h.h\n\t$(CC) -c main.c -o main.o\n', 'h.h': '#define H 1\n', ...files });
  const ccacheDir = join(root, 'ccache');
  writeTree(ccacheDir, { 'ccache.conf': 'inode_cache = true\n' });
  const env = { CCACHE_DIR: ccacheDir };
  const stats = () => {
    const r = spawnSync('ccache', ['--print-stats'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    return Number(/^direct_cache_hit\t(\d+)$/m.exec(r.stdout)?.[1] ?? NaN);
  };
  /**
   * Fills ccache with plain make, as the user's builds did. A second fill
   * with compiler_check=content holds what a kbx miss asks for, so that the
   * kbx build below is a ccache hit both with the shim's settings and
   * without them.
   */
  const fill = (cc: string) => {
    letFilesAge();
    const fills: Array<Record<string, string>> = [{}, { CCACHE_COMPILERCHECK: 'content' }];
    for (const more of fills) {
      rmSync(join(proj, 'main.o'), { force: true });
      assert.equal(plainMake(proj, [`CC=${cc}`], { ...env, ...more }).status, 0);
    }
    rmSync(join(proj, 'main.o'), { force: true });
  };
  return { proj, env, stats, fill };
}

/** main.o as plain make without ccache builds it from these files. */
function plainObject(files: Record<string, string>, cc: (dir: string) => string): Buffer {
  const ref = join(tempDir('ccache-ref'), 'proj');
  writeTree(ref, { Makefile: 'main.o: main.c h.h\n\t$(CC) -c main.c -o main.o\n', ...files });
  const r = plainMake(ref, [`CC=${cc(ref)}`]);
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(join(ref, 'main.o'));
}

describe('ccache inside a line', () => {
  const kbx = new Kbx('ccache-inside');
  after(() => kbx.stop());

  test('a ccache hit under kbx, then a header edited: the rebuild equals plain make without ccache', () => {
    requireCcache();
    const main = '#include "h.h"\nint v = H;\n';
    const { proj, env, stats, fill } = setup('ccache-header', { 'main.c': main });
    fill('ccache gcc');
    const hitsBefore = stats();
    let r = kbx.make(proj, ['CC=ccache gcc'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stderr).stored, 1, r.stderr);
    assert.equal(stats(), hitsBefore + 1, 'the kbx miss was a ccache hit');

    writeFileSync(join(proj, 'h.h'), '#define H 2\n'); // same size
    rmSync(join(proj, 'main.o'));
    r = kbx.make(proj, ['CC=ccache gcc'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stderr).misses, 1, r.stderr);
    const plain = plainObject({ 'main.c': main, 'h.h': '#define H 2\n' }, () => 'gcc');
    assert.ok(readFileSync(join(proj, 'main.o')).equals(plain), 'main.o differs from plain make without ccache');
  });

  test('a compiler wrapper rewritten with the same size and mtime: the rebuild uses the new one', () => {
    requireCcache();
    const main = 'int v = V;\n';
    const wrapper = (v: number) => `#!/bin/sh\nexec gcc -DV=${v} "$@"\n`;
    const { proj, env, stats, fill } = setup('ccache-compiler', { 'main.c': main, 'cc.sh': wrapper(1) });
    const cc = join(proj, 'cc.sh');
    spawnSync('chmod', ['+x', cc]);
    fill(`ccache ${cc}`);
    const hitsBefore = stats();
    let r = kbx.make(proj, [`CC=ccache ${cc}`], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stderr).stored, 1, r.stderr);
    assert.equal(stats(), hitsBefore + 1, 'the kbx miss was a ccache hit');

    const ref = join(proj, '..', 'cc.sh.old');
    assert.equal(spawnSync('cp', ['-p', cc, ref]).status, 0);
    writeFileSync(cc, wrapper(2));
    // Same size and, to the nanosecond, the same mtime: ccache's mtime check sees the old compiler.
    assert.equal(spawnSync('touch', ['-r', ref, cc]).status, 0);
    rmSync(join(proj, 'main.o'));
    r = kbx.make(proj, [`CC=ccache ${cc}`], env);
    assert.equal(r.status, 0, r.stderr);
    const plain = plainObject({ 'main.c': main, 'h.h': '#define H 1\n', 'cc.sh': wrapper(2) }, (dir) => `sh ${join(dir, 'cc.sh')}`);
    assert.ok(readFileSync(join(proj, 'main.o')).equals(plain), 'main.o is not the object of the rewritten compiler (V=2)');
  });
});
