// What a line can learn from a stat alone is keyed as far as kbx keys it: a
// path's type, whether it is a symlink (`[ -L f ]`), and for a regular file
// whether it is empty (`[ -s f ]`, `test -s`). A check line that fails on a non-empty log, or a branch on an
// empty input, must not hit after the file filled. Sizes beyond that, times
// (`[ a -nt b ]`) and owners are not keyed (README, "What is and is not cached").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, ok, plainMake, projectDir, summary } from './support/kbx.js';

test('[ -s f ]: a file that was empty when the line was stored and is not now makes the line run, as plain make takes the other branch', () => {
  const kbx = new Kbx('stat-s');
  const dir = projectDir('stat-s', {
    Makefile: 'all:\n\tif [ -s in ]; then echo full > out; else echo empty > out; fi\n\ttest ! -s errors.log\n',
    in: '',
    'errors.log': '',
  });
  try {
    const first = ok(kbx.make(dir));
    assert.equal(summary(first.stderr).stored, 2, first.stderr);
    assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'empty\n');
    rmSync(join(dir, 'out'));
    ok(kbx.make(dir)); // both lines hit while nothing changed
    rmSync(join(dir, 'out'));
    writeFileSync(join(dir, 'in'), 'data\n');
    writeFileSync(join(dir, 'errors.log'), 'an error\n');
    const plain = plainMake(dir);
    assert.notEqual(plain.status, 0, 'the check line fails under plain make');
    const plainOut = readFileSync(join(dir, 'out'), 'utf8');
    assert.equal(plainOut, 'full\n');
    rmSync(join(dir, 'out'));
    // Keyed as `file` whatever the size, both lines hit: out said empty and the check passed.
    const r = kbx.make(dir);
    assert.equal(r.status, plain.status, r.stderr);
    assert.equal(readFileSync(join(dir, 'out'), 'utf8'), plainOut);
    assert.equal(summary(r.stderr).hits, 0, r.stderr);
  } finally {
    kbx.stop();
  }
});

test('[ -L f ]: a symlink replaced by a regular file makes the line run, as plain make takes the other branch', () => {
  const kbx = new Kbx('stat-L');
  const dir = projectDir('stat-L', { Makefile: 'all:\n\tif [ -L lnk ]; then echo link > out; else echo file > out; fi\n', target: 't\n' });
  try {
    symlinkSync('target', join(dir, 'lnk'));
    ok(kbx.make(dir));
    assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'link\n');
    kbx.stats();
    rmSync(join(dir, 'out'));
    rmSync(join(dir, 'lnk'));
    writeFileSync(join(dir, 'lnk'), 't\n');
    // Keyed by stat, which follows the link, both were `file`: a hit restored `link`.
    const r = ok(kbx.make(dir));
    assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'file\n');
    assert.equal(summary(r.stderr).hits, 0, r.stderr);
  } finally {
    kbx.stop();
  }
});
