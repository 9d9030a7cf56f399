// A program's execute permission is part of what a line that runs it
// depends on (exec-inputs.ts): after `chmod -x` of a script the line
// executes, plain make fails that line, and kbx must not restore what the
// script made while it could run. Real make, a real script run by path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, ok, plainMake, projectDir, summary } from './support/kbx.js';

test('a script the line runs loses its execute bit: the line fails as under plain make; given it back, the line hits again', () => {
  const kbx = new Kbx('exec-bits');
  const dir = projectDir('exec-bits', {
    Makefile: 'out.txt:\n\t./gen.sh > out.txt\n',
    'gen.sh': '#!/bin/sh\necho generated\n',
  });
  chmodSync(join(dir, 'gen.sh'), 0o755);
  const fresh = () => rmSync(join(dir, 'out.txt'), { force: true });
  try {
    const first = ok(kbx.make(dir));
    assert.equal(summary(first.stderr).stored, 1, first.stderr);
    fresh();
    chmodSync(join(dir, 'gen.sh'), 0o644);
    const plain = plainMake(dir);
    assert.notEqual(plain.status, 0);
    fresh();
    // Keyed on the script's bytes alone, this was a hit and made out.txt.
    const denied = kbx.make(dir);
    assert.equal(denied.status, plain.status, denied.stderr);
    assert.match(denied.stderr, /Permission denied/);
    assert.equal(summary(denied.stderr).hits, 0, denied.stderr);
    fresh();
    chmodSync(join(dir, 'gen.sh'), 0o755);
    const back = ok(kbx.make(dir));
    assert.deepEqual([summary(back.stderr).hits, summary(back.stderr).misses], [1, 0], back.stderr);
    assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'generated\n');
  } finally {
    kbx.stop();
  }
});
