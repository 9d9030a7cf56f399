// make treats its SHELL as a Bourne shell only by file name (job.c,
// is_bourne_compatible_shell): then it runs no process at all for a recipe
// line that is just `:` (kbuild's `@:` rules: ~1,200 in a tinyconfig no-op,
// each a shim start under another name), and with .ONESHELL it strips the
// `@`, `-` and `+` of every line of the recipe, not only the first. kbx's
// shim is installed as `sh` so that make does both as with /bin/sh.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Kbx, ok, plainMake, projectDir, summary } from './support/kbx.js';

describe('make sees the shim as a Bourne shell', () => {
  const kbx = new Kbx('make-shell');
  after(() => kbx.stop());

  test('a recipe line that is just `:` starts no shim', () => {
    const proj = projectDir('colon', {
      Makefile: 'all: a b c\na:\n\t@:\nb:\n\t:\nc: a b\n\t@:\n\t@echo done\n',
    });
    const plain = ok(plainMake(proj));
    const r = ok(kbx.make(proj));
    assert.equal(r.stdout, plain.stdout);
    const s = summary(r.stderr);
    // The echo alone reached the shim (a literal echo: trivial); the three `:` lines ran nowhere.
    assert.equal(s.lines, 1, r.stderr);
    assert.equal(s.trivial, 1, r.stderr);
  });

  test('.ONESHELL: every line of a recipe loses its @ as under /bin/sh', () => {
    const proj = projectDir('oneshell', {
      Makefile: '.ONESHELL:\nall:\n\t@echo one > out.txt\n\t@echo two >> out.txt\n\t@cat out.txt\n',
    });
    const plain = ok(plainMake(proj));
    const r = ok(kbx.make(proj));
    assert.equal(r.stdout, plain.stdout);
    assert.equal(r.stdout, 'one\ntwo\n');
  });
});
