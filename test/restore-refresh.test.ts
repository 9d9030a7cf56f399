// A hit whose output is already in place with the same bytes (every hit of a
// rebuild after a `touch`) only dates the file now: the same inode, one byte
// written again, no blob read, no temporary file renamed. Anything else is
// written whole: a file that differs, or one with a second name (writing in
// place would change the other name too).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { linkSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kbx, plainMake, summary, tempDir, writeTree } from './support/kbx.js';

const SORTED = '1\n2\n3\n';

describe('restoring an output that is already there', () => {
  const kbx = new Kbx('refresh');
  after(() => kbx.stop());
  const proj = join(tempDir('refresh'), 'proj');
  const out = join(proj, 'out.txt');
  const input = join(proj, 'in.txt');

  /** `touch in.txt` (content unchanged: newer than out.txt), rebuilds, and expects a hit. */
  const touchAndRebuild = async () => {
    await sleep(20);
    assert.equal(spawnSync('touch', [input]).status, 0);
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([summary(r.stderr).hits, summary(r.stderr).misses], [1, 0], r.stderr);
  };

  test('keeps the file and dates it after its inputs, so make finds the tree up to date', async () => {
    writeTree(proj, { Makefile: 'out.txt: in.txt\n\tsort -n in.txt > out.txt\n', 'in.txt': '3\n1\n2\n' });
    assert.equal(kbx.make(proj).status, 0);
    const before = statSync(out);
    await touchAndRebuild();
    const now = statSync(out);
    assert.equal(now.ino, before.ino, 'the output was written anew');
    assert.ok(now.mtimeMs >= statSync(input).mtimeMs && now.mtimeMs > before.mtimeMs, `${now.mtimeMs} vs ${statSync(input).mtimeMs}`);
    assert.equal(readFileSync(out, 'utf8'), SORTED);
    assert.equal(plainMake(proj, ['-q']).status, 0, 'make would run the line again');
  });

  test('writes a file that differs whole', async () => {
    writeFileSync(out, '9\n9\n9\n'); // same size, other bytes
    await touchAndRebuild();
    assert.equal(readFileSync(out, 'utf8'), SORTED);
  });

  test('writes a file with a second name whole, leaving the other name alone', async () => {
    const other = join(proj, 'other.txt');
    linkSync(out, other);
    await touchAndRebuild();
    assert.notEqual(statSync(out).ino, statSync(other).ino);
    assert.equal(statSync(other).nlink, 1);
    assert.equal(readFileSync(out, 'utf8'), SORTED);
  });
});
