// A line that exits non-zero is stored only when its failure is keyed
// (line-cache.ts keyedFailure, PROTOCOL.md section 6, "Stored failures"): it
// changed no file, exited 1..125, and the tracer saw no failure a key cannot
// hold. kbuild's `$(shell cat include/config/kernel.release)`, run by the
// outer make in the source directory where the file never is, otherwise runs
// on every build. Real make, real kbx.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, ok, plainMake, projectDir, summary } from './support/kbx.js';



describe('a failing line', () => {
  const kbx = new Kbx('failures');
  after(() => kbx.stop());

  test('that read a file and found it absent hits on the next build, with its status and stderr; the file appearing is a miss', () => {
    const proj = projectDir('failure-absent', {
      Makefile: 'V := $(shell cat release.txt 2>/dev/null)\nS := $(.SHELLSTATUS)\nall:\n\t@echo "v=[$(V)] status $(S)"\n\t-cat release.txt\n',
    });
    const plain = plainMake(proj);
    const first = ok(kbx.make(proj));
    assert.equal(summary(first.stderr).stored, 3, first.stderr);
    const second = ok(kbx.make(proj));
    const s = summary(second.stderr);
    assert.equal(s.misses, 0, second.stderr);
    assert.equal(s.hits, 3, second.stderr);
    assert.match(plain.stdout, /v=\[\] status 1/);
    assert.equal(second.stdout, plain.stdout);
    assert.match(second.stderr, /cat: release.txt: No such file or directory/);
    assert.match(second.stderr, /Error 1 \(ignored\)/);

    writeFileSync(join(proj, 'release.txt'), '6.1.0\n');
    const third = ok(kbx.make(proj));
    assert.match(third.stdout, /v=\[6\.1\.0\] status 0/);
    assert.match(third.stdout, /^6\.1\.0$/m);
    assert.equal(summary(third.stderr).hits, 0, third.stderr);
  });

  test('is not stored when it wrote a file, exited 126 or more, saw a call fail other than ENOENT, or a child killed by a signal', () => {
    const lines = [
      "-echo partial > made.txt; exit 1", // wrote: a full disk fails like this
      '-exit 130', // a shell's report of a child killed by SIGINT
      '-cat loop', // ELOOP: not a keyed absence
      "-sh -c 'kill -9 $$$$'; exit 1", // the OOM killer
    ];
    const proj = projectDir('failure-unkeyed', { Makefile: `all:\n${lines.map((l) => `\t${l}\n`).join('')}` });
    symlinkSync('loop', join(proj, 'loop'));
    const first = ok(kbx.make(proj));
    assert.equal(summary(first.stderr).stored, 0, first.stderr);
    const second = ok(kbx.make(proj));
    const s = summary(second.stderr);
    assert.equal(s.hits, 0, second.stderr);
    assert.equal(s.misses, lines.length, second.stderr);
    assert.equal(second.stderr.match(/\(ignored\)/g)?.length, lines.length, second.stderr);
  });
});
