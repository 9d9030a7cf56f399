// The shim does `cat FILE` (and `cat FILE 2> /dev/null`) of a small regular
// file itself, as it does literal echos: kbuild's `$(shell cat
// include/config/kernel.release 2> /dev/null)` runs for every line the top
// make runs, and each was a round trip to the daemon. Real make: the output
// is plain make's, and every case the shim does not do goes on as before.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, ok, plainMake, projectDir, summary } from './support/kbx.js';

const MAKEFILE = `V := $(shell cat ver.txt 2> /dev/null)
W := $(shell cat 'ver.txt')
all:
\t@echo "v=[$(V)] w=[$(W)]"
\tcat ver.txt
`;



describe('cat of a small file', () => {
  const kbx = new Kbx('shim-cat');
  after(() => kbx.stop());

  test('is done by the shim, with plain make output, and asks the daemon nothing', () => {
    const proj = projectDir('cat-done', { Makefile: MAKEFILE, 'ver.txt': '6.1.0\n' });
    const plain = ok(plainMake(proj));
    const r = ok(kbx.make(proj));
    assert.equal(r.stdout, plain.stdout);
    const s = summary(r.stderr);
    assert.equal(s.trivial, 3, r.stderr); // the three cats
    assert.equal(s.hits + s.misses, 1, r.stderr); // the echo with quotes
  });

  test('goes on as before when the file is absent, too big, or a directory, when PATH finds another cat, and with replay on', () => {
    const proj = projectDir('cat-not-done', {
      Makefile: `all:\n\t-cat absent.txt\n\tcat big.txt | wc -c\n\tcat big.txt\n\t-cat dir\n`,
      'big.txt': 'x'.repeat(65537),
    });
    mkdirSync(join(proj, 'dir'));
    const plain = plainMake(proj);
    const r = ok(kbx.make(proj));
    assert.equal(r.stdout, plain.stdout);
    assert.equal(summary(r.stderr).trivial, 0, r.stderr);

    const other = projectDir('cat-path', { Makefile: MAKEFILE, 'ver.txt': '6.1.0\n', 'bin/cat': '#!/bin/sh\necho "another cat"\n' });
    chmodSync(join(other, 'bin/cat'), 0o755);
    const path = { PATH: `${join(other, 'bin')}:${process.env.PATH}` };
    const otherPlain = ok(plainMake(other, [], path));
    assert.match(otherPlain.stdout, /another cat/);
    const o = ok(kbx.make(other, [], path));
    assert.equal(o.stdout, otherPlain.stdout);
    assert.equal(summary(o.stderr).trivial, 0, o.stderr);

    const replayed = projectDir('cat-replay', { Makefile: MAKEFILE, 'ver.txt': '6.1.0\n' });
    writeFileSync(join(replayed, 'ver.txt'), '6.1.0\n');
    const rr = ok(kbx.make(replayed, [], { KBX_REPLAY: 'true' }));
    assert.equal(summary(rr.stderr).trivial, 0, rr.stderr);
  });
});
