// Portable keys (issue 11): two checkouts of one tree at different absolute
// paths share one store. A line whose outputs and messages do not hold the
// tree's path is a hit in the second checkout; a line whose do (debug info,
// __FILE__ of an absolute path, a warning naming the source) runs there, and
// the second checkout never gets the first one's path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, copyFixture, plainMake, snapshot, summary, tempDir, writeTree } from './support/kbx.js';

const PORTABLE = 3; // main.o, prog, upper.txt
const ROOTED = 3; // debug.o, file.o, warn.stamp

/** A plain build of dir (with args) taken as the reference for `out`, then cleaned away. */
function plainReference(dir: string, out: string, args: string[] = []): Map<string, Buffer> {
  assert.equal(plainMake(dir, args).status, 0);
  const ref = snapshot(out);
  assert.equal(plainMake(dir, [...args, 'clean']).status, 0);
  return ref;
}

function assertSame(actual: Map<string, Buffer>, expected: Map<string, Buffer>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [p, data] of expected) assert.ok(actual.get(p)!.equals(data), `${p} differs from plain make's at the same path`);
}

const holds = (file: string, text: string) => readFileSync(file).includes(text);

test('a second checkout at another path hits every line whose outputs do not hold the path, and runs the others', () => {
  const kbx = new Kbx('portable');
  const a = copyFixture('portable', 'portable-a');
  const b = copyFixture('portable', 'portable-b-somewhere-else');
  const refB = plainReference(b, b);
  try {
    const cold = kbx.make(a);
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(summary(cold.stderr).stored, PORTABLE + ROOTED, cold.stderr);
    kbx.stats(); // every entry written

    const r = kbx.make(b);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    assert.equal(s.hits, PORTABLE, r.stderr);
    assert.equal(s.misses, ROOTED, r.stderr);
    assertSame(snapshot(b), refB);
    for (const f of ['debug.o', 'file.o']) {
      assert.ok(holds(join(b, f), b), `${f} names its own tree`);
      assert.ok(!holds(join(b, f), a), `${f} does not name the other tree`);
    }
    // The warning names b's source, as plain make's would.
    assert.ok(r.stderr.includes(`${b}/warn.c:1:`), r.stderr);
    assert.ok(!r.stderr.includes(a), r.stderr);
    // kbx explain says which root the stored run was keyed with.
    const why = kbx.run(['explain', 'debug.o'], { cwd: b });
    assert.match(why.stdout, new RegExp(`was ${a}, now ${b}`), why.stdout);

    // Each tree keeps its own runs of the rooted lines: clean rebuilds of both are all hits.
    kbx.stats();
    for (const dir of [a, b]) {
      assert.equal(plainMake(dir, ['clean']).status, 0);
      const again = kbx.make(dir);
      assert.equal(again.status, 0, again.stderr);
      assert.equal(summary(again.stderr).hits, PORTABLE + ROOTED, again.stderr);
      assert.ok(again.stderr.includes(`${dir}/warn.c:1:`), again.stderr);
    }
    assertSame(snapshot(b), refB);
  } finally {
    kbx.stop();
  }
});

test('O= builds: another source and output directory share what holds neither; another output directory alone shares everything', () => {
  const kbx = new Kbx('portable-o');
  const s1 = copyFixture('portable', 'portable-src1');
  const s2 = copyFixture('portable', 'portable-src2-longer');
  const [o1, o2, o3] = ['portable-out1', 'portable-out2-longer', 'portable-out3'].map((t) => join(tempDir(t), 'out'));
  for (const o of [o1!, o2!, o3!]) mkdirSync(o);
  const ref2 = plainReference(s2, o2!, [`O=${o2}`]);
  const ref3 = plainReference(s1, o3!, [`O=${o3}`]);
  try {
    const cold = kbx.make(s1, [`O=${o1}`]);
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(summary(cold.stderr).stored, PORTABLE + ROOTED, cold.stderr);
    kbx.stats();

    const other = kbx.make(s2, [`O=${o2}`]);
    assert.equal(other.status, 0, other.stderr);
    assert.equal(summary(other.stderr).hits, PORTABLE, other.stderr);
    assertSame(snapshot(o2!), ref2);
    assert.ok(!holds(join(o2!, 'debug.o'), s1));

    // Same source tree, another output directory: the rooted lines hold only
    // the source tree's path, which is the same; every line is a hit.
    kbx.stats();
    const out3 = kbx.make(s1, [`O=${o3}`]);
    assert.equal(out3.status, 0, out3.stderr);
    assert.equal(summary(out3.stderr).hits, PORTABLE + ROOTED, out3.stderr);
    assertSame(snapshot(o3!), ref3);
  } finally {
    kbx.stop();
  }
});

test('a line that read a file naming its tree\'s path is keyed with the path: a copied tree never gets the first tree\'s output', () => {
  const kbx = new Kbx('portable-list');
  const a = join(tempDir('portable-list-a'), 'proj');
  // The line reads the files a list names, by absolute path: the list names a's data.
  writeTree(a, { Makefile: 'out.txt: list.txt\n\tcat $$(cat list.txt) > $@\n', 'data.txt': 'one\n', 'list.txt': `${a}/data.txt\n` });
  const b = join(tempDir('portable-list-b-copy'), 'proj');
  cpSync(a, b, { recursive: true });
  try {
    const cold = kbx.make(a);
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(summary(cold.stderr).stored, 1, cold.stderr);
    kbx.stats();
    // a's data changes; b's copy of it does not, and b's list still names a's.
    writeFileSync(join(a, 'data.txt'), 'two\n');
    const r = kbx.make(b);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stderr).misses, 1, r.stderr);
    assert.equal(readFileSync(join(b, 'out.txt'), 'utf8'), 'two\n', 'what plain make gives: the data the list names');
  } finally {
    kbx.stop();
  }
});

test("a line that writes kbx's install path (make's SHELL override, in MAKEFLAGS) is not stored: MAKEFLAGS keys the shim by name", () => {
  const kbx = new Kbx('shim-path');
  const dir = join(tempDir('shim-path'), 'proj');
  writeTree(dir, { Makefile: "all: flags.txt other.txt\nflags.txt:\n\techo '$(MAKEFLAGS)' > $@\nother.txt:\n\techo other > $@\n" });
  try {
    const r = kbx.make(dir);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(holds(join(dir, 'flags.txt'), '/kbx-shell/sh'), 'the line wrote the shim path');
    assert.equal(summary(r.stderr).stored, 1, r.stderr);
    assert.equal(kbx.stats()['not-stored:shim-path-in-output'], 1);
  } finally {
    kbx.stop();
  }
});
