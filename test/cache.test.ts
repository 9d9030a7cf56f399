// Stories about the whole-recipe cache on a small real project built by real
// make and gcc: what hits, what misses, and that a cached build is byte for
// byte the build plain make gives.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, cpSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, assertSameTree, copyFixture, plainMake, repoRoot, snapshot, summary, tempDir, writeTree } from './support/kbx.js';
import { program, unlessMissing } from './support/tools.js';

const fixture = join(repoRoot, 'test', 'fixtures', 'pipeline');
const copyPipeline = (tag: string) => copyFixture('pipeline', tag);

describe('the pipeline fixture', () => {
  const kbx = new Kbx('pipeline');
  let reference: string;

  before(() => {
    reference = copyPipeline('reference');
    assert.equal(plainMake(reference).status, 0);
  });
  after(() => kbx.stop());

  test('a cold build runs every line once and equals the plain build', () => {
    const proj = copyPipeline('cold');
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    assert.equal(s.hits, 0);
    assert.ok(s.misses >= 11, `expected the 11 cacheable lines to miss: ${r.stderr}`);
    assert.equal(s.stored, s.misses, r.stderr);
    assertSameTree(proj, reference);
  });

  test('after make clean, every line is a hit and the tree is byte-identical', () => {
    const proj = copyPipeline('warm');
    assert.equal(kbx.make(proj).status, 0);
    assert.equal(plainMake(proj, ['clean']).status, 0);
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assert.ok(s.hits >= 11, r.stderr);
    assert.match(r.stdout, /linked prog/);
    assertSameTree(proj, reference);
  });

  test('built with make -C DIR, then in DIR: every line a hit (make -C adds -w to MAKEFLAGS, which no line makes anything of)', () => {
    const proj = copyPipeline('make-c');
    const kbxC = new Kbx('pipeline-make-c');
    try {
      assert.equal(kbxC.make(join(proj, '..'), ['-C', proj]).status, 0);
      assert.equal(plainMake(proj, ['clean']).status, 0);
      const r = kbxC.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(summary(r.stderr).misses, 0, r.stderr);
      assertSameTree(proj, reference);
    } finally {
      kbxC.stop();
    }
  });

  test('editing a header misses exactly the lines that read it, then what depends on their output', () => {
    const proj = copyPipeline('header');
    assert.equal(kbx.make(proj).status, 0);
    plainMake(proj, ['clean']);
    writeFileSync(join(proj, 'include', 'config.h'), '#define GREETING "bonjour"\n');
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    // main.c's chain (5 lines) and the link miss; util.c's chain (5 lines) and the echo hit.
    assert.equal(s.misses, 6, r.stderr);
    assert.equal(s.hits, 6, r.stderr);
  });

  test('a header that shadows another earlier on the include path is a miss', () => {
    const proj = copyPipeline('shadow');
    assert.equal(kbx.make(proj).status, 0);
    plainMake(proj, ['clean']);
    // include/ comes before include2/: the compiler probed include/util.h and found it absent.
    writeFileSync(join(proj, 'include', 'util.h'), '#ifndef UTIL_H\n#define UTIL_H\nint twice(int x); /* shadow */\n#endif\n');
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    // Both compiles include util.h; their .s outputs do not change, so the chains after them hit.
    assert.equal(summary(r.stderr).misses, 2, r.stderr);
  });

  test('changing a -D flag misses the compiles, and only them when the code is the same', () => {
    const proj = copyPipeline('flag');
    assert.equal(kbx.make(proj).status, 0);
    plainMake(proj, ['clean']);
    const mk = join(proj, 'Makefile');
    writeFileSync(mk, readFileSync(mk, 'utf8').replace('CFLAGS ?= -O2', 'CFLAGS ?= -O2 -DUNUSED_FLAG=1'));
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    assert.equal(s.misses, 2, r.stderr);
    assert.equal(s.hits, 10, r.stderr);
  });

  test('changing an environment variable a tool reads is a miss; the same value again is a hit', () => {
    const proj = copyPipeline('env');
    assert.equal(kbx.make(proj, ['variant.txt'], { FIXTURE_VARIANT: 'a' }).status, 0);
    plainMake(proj, ['clean']);
    let r = kbx.make(proj, ['variant.txt'], { FIXTURE_VARIANT: 'b' });
    assert.equal(summary(r.stderr).misses, 1, r.stderr);
    plainMake(proj, ['clean']);
    r = kbx.make(proj, ['variant.txt'], { FIXTURE_VARIANT: 'a' });
    assert.equal(summary(r.stderr).hits, 1, r.stderr);
    assert.equal(snapshot(proj).get('variant.txt')?.toString(), 'variant=a\n');
  });

  test('replacing the assembler binary misses every line that ran it', () => {
    const proj = copyPipeline('assembler');
    const as = join(proj, 'tools', 'as');
    mkdirSync(join(proj, 'tools'));
    copyFileSync('/usr/bin/as', as);
    assert.equal(kbx.make(proj, [`AS=${as}`]).status, 0);
    plainMake(proj, ['clean']);
    // Install a new binary the way a package upgrade does: a new file renamed over the old.
    copyFileSync('/usr/bin/as', `${as}.new`);
    appendFileSync(`${as}.new`, Buffer.from('trailing bytes make a different binary that runs the same'));
    renameSync(`${as}.new`, as);
    const r = kbx.make(proj, [`AS=${as}`]);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    assert.equal(s.misses, 2, r.stderr);
    assert.equal(s.hits, 10, r.stderr);
  });

  test('a failing line that read and wrote nothing is stored (its failure is keyed): it hits with stdout, stderr and status as plain make gives them', () => {
    // What may not be stored (a failure no key holds): stored-failures.test.ts.
    const proj = copyPipeline('failing');
    const plain = plainMake(proj, ['failing']);
    const first = kbx.make(proj, ['failing']);
    const second = kbx.make(proj, ['failing']);
    assert.equal(summary(second.stderr).hits, 1, second.stderr);
    assert.equal(summary(second.stderr).misses, 0, second.stderr);
    for (const r of [first, second]) {
      assert.equal(r.status, plain.status);
      assert.equal(r.stdout, plain.stdout);
      assert.equal(r.stderr.replace(/^kbx: .*\n/m, ''), plain.stderr);
    }
    assert.match(second.stdout, /bin\0ary/);
  });
});

describe('recursive make and parallel jobs', () => {
  const kbx = new Kbx('recursive');
  after(() => kbx.stop());

  test('a sub-make runs through the shim with its jobserver, and its lines are cached', () => {
    const top = tempDir('recursive');
    const sub = join(top, 'sub');
    cpSync(fixture, sub, { recursive: true });
    writeFileSync(join(top, 'Makefile'), 'all:\n\t$(MAKE) -C sub all\nclean:\n\t$(MAKE) -C sub clean\n');
    let r = kbx.make(top, ['-j4']);
    assert.equal(r.status, 0, r.stderr);
    let s = summary(r.stderr);
    assert.ok(s.passthrough >= 1, r.stderr);
    plainMake(top, ['clean']);
    r = kbx.make(top, ['-j4']);
    assert.equal(r.status, 0, r.stderr);
    s = summary(r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assert.ok(s.hits >= 11, r.stderr);
  });
});

describe('a make that restarts', () => {
  test("a $(shell) run after make remade an included makefile and restarted hits in a build that does not restart", () => {
    // kbuild's first build after a config change: auto.conf is remade, make
    // re-executes itself with MAKE_RESTARTS=1 in its environment, which
    // `$(shell …)` lines get (make 4.3).
    const kbx = new Kbx('restarts');
    const proj = tempDir('restarts');
    writeTree(proj, {
      // The $(shell) runs once gen.mk is read: in the first build, only after the restart
      // (not a plain `cat`, which the shim does itself: shim-cat.test.ts).
      Makefile: 'include gen.mk\nifdef X\nWORD := $(shell tr -d x < in.txt)\nendif\nall: out.txt\nout.txt: in.txt\n\tcat in.txt > out.txt\ngen.mk: gen.src\n\tcp gen.src gen.mk\n',
      'gen.src': 'X := 1\n',
      'in.txt': 'word\n',
    });
    let r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    rmSync(join(proj, 'out.txt'));
    r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assert.equal(s.hits, 2, r.stderr); // the $(shell) and the recipe
    assert.equal(readFileSync(join(proj, 'out.txt'), 'utf8'), 'word\n');
    kbx.stop();
  });
});

describe('compiler wrappers', () => {
  const stores: Kbx[] = [];
  after(() => stores.forEach((k) => k.stop()));

  for (const wrapper of ['ccache', 'distcc']) {
    test(`CC="${wrapper} gcc": the wrapper's own cache and state stay out of the key, and a clean rebuild hits`, { skip: unlessMissing(program(wrapper, wrapper)) }, () => {
      // A store of its own: CC="ccache gcc" and CC="distcc gcc" share entries (build-farms.test.ts).
      const kbx = new Kbx(`wrappers-${wrapper}`);
      stores.push(kbx);
      const proj = copyPipeline(wrapper);
      const ref = copyPipeline(`${wrapper}-ref`);
      const env = { CCACHE_DIR: join(tempDir('ccache'), 'c'), DISTCC_HOSTS: '' };
      assert.equal(plainMake(ref, ['CC=gcc']).status, 0);
      let r = kbx.make(proj, [`CC=${wrapper} gcc`], env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(summary(r.stderr).stored, 12, r.stderr);
      plainMake(proj, ['clean']);
      r = kbx.make(proj, [`CC=${wrapper} gcc`], env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(summary(r.stderr).hits, 12, r.stderr);
      assertSameTree(proj, ref);
    });
  }
});

describe('directory listings', () => {
  const kbx = new Kbx('listings');
  after(() => kbx.stop());

  test('a find over a tree misses when a file is added to a subdirectory, and hits again after', () => {
    const proj = join(tempDir('listings'), 'proj');
    writeTree(proj, {
      Makefile: "list.txt:\n\tfind src -name '*.gen.S' | sort > list.txt\n",
      'src/a.gen.S': '',
      'src/a.c': '',
      'src/sub/b.gen.S': '',
    });
    const build = (): { misses: number; hits: number; list: string } => {
      rmSync(join(proj, 'list.txt'), { force: true });
      const r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      const s = summary(r.stderr);
      return { misses: s.misses, hits: s.hits, list: readFileSync(join(proj, 'list.txt'), 'utf8') };
    };
    assert.deepEqual(build(), { misses: 1, hits: 0, list: 'src/a.gen.S\nsrc/sub/b.gen.S\n' });
    assert.deepEqual(build(), { misses: 0, hits: 1, list: 'src/a.gen.S\nsrc/sub/b.gen.S\n' });
    writeFileSync(join(proj, 'src', 'sub', 'new.gen.S'), '');
    assert.deepEqual(build(), { misses: 1, hits: 0, list: 'src/a.gen.S\nsrc/sub/b.gen.S\nsrc/sub/new.gen.S\n' });
    assert.deepEqual(build(), { misses: 0, hits: 1, list: 'src/a.gen.S\nsrc/sub/b.gen.S\nsrc/sub/new.gen.S\n' });
    // Files added beside the tree (the build directory itself) are no part of the key.
    writeFileSync(join(proj, 'unrelated.txt'), '');
    assert.deepEqual(build(), { misses: 0, hits: 1, list: 'src/a.gen.S\nsrc/sub/b.gen.S\nsrc/sub/new.gen.S\n' });
  });
});

describe('perl', () => {
  const kbx = new Kbx('perl');
  after(() => kbx.stop());

  test('a perl line hits after make clean (its start-up seed reads are no input); a script that reads /dev/urandom is not cached', () => {
    const proj = join(tempDir('perl'), 'proj');
    const makefile = [
      'all: upper.txt rand.txt',
      'upper.txt: in.txt',
      "\tperl -ne 'print uc' in.txt > upper.txt",
      'rand.txt:',
      `\tperl -e 'open(my $$f, "<", "/dev/urandom") or die; read($$f, my $$b, 8); print unpack("H*", $$b), "\\n"' > rand.txt`,
      'clean:',
      '\trm -f upper.txt rand.txt',
      '',
    ].join('\n');
    writeTree(proj, { Makefile: makefile, 'in.txt': 'hello\n' });
    let r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stderr).stored, 1, r.stderr);
    const first = readFileSync(join(proj, 'rand.txt'), 'utf8');
    plainMake(proj, ['clean']);
    r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stderr).hits, 1, r.stderr);
    assert.equal(readFileSync(join(proj, 'upper.txt'), 'utf8'), 'HELLO\n');
    assert.notEqual(readFileSync(join(proj, 'rand.txt'), 'utf8'), first, 'the random line ran again');
  });
});
