// Recipe lines make runs with `+` (kbuild's module final link and module BTF):
// make hands them its jobserver, yet most run no make. Real make with -j4, so
// that the jobserver is open for those lines: a `+` line that runs no make is
// looked up and cached like any line; one whose text runs make passes through
// as recursive make; one that runs make unseen (a script running $MAKE) runs
// traced with the jobserver still usable, and is never stored (runs-make).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBuild } from '../src/builds/archive.js';
import type { LineRecord } from '../src/builds/record.js';
import { Kbx, plainMake, snapshot, tempDir, writeTree } from './support/kbx.js';

// Each sub-make has several independent targets, so with a usable jobserver
// it runs them in parallel; with the jobserver's descriptors lost, make 4.3
// says "jobserver unavailable: using -j1".
const SUB = 'all: a.txt b.txt c.txt\n%.txt:\n\techo $@ > $@\nclean:\n\trm -f *.txt\n';

const MAKEFILE = [
  'export MAKE',
  'all: app.ko copy.txt viamake.txt viascript.txt',
  'app.o: app.c',
  '\tgcc -c -o $@ $<',
  // kbuild's module final link: `+` on a line that runs only the linker.
  'app.ko: app.o',
  '\t+ld -r -o $@ $<',
  'copy.txt: app.ko',
  '\t+cp app.ko $@ && echo copied',
  'viamake.txt:',
  '\t+$(MAKE) -C sub',
  '\tcat sub/a.txt sub/b.txt > $@',
  // The text names no make: only the trace shows it ran one.
  'viascript.txt:',
  '\t+./run-sub.sh',
  '\tcat sub2/c.txt > $@',
  'clean:',
  '\trm -f app.o app.ko copy.txt viamake.txt viascript.txt sub/*.txt sub2/*.txt',
  '',
].join('\n');

function project(tag: string): string {
  const dir = tempDir(tag);
  writeTree(dir, {
    Makefile: MAKEFILE,
    'app.c': 'int app(int x) { return x + 1; }\n',
    'run-sub.sh': '#!/bin/sh\nexec ${MAKE:-make} -C sub2\n',
    'sub/Makefile': SUB,
    'sub2/Makefile': SUB,
  });
  chmodSync(join(dir, 'run-sub.sh'), 0o755);
  return dir;
}

const lineOf = (lines: LineRecord[], command: string): LineRecord => {
  const l = lines.find((x) => x.command === command);
  assert.ok(l, `no line '${command}' in ${JSON.stringify(lines.map((x) => x.command))}`);
  return l;
};

describe('+ lines with the jobserver open (make -j4)', () => {
  // A store per test: the fixture's lines have the same keys in both.
  const stores: Kbx[] = [];
  after(() => stores.forEach((k) => k.stop()));
  const build = (dir: string) => {
    const kbx = stores.at(-1)!;
    const r = kbx.make(dir, ['-j4']);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /jobserver unavailable/);
    assert.equal(kbx.run(['builds']).status, 0); // waits for the record
    return { r, lines: loadBuild(kbx.dir).lines };
  };

  test('a + line that links or copies hits after make clean and restores the same bytes', () => {
    stores.push(new Kbx('plus-cached'));
    const dir = project('plus-cached');
    const cold = build(dir);
    for (const c of ['ld -r -o app.ko app.o', 'cp app.ko copy.txt && echo copied']) {
      assert.equal(lineOf(cold.lines, c).kind, 'miss', c);
      assert.equal(lineOf(cold.lines, c).reason, undefined, `${c}: stored`);
    }
    const first = snapshot(dir);
    assert.equal(plainMake(dir, ['clean']).status, 0);
    const warm = build(dir);
    for (const c of ['ld -r -o app.ko app.o', 'cp app.ko copy.txt && echo copied']) assert.equal(lineOf(warm.lines, c).kind, 'hit', c);
    assert.match(warm.r.stdout, /^copied$/m); // the hit replays the line's stdout
    const again = snapshot(dir);
    for (const f of ['app.ko', 'copy.txt']) assert.ok(again.get(f)!.equals(first.get(f)!), f);
  });

  test('a + line that runs make, by its text or through a script, still shares the jobserver and is never stored', () => {
    stores.push(new Kbx('plus-make'));
    const dir = project('plus-make');
    const cold = build(dir);
    assert.equal(lineOf(cold.lines, 'make -C sub').kind, 'recursive');
    // Sent to the daemon (its text names no make), run traced, refused.
    const script = lineOf(cold.lines, './run-sub.sh');
    assert.equal(script.kind, 'miss');
    assert.equal(script.reason, 'runs-make');
    assert.equal(readFileSync(join(dir, 'viascript.txt'), 'utf8'), 'c.txt\n');
    assert.equal(readFileSync(join(dir, 'viamake.txt'), 'utf8'), 'a.txt\nb.txt\n');

    assert.equal(plainMake(dir, ['clean']).status, 0);
    const warm = build(dir);
    // Known uncacheable from then on: passed through, and its sub-make runs for real.
    assert.equal(lineOf(warm.lines, './run-sub.sh').kind, 'pass');
    assert.equal(lineOf(warm.lines, 'make -C sub').kind, 'recursive');
    assert.equal(readFileSync(join(dir, 'sub2/c.txt'), 'utf8'), 'c.txt\n');
    assert.equal(readFileSync(join(dir, 'viascript.txt'), 'utf8'), 'c.txt\n');
  });
});
