// Hard links made by recipe lines (issue 16: git links one 17 MB binary to
// ~140 command names): a warm rebuild restores each name as a hard link of the
// same file, as plain make leaves it: same inodes, link counts and tree size,
// byte-identical; the store holds the bytes once.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, assertSameTree, plainMake, summary, tempDir, writeTree } from './support/kbx.js';
import { FileState } from '../src/fingerprint/file-state.js';
import { canLink, restoreLink } from '../src/daemon/hard-links.js';

const NAMES = 40;

/** 2 MiB that do not compress away, the same in every run. */
function bigBytes(): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < 2 << 20; i++) parts.push(createHash('sha256').update(String(i)).digest());
  return Buffer.concat(parts);
}

function duKiB(dir: string): number {
  const r = spawnSync('du', ['-sk', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.split('\t')[0]);
}

/** For each file name: its link count and which name of the tree first had its inode. */
function linkShape(dir: string, names: string[]): Array<[string, number, string]> {
  const first = new Map<number, string>();
  return names.map((n) => {
    const st = statSync(join(dir, n));
    if (!first.has(st.ino)) first.set(st.ino, n);
    return [n, st.nlink, first.get(st.ino)!];
  });
}

function build(kbx: Kbx, dir: string): ReturnType<typeof summary> {
  const r = kbx.make(dir, ['-j2']);
  assert.equal(r.status, 0, r.stderr);
  return summary(r.stderr);
}

describe('hard links made by recipe lines', () => {
  const kbx = new Kbx('links');
  after(() => kbx.stop());

  test(`${NAMES} names of one file come back as ${NAMES} links of it, not copies`, () => {
    const plain = join(tempDir('links-plain'), 'proj');
    const names = Array.from({ length: NAMES }, (_, i) => `l${i + 1}`);
    writeTree(plain, { Makefile: `all: ${names.join(' ')}\nl%: big.bin\n\tln -f big.bin $@\nclean:\n\trm -f ${names.join(' ')}\n` });
    writeFileSync(join(plain, 'big.bin'), bigBytes());
    const proj = join(tempDir('links'), 'proj');
    cpSync(plain, proj, { recursive: true });
    assert.equal(plainMake(plain, ['-j2']).status, 0);

    assert.equal(build(kbx, proj).misses, NAMES);
    assert.equal(kbx.make(proj, ['clean']).status, 0);
    const warm = build(kbx, proj);
    assert.deepEqual([warm.hits, warm.misses], [NAMES, 0]);

    const all = ['big.bin', ...names];
    assert.deepEqual(linkShape(proj, all), linkShape(plain, all));
    assert.equal(statSync(join(proj, 'l7')).nlink, NAMES + 1);
    assert.equal(duKiB(proj), duKiB(plain));
    assertSameTree(proj, plain);
    // The bytes once in the store (compressed or not: 2 MiB, not 80).
    assert.ok(duKiB(join(kbx.dir, 'store')) < 4 * 1024, `store holds ${duKiB(join(kbx.dir, 'store'))} KiB`);
  });

  test('cp -al of a directory comes back as links of the sources', () => {
    const plain = join(tempDir('cpl-plain'), 'proj');
    writeTree(plain, { Makefile: 'copy/.done: src/a src/b\n\trm -rf copy && cp -al src copy && touch copy/.done\n', 'src/a': 'a\n', 'src/b': 'bee\n' });
    const proj = join(tempDir('cpl'), 'proj');
    cpSync(plain, proj, { recursive: true });
    assert.equal(plainMake(plain).status, 0);
    assert.equal(build(kbx, proj).misses, 1);
    rmSync(join(proj, 'copy'), { recursive: true });
    assert.equal(build(kbx, proj).hits, 1);
    const files = ['src/a', 'src/b', 'copy/a', 'copy/b'];
    assert.deepEqual(linkShape(proj, files), linkShape(plain, files));
    assert.equal(statSync(join(proj, 'copy/a')).ino, statSync(join(proj, 'src/a')).ino);
    assertSameTree(proj, plain);
  });

  test('a later line appending to the linked file reaches both names, as in plain make', () => {
    const makefile = [
      'final.txt: link.txt gen.stamp',
      '\tcat link.txt > final.txt',
      'gen.stamp: link.txt',
      '\techo appended >> gen.txt && touch gen.stamp',
      'link.txt: gen.txt',
      '\tln -f gen.txt link.txt',
      'gen.txt: src.txt',
      '\tcp src.txt gen.txt',
      'clean:',
      '\trm -f final.txt gen.stamp link.txt gen.txt',
      '',
    ].join('\n');
    const plain = join(tempDir('append-plain'), 'proj');
    writeTree(plain, { Makefile: makefile, 'src.txt': 'source\n' });
    const proj = join(tempDir('append'), 'proj');
    cpSync(plain, proj, { recursive: true });
    assert.equal(plainMake(plain).status, 0);
    assert.equal(readFileSync(join(plain, 'final.txt'), 'utf8'), 'source\nappended\n');
    for (let i = 0; i < 3; i++) {
      build(kbx, proj);
      assertSameTree(proj, plain);
      assert.equal(statSync(join(proj, 'link.txt')).ino, statSync(join(proj, 'gen.txt')).ino);
      assert.equal(kbx.make(proj, ['clean']).status, 0);
    }
  });

  test('a link to a file outside the build tree comes back as a copy, the outside file untouched', () => {
    const outside = tempDir('links-outside');
    const ext = join(outside, 'ext.bin');
    writeFileSync(ext, 'outside bytes\n');
    const proj = join(tempDir('ext'), 'proj');
    writeTree(proj, { Makefile: `ext-link: ${ext}\n\tln -f ${ext} ext-link\n` });
    assert.equal(build(kbx, proj).misses, 1);
    rmSync(join(proj, 'ext-link'));
    const before = statSync(ext);
    assert.equal(build(kbx, proj).hits, 1);
    assert.equal(readFileSync(join(proj, 'ext-link'), 'utf8'), 'outside bytes\n');
    assert.equal(statSync(join(proj, 'ext-link')).nlink, 1);
    assert.equal(statSync(ext).nlink, 1);
    assert.equal(statSync(ext).ctimeMs, before.ctimeMs);
  });

  test('an output is linked only to a file that holds its bytes and mode', () => {
    const dir = tempDir('canlink');
    mkdirSync(dir, { recursive: true });
    const src = join(dir, 'src');
    writeFileSync(src, 'right\n', { mode: 0o644 });
    const digest = createHash('sha256').update('right\n').digest('hex');
    const state = new FileState();
    const o = { kind: 'file' as const, path: join(dir, 'out'), digest, mode: 0o644, size: 6, linkOf: src };
    assert.equal(canLink(o, state), true);
    assert.equal(canLink({ ...o, mode: 0o755 }, state), false);
    writeFileSync(src, 'wrong\n');
    assert.equal(canLink(o, new FileState()), false);
    writeFileSync(src, 'right\n');
    assert.equal(restoreLink(o, new FileState(), (d) => mkdirSync(d, { recursive: true })), true);
    assert.equal(statSync(o.path).ino, statSync(src).ino);
    linkSync(src, join(dir, 'third'));
    assert.equal(statSync(src).nlink, 3);
  });
});
