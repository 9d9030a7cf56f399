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

// `[ -x f ]` asks access(X_OK); denied, the tracer used to log nothing, so the
// line was keyed as if it never looked, and a chmod +x changed nothing it was
// keyed on. Each test program asks in its own way: dash's builtin
// (faccessat), bash's (faccessat or eaccess) and coreutils' test (euidaccess).
for (const [name, asks] of [
  ['dash', 'if [ -x tool.sh ]; then echo runs > out.txt; else echo skipped > out.txt; fi'],
  ['bash', "bash -c 'if [ -x tool.sh ]; then echo runs; else echo skipped; fi' > out.txt"],
  ['coreutils test', 'if /usr/bin/test -x tool.sh; then echo runs > out.txt; else echo skipped > out.txt; fi'],
] as const) {
  test(`a line that asks whether a file is executable (${name}) is keyed on the answer`, () => {
    const kbx = new Kbx(`exec-probe-${name.replace(' ', '-')}`);
    const dir = projectDir(`exec-probe-${name.replace(' ', '-')}`, {
      Makefile: `out.txt:\n\t${asks}\n`,
      'tool.sh': '#!/bin/sh\n',
    });
    chmodSync(join(dir, 'tool.sh'), 0o644);
    const fresh = () => rmSync(join(dir, 'out.txt'), { force: true });
    try {
      const first = ok(kbx.make(dir));
      assert.equal(summary(first.stderr).stored, 1, first.stderr);
      assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'skipped\n');
      fresh();
      chmodSync(join(dir, 'tool.sh'), 0o755);
      // Keyed on nothing of tool.sh, this was a hit restoring "skipped".
      const now = ok(kbx.make(dir));
      assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'runs\n', now.stderr);
      assert.deepEqual([summary(now.stderr).hits, summary(now.stderr).misses], [0, 1], now.stderr);
      fresh();
      chmodSync(join(dir, 'tool.sh'), 0o644);
      const back = ok(kbx.make(dir));
      assert.deepEqual([summary(back.stderr).hits, summary(back.stderr).misses], [1, 0], back.stderr);
      assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'skipped\n');
    } finally {
      kbx.stop();
    }
  });
}

// execvp's PATH search passes over a file that is there but not executable:
// after chmod +x the same command runs that file instead.
test('a program found on PATH after a chmod +x of an earlier candidate: the line misses', () => {
  const kbx = new Kbx('exec-path-candidate');
  const dir = projectDir('exec-path-candidate', {
    Makefile: 'out.txt:\n\tPATH=$(CURDIR)/bin1:$(CURDIR)/bin2:$$PATH env greet > out.txt\n',
    'bin1/greet': '#!/bin/sh\necho first\n',
    'bin2/greet': '#!/bin/sh\necho second\n',
  });
  chmodSync(join(dir, 'bin1/greet'), 0o644);
  chmodSync(join(dir, 'bin2/greet'), 0o755);
  const fresh = () => rmSync(join(dir, 'out.txt'), { force: true });
  try {
    ok(kbx.make(dir));
    assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'second\n');
    fresh();
    chmodSync(join(dir, 'bin1/greet'), 0o755);
    const now = ok(kbx.make(dir));
    assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'first\n', now.stderr);
    assert.equal(summary(now.stderr).hits, 0, now.stderr);
  } finally {
    kbx.stop();
  }
});
