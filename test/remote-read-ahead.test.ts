// Reading a shared store ahead (src/store/remote/read-ahead.ts): a build
// leaves the list of the commands it looked up; a fresh machine that starts
// with the same lookup fetches their records and blobs before it asks, and
// what it fetched ahead is checked as a lookup's own fetch would be.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { decodeBuildLines } from '../src/store/remote/wire.js';
import { Kbx, assertSameTree, copyFixture, plainMake, summary } from './support/kbx.js';
import { Nginx } from './support/nginx.js';
import { assertBuilt, reference, remoteCounts } from './support/remote.js';
import { program, unlessMissing } from './support/tools.js';

const skip = unlessMissing(program('nginx', 'nginx'), program('gcc', 'gcc'));

/** The server's list of a build's lines: the one ac record that decodes as one. */
function listFile(nginx: Nginx): string {
  const dir = join(nginx.data, 'kbx', 'ac');
  const lists = readdirSync(dir).filter((n) => {
    try {
      decodeBuildLines(readFileSync(join(dir, n)));
      return true;
    } catch {
      return false;
    }
  });
  assert.equal(lists.length, 1, `lists of lines on the server: ${lists.join(' ')}`);
  return join(dir, lists[0]!);
}

describe('a fresh machine reads the shared store ahead', { skip }, () => {
  let nginx: Nginx;
  let ref: string;
  before(async () => {
    nginx = await new Nginx().start();
    ref = reference('pipeline');
    const a = new Kbx('ahead-a', { KBX_REMOTE_STORAGE: nginx.url });
    assertBuilt(a.make(copyFixture('pipeline', 'ahead-a')));
    a.stop();
  });
  after(() => nginx.stop());

  test('the first build leaves the list of its lines; the second takes its records from what it fetched ahead', () => {
    const lines = decodeBuildLines(readFileSync(listFile(nginx))).lines;
    assert.ok(lines.length >= 12, `${lines.length} lines listed`);
    const b = new Kbx('ahead-b', { KBX_REMOTE_STORAGE: nginx.url });
    const tree = copyFixture('pipeline', 'ahead-b');
    const r = b.make(tree);
    assertBuilt(r);
    const s = summary(r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    const counts = remoteCounts(b, nginx.url);
    assert.equal(counts.hit, s.hits);
    // A bundle per remote hit (its entry and small blobs inline); the first line may ask before the list is read.
    assert.ok((counts['read-ahead-used'] ?? 0) >= s.hits - 1, JSON.stringify(counts));
    assertSameTree(tree, ref);
    b.stop();
  });

  test('a record fetched ahead whose inputs no longer hold restores nothing: the line runs', () => {
    const b = new Kbx('ahead-edited', { KBX_REMOTE_STORAGE: nginx.url });
    const tree = copyFixture('pipeline', 'ahead-edited');
    appendFileSync(join(tree, 'util.c'), '\nint kbx_added(void) { return 7; }\n');
    const edited = copyFixture('pipeline', 'ahead-edited-ref');
    appendFileSync(join(edited, 'util.c'), '\nint kbx_added(void) { return 7; }\n');
    assert.equal(plainMake(edited).status, 0);
    const r = b.make(tree);
    assertBuilt(r);
    const s = summary(r.stderr);
    assert.ok(s.misses >= 4, `util's compile, filter, assembly and objcopy run: ${r.stderr}`);
    assert.ok((remoteCounts(b, nginx.url)['read-ahead-used'] ?? 0) > 0);
    assertSameTree(tree, edited);
    b.stop();
  });

  test('a machine whose store already holds the lines fetches none of their records ahead', () => {
    const b = new Kbx('ahead-warm', { KBX_REMOTE_STORAGE: nginx.url });
    assertBuilt(b.make(copyFixture('pipeline', 'ahead-warm-1')));
    const before = nginx.requests().length;
    const tree = copyFixture('pipeline', 'ahead-warm-2');
    const r = b.make(tree);
    assertBuilt(r);
    assert.equal(summary(r.stderr).misses, 0, r.stderr);
    // The list of lines, and nothing for the commands the local store has (a warm rebuild once fetched every bundle again).
    const asked = nginx.requests().slice(before);
    assert.deepEqual(asked.filter((q) => q.startsWith('GET')).length, 1, asked.join('\n'));
    assertSameTree(tree, ref);
    b.stop();
  });

  test('a hostile list is refused and counted; the build goes on from the store', () => {
    const file = listFile(nginx);
    const good = readFileSync(file);
    writeFileSync(file, gzipSync(JSON.stringify({ lines: ['../../../etc/passwd', 'a'.repeat(64)] })));
    try {
      const b = new Kbx('ahead-hostile', { KBX_REMOTE_STORAGE: nginx.url });
      const tree = copyFixture('pipeline', 'ahead-hostile');
      const r = b.make(tree);
      assertBuilt(r);
      assert.equal(summary(r.stderr).misses, 0, r.stderr);
      const counts = remoteCounts(b, nginx.url);
      assert.equal(counts.corrupt, 1, JSON.stringify(counts));
      assert.equal(counts['read-ahead-used'] ?? 0, 0);
      assertSameTree(tree, ref);
      b.stop();
    } finally {
      writeFileSync(file, good);
    }
  });
});
