// A line's probe of its own output is not an input (accesses.ts,
// replacers.ts): gcc, as, ld and objcopy stat their output before replacing
// it, and an entry must not depend on whether the output was there. Real make,
// real gcc and binutils. And the lines whose write does depend on it (a shell
// test, a script) keep the probe: kbx equals plain make in each.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertSameTree, Kbx, ok, projectDir, plainMake, summary } from './support/kbx.js';
import { program, unlessMissing } from './support/tools.js';

// Compiles (then a program kbx knows nothing of reads the object, as kbuild's
// objtool and fixdep do), an objcopy post-processing step, a link; objects
// depend on flags.mk, so a flags change rebuilds them with the old outputs in place.
const PROJECT: Record<string, string> = {
  Makefile: `include flags.mk
MAKEFLAGS += -r
OBJS := main.o util.o extra.o
all: prog
%.o: %.c common.h flags.mk
\tgcc $(CFLAGS) -c -o $@ $< && od -An -N4 -tx1 $@ > $@.head
%.post.o: %.o
\tobjcopy -R .comment $< $@
prog: $(OBJS:.o=.post.o)
\tgcc -o $@ $^
clean:
\trm -f *.o *.head prog
.SECONDARY:
`,
  'flags.mk': 'CFLAGS := -O1\n',
  'common.h': '#define SCALE 3\nint util(int);\nint extra(int);\n',
  'main.c': '#include "common.h"\nint main(void) { return util(SCALE) + extra(1) - 12; }\n',
  'util.c': '#include "common.h"\nint util(int x) { return x * SCALE; }\n',
  'extra.c': '#include "common.h"\nint extra(int x) { return x + SCALE - 1; }\n',
};
// 3 compiles, 3 objcopy lines, the link.
const LINES = 7;

const project = (tag: string, files: Record<string, string> = PROJECT): string => projectDir(tag, files);


/**
 * Sets a file's mtime to now (content unchanged): after every output of the
 * build that ended before, not in the future (kbx stores no line whose input
 * changed at or after its start).
 */
function touch(p: string): void {
  const now = new Date();
  utimesSync(p, now, now);
}

/** PROJECT built with LLVM's tools: clang writes its object to a temporary file and renames it over the old one. */
const LLVM_PROJECT: Record<string, string> = {
  ...PROJECT,
  Makefile: PROJECT.Makefile!.replace(/\tgcc /g, '\tclang ').replace('\tobjcopy ', '\tllvm-objcopy '),
};

describe('a line that replaces its own output', { skip: unlessMissing(program('gcc', 'gcc'), program('objcopy', 'binutils')) }, () => {
  test('entries made with the outputs in place (a flags change) hit after make clean', () => {
    const kbx = new Kbx('own-incremental');
    const proj = project('own-incremental');
    ok(kbx.make(proj));
    writeFileSync(join(proj, 'flags.mk'), 'CFLAGS := -O2\n');
    const incremental = summary(ok(kbx.make(proj)).stderr);
    assert.equal(incremental.misses, LINES, 'every line ran again, with its output present');
    assert.equal(incremental.stored, LINES);
    ok(plainMake(proj, ['clean']));
    const r = ok(kbx.make(proj));
    const s = summary(r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assert.equal(s.hits, LINES, r.stderr);
    const ref = project('own-incremental-ref', { ...PROJECT, 'flags.mk': 'CFLAGS := -O2\n' });
    ok(plainMake(ref));
    assertSameTree(proj, ref);
    kbx.stop();
  });

  test('entries made in a clean tree hit when a touched header reruns the lines', () => {
    const kbx = new Kbx('own-touch');
    const proj = project('own-touch');
    ok(kbx.make(proj));
    touch(join(proj, 'common.h'));
    const r = ok(kbx.make(proj));
    const s = summary(r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assert.equal(s.hits, LINES, r.stderr);
    const ref = project('own-touch-ref');
    ok(plainMake(ref));
    assertSameTree(proj, ref);
    kbx.stop();
  });

  test('with clang and llvm-objcopy too: entries made in a clean tree hit after a touch', { skip: unlessMissing(program('clang', 'clang'), program('llvm-objcopy', 'llvm')) }, () => {
    const kbx = new Kbx('own-touch-llvm');
    const proj = project('own-touch-llvm', LLVM_PROJECT);
    ok(kbx.make(proj));
    touch(join(proj, 'common.h'));
    const r = ok(kbx.make(proj));
    const s = summary(r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assert.equal(s.hits, LINES, r.stderr);
    const ref = project('own-touch-llvm-ref', LLVM_PROJECT);
    ok(plainMake(ref));
    assertSameTree(proj, ref);
    kbx.stop();
  });

  test('an include directory named rm (Linux\'s arch/x86/realmode/rm) is no rm command: hits after a touch', () => {
    const files = { Makefile: 'a.o: a.c rm/h.h\n\tgcc -I $(CURDIR)/rm -I ./rm -c -o $@ $<\n', 'a.c': '#include "h.h"\nint a(void) { return H; }\n', 'rm/h.h': '#define H 3\n' };
    const kbx = new Kbx('own-rm-dir');
    const proj = project('own-rm-dir', files);
    ok(kbx.make(proj));
    touch(join(proj, 'rm/h.h'));
    const r = ok(kbx.make(proj));
    const s = summary(r.stderr);
    assert.deepEqual([s.hits, s.misses], [1, 0], r.stderr);
    kbx.stop();
  });

  test('mkdir -p before the compile: hits after a touch and after removing the directory', () => {
    const files = {
      Makefile: 'all: out/a.o out/b.o\nout/%.o: %.c\n\tmkdir -p out && gcc -c -o $@ $<\n',
      'a.c': 'int a(void) { return 1; }\n',
      'b.c': 'int b(void) { return 2; }\n',
    };
    const kbx = new Kbx('own-mkdir');
    const proj = project('own-mkdir', files);
    const ref = project('own-mkdir-ref', files);
    ok(kbx.make(proj));
    for (const dir of [proj, ref]) for (const c of ['a.c', 'b.c']) touch(join(dir, c));
    let s = summary(ok(kbx.make(proj)).stderr);
    assert.equal(s.misses, 0);
    assert.equal(s.hits, 2);
    rmSync(join(proj, 'out'), { recursive: true });
    s = summary(ok(kbx.make(proj)).stderr);
    assert.equal(s.misses, 0);
    assert.equal(s.hits, 2);
    ok(plainMake(ref));
    assertSameTree(proj, ref);
    kbx.stop();
  });
});

describe('a stamp the line makes with touch (kbuild\'s CHKSHA1 and .checked files)', () => {
  // touch opens its file O_WRONLY|O_CREAT: what was there stays. An empty
  // stamp and none are alike to it; a stamp with bytes is not.
  const STAMP = { Makefile: 'stamp: src.h\n\tgrep -q ok src.h && touch $@\n', 'src.h': '/* ok */\n' };
  test('an entry made with the stamp absent hits over the empty stamp a build left, and never over one with bytes', () => {
    const proj = sideBySide('own-stamp', STAMP, [
      { change: () => {}, lines: [0, 1] }, // created
      { change: (d) => touch(join(d, 'src.h')), lines: [1, 0] }, // rerun over the empty stamp: a branch switch, a touched header
      {
        change: (d) => {
          writeFileSync(join(d, 'stamp'), 'kept\n'); // touch keeps these bytes: no entry may write an empty stamp
          touch(join(d, 'src.h'));
        },
        lines: [0, 1],
      },
      {
        change: (d) => {
          rmSync(join(d, 'stamp'));
          touch(join(d, 'src.h'));
        },
        lines: [1, 0],
      },
      // Empty, but not as the line leaves it: other bits, or a symlink touch writes through.
      {
        change: (d) => {
          chmodSync(join(d, 'stamp'), 0o600);
          touch(join(d, 'src.h'));
        },
        lines: [0, 1],
      },
    ]);
    assert.equal(lstatSync(join(proj, 'stamp')).mode & 0o777, 0o600);
  });

  test('an entry made with the stamp absent is not restored over a symlink to an empty file', () => {
    const kbx = new Kbx('own-stamp-link');
    const proj = project('own-stamp-link', { ...STAMP, target: '' });
    ok(kbx.make(proj));
    rmSync(join(proj, 'stamp'));
    symlinkSync('target', join(proj, 'stamp'));
    touch(join(proj, 'src.h'));
    const r = ok(kbx.make(proj));
    assert.deepEqual([summary(r.stderr).hits, summary(r.stderr).misses], [0, 1], r.stderr);
    assert.ok(lstatSync(join(proj, 'stamp')).isSymbolicLink(), 'touch wrote through the link, as in plain make');
    kbx.stop();
  });
});

/** A change to a tree before a build; with `lines`, the hits and misses kbx's build must report. */
type Step = ((dir: string) => void) | { change: (dir: string) => void; lines: [hits: number, misses: number] };

/**
 * Runs the same steps in a kbx tree and a plain one and compares them after
 * each build: `step` changes a tree, then both are built. Returns the kbx tree.
 */
function sideBySide(tag: string, files: Record<string, string>, steps: Step[]): string {
  const kbx = new Kbx(tag);
  const proj = project(tag, files);
  const ref = project(`${tag}-ref`, files);
  for (const step of steps) {
    const change = typeof step === 'function' ? step : step.change;
    change(proj);
    change(ref);
    const r = ok(kbx.make(proj));
    if (typeof step !== 'function') {
      const s = summary(r.stderr);
      assert.deepEqual([s.hits, s.misses], step.lines, r.stderr);
    }
    ok(plainMake(ref));
    assertSameTree(proj, ref);
  }
  kbx.stop();
  return proj;
}

describe('a line whose write depends on whether its output was there keeps the probe', { skip: unlessMissing(program('gcc', 'gcc')) }, () => {
  test('test -e out || cp src out: an entry made with out absent is not restored over an out that exists', () => {
    const files = { Makefile: 'out.txt: src.txt\n\ttest -e out.txt || cp src.txt out.txt\n', 'src.txt': 'v1\n' };
    sideBySide('own-create-once', files, [
      () => {}, // out.txt = v1
      (d) => {
        rmSync(join(d, 'out.txt'));
        writeFileSync(join(d, 'src.txt'), 'v2\n'); // out.txt = v2
      },
      (d) => {
        writeFileSync(join(d, 'src.txt'), 'v1\n'); // out.txt exists: plain make leaves v2
        touch(join(d, 'src.txt'));
      },
    ]);
  });

  test('gcc under a shell test: each branch is keyed on whether the object was there', () => {
    const files = {
      Makefile: 'obj.o: x.c\n\t[ -e obj.o ] && gcc -DAGAIN -c -o obj.o x.c || gcc -c -o obj.o x.c\nclean:\n\trm -f obj.o\n',
      'x.c': '#ifdef AGAIN\nint again = 1;\n#else\nint first = 1;\n#endif\n',
    };
    sideBySide('own-shell-test', files, [
      () => {}, // absent: first
      (d) => touch(join(d, 'x.c')), // present: again
      (d) => rmSync(join(d, 'obj.o')), // absent again: first, not the entry made with obj.o present
      (d) => touch(join(d, 'x.c')), // present: again, not the entry made with obj.o absent
    ]);
  });

  test('a script run by a second shell tests the object: its other output follows plain make', () => {
    const files = {
      Makefile: 'obj.o: x.c\n\tsh fresh.sh; gcc -c -o obj.o x.c\n',
      'fresh.sh': '[ -e obj.o ] || echo fresh > fresh.txt\n',
      'x.c': 'int x = 1;\n',
    };
    sideBySide('own-script', files, [
      () => {}, // absent: fresh.txt written
      (d) => {
        rmSync(join(d, 'fresh.txt'));
        touch(join(d, 'x.c')); // present: no fresh.txt
      },
    ]);
  });
});
