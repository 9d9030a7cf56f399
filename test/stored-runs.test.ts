// What a miss may store, end to end with real make: only a run whose outputs a
// clean rebuild can restore as plain make would make them. An input edited
// while the line ran, a directory built under another name, a failed run:
// each is a way to restore the wrong thing.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kbx, assertSameTree, plainMake, summary, tempDir, writeTree } from './support/kbx.js';

/** A project in its own temporary directory, with `ign/`: a directory kbx is told to leave out of every key. */
function project(tag: string, files: Record<string, string>): { proj: string; ign: string } {
  const proj = join(tempDir(tag), 'proj');
  writeTree(proj, files);
  const ign = join(proj, 'ign');
  mkdirSync(ign, { recursive: true });
  return { proj, ign };
}

/** A plain make build of a copy of proj as it is now, for comparison. */
function plainCopy(proj: string, tag: string, args: string[] = []): string {
  const ref = join(tempDir(tag), 'proj');
  cpSync(proj, ref, { recursive: true });
  const r = plainMake(ref, args);
  assert.equal(r.status, 0, r.stderr);
  return ref;
}

describe('an input edited while the line runs', () => {
  const holder = { kbx: undefined as Kbx | undefined };
  after(() => holder.kbx?.stop());

  test('is not stored: a clean rebuild makes the output from the current input', async () => {
    // The recipe copies src, then waits until the test has edited src (ign/go), then
    // puts the copy in place: its output is made from the old src, while src,
    // valued when the line ends, is the new one.
    const { proj, ign } = project('edited', {
      src: 'old\n',
      Makefile: [
        'out: src',
        '\tcp src tmp; n=0; while [ ! -e ign/go ] && [ $$n -lt 600 ]; do sleep 0.1; n=$$((n+1)); done; mv tmp out',
        '',
      ].join('\n'),
    });
    const kbx = (holder.kbx = new Kbx('edited', { KBX_IGNORE_PATHS: ign }));
    let finished = false;
    const build = kbx.makeAsync(proj).then((r) => ((finished = true), r));
    while (!existsSync(join(proj, 'tmp')) && !finished) await sleep(20);
    assert.ok(!finished, 'the recipe ended before it copied src');
    // File times come from the kernel's coarse clock, which may lag by a tick
    // (at most 10 ms): let the edit be clearly after the line's start.
    await sleep(50);
    writeFileSync(join(proj, 'src'), 'new\n');
    writeFileSync(join(ign, 'go'), '');
    const first = await build;
    assert.equal(first.status, 0, first.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), 'old\n');
    assert.equal(summary(first.stderr).stored, 0, first.stderr);

    rmSync(join(proj, 'out'));
    const ref = plainCopy(proj, 'edited-plain');
    const second = kbx.make(proj);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), 'new\n');
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), readFileSync(join(ref, 'out'), 'utf8'));
  });
});

describe('a directory the line leaves', () => {
  const kbx = new Kbx('dirs');
  after(() => kbx.stop());

  test('is restored with everything the line left in it: built under a temporary name and renamed, or copied with cp -r', () => {
    const { proj } = project('dirs', {
      src: 'hello\n',
      'srcdir/x': 'a\n',
      'srcdir/sub/y': 'b\n',
      Makefile: [
        'all: out out2',
        'out: src',
        '\trm -rf t out; mkdir -p t/sub/deeper; cp src t/x; cp src t/sub/deeper/y; chmod 755 t/x; ln -s x t/link; mv t out',
        'out2: srcdir/x srcdir/sub/y',
        '\trm -rf out2; cp -r srcdir out2',
        '',
      ].join('\n'),
    });
    const ref = plainCopy(proj, 'dirs-plain');
    const cold = kbx.make(proj);
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(summary(cold.stderr).stored, 2, cold.stderr);

    rmSync(join(proj, 'out'), { recursive: true });
    rmSync(join(proj, 'out2'), { recursive: true });
    const warm = kbx.make(proj);
    assert.equal(warm.status, 0, warm.stderr);
    assert.equal(summary(warm.stderr).hits, 2, warm.stderr);
    assert.equal(readFileSync(join(proj, 'out', 'x'), 'utf8'), 'hello\n');
    assert.equal(readFileSync(join(proj, 'out', 'sub', 'deeper', 'y'), 'utf8'), 'hello\n');
    assert.equal(lstatSync(join(proj, 'out', 'x')).mode & 0o777, 0o755);
    assert.ok(lstatSync(join(proj, 'out', 'link')).isSymbolicLink());
    assert.equal(readFileSync(join(proj, 'out2', 'sub', 'y'), 'utf8'), 'b\n');
    assertSameTree(proj, ref);
  });
});

describe('a line that fails', () => {
  const holder = { kbx: undefined as Kbx | undefined };
  after(() => holder.kbx?.stop());

  test('is not stored: once the cause is gone, the next build runs it and succeeds', () => {
    // The exit status comes from a file kbx is told to leave out of the key, as an
    // OOM kill or a full disk is no part of it.
    const { proj, ign } = project('failing', {
      Makefile: ['out:', '\texit $$(cat ign/status)', '\techo built > out', ''].join('\n'),
    });
    const kbx = (holder.kbx = new Kbx('failing', { KBX_IGNORE_PATHS: ign }));
    writeFileSync(join(ign, 'status'), '4\n');
    const first = kbx.make(proj);
    assert.notEqual(first.status, 0, first.stderr);
    assert.equal(summary(first.stderr).stored, 0, first.stderr);

    writeFileSync(join(ign, 'status'), '0\n');
    const ref = plainCopy(proj, 'failing-plain');
    const second = kbx.make(proj);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), readFileSync(join(ref, 'out'), 'utf8'));
  });
});

describe('a line that removes a file outside the tree', () => {
  const kbx = new Kbx('outside-rm');
  after(() => kbx.stop());

  test('is not cached: a clean rebuild removes the file again, as plain make does', () => {
    const outside = tempDir('outside-rm-canary');
    const canary = join(outside, 'stale.lock');
    const { proj } = project('outside-rm', {
      Makefile: ['out:', `\trm -f ${canary}; echo made > out`, ''].join('\n'),
    });
    writeFileSync(canary, 'x');
    const first = kbx.make(proj);
    assert.equal(first.status, 0, first.stderr);
    assert.ok(!existsSync(canary));

    writeFileSync(canary, 'x');
    rmSync(join(proj, 'out'));
    const second = kbx.make(proj);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), 'made\n');
    assert.ok(!existsSync(canary), 'the warm build left the file outside the tree that plain make removes');
    assert.equal(summary(second.stderr).hits, 0, second.stderr);
  });
});

describe('the shell that runs the lines', () => {
  const kbx = new Kbx('shell-key');
  after(() => kbx.stop());

  test('is part of the key: a line run by bash is not answered with what dash printed', () => {
    // dash's echo turns \n into a newline; bash's prints it as it is.
    const { proj } = project('shell-key', { Makefile: ['out:', "\techo 'a\\nb' > out", ''].join('\n') });
    assert.equal(kbx.make(proj).status, 0);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), 'a\nb\n');
    rmSync(join(proj, 'out'));
    const r = kbx.make(proj, [], { KBX_REAL_SHELL: '/bin/bash' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), 'a\\nb\n');
    assert.equal(summary(r.stderr).hits, 0, r.stderr);
  });
});

describe('the daemon log', () => {
  const kbx = new Kbx('log-lines');
  after(() => kbx.stop());

  test('has one record per line, however many lines a recipe has', () => {
    // A recipe line continued with backslash-newline reaches the shell, and the log, with its newline.
    const { proj } = project('log-lines', { Makefile: ['out:', '\techo a > out; \\', '\tdate >> out', ''].join('\n') });
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    const log = readFileSync(join(kbx.dir, 'daemon.log'), 'utf8').trimEnd().split('\n');
    assert.ok(log.some((l) => /uncacheable \(runs-date\): echo a > out; \\\\ndate >> out/.test(l)), log.join('\n'));
    for (const l of log) assert.match(l, /^\d{4}-\d\d-\d\dT[\d:.]+Z /, `a record without its own time: ${l}`);
  });
});

describe('a recipe that runs $(SHELL) itself', () => {
  const kbx = new Kbx('shell-script');
  after(() => kbx.stop());

  test('`$(SHELL) script.sh` and `$(SHELL) -c …` are traced whole and cached: hits after clean, misses after an edit of the script or its input', () => {
    const { proj } = project('shell-script', {
      src: 'hello\n',
      'script.sh': 'cat "$1" > "$2"\n',
      Makefile: ['all: out out2', 'out: src script.sh', '\t$(SHELL) script.sh src out', 'out2: src', "\t$(SHELL) -c 'cat src > out2'", 'clean:', '\trm -f out out2', ''].join('\n'),
    });
    const first = kbx.make(proj);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(summary(first.stderr).stored, 2, first.stderr);
    rmSync(join(proj, 'out'));
    rmSync(join(proj, 'out2'));
    const warm = kbx.make(proj);
    assert.equal(summary(warm.stderr).hits, 2, warm.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8') + readFileSync(join(proj, 'out2'), 'utf8'), 'hello\nhello\n');

    writeFileSync(join(proj, 'script.sh'), 'tr a-z A-Z < "$1" > "$2"\n');
    const edited = kbx.make(proj);
    assert.equal(summary(edited.stderr).misses, 1, edited.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), 'HELLO\n');
    writeFileSync(join(proj, 'src'), 'bye\n');
    const again = kbx.make(proj);
    assert.equal(summary(again.stderr).misses, 2, again.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), 'BYE\n');
    assert.equal(readFileSync(join(proj, 'out2'), 'utf8'), 'bye\n');
  });
});
