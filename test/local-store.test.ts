// The local store: verified blobs, safe records, and least-recently-used eviction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalStore } from '../src/store/local/local-store.js';
import { sha256 } from '../src/util/hash.js';
import { tempDir } from './support/kbx.js';

const blob = (i: number, size = 4096) => Buffer.alloc(size, i);

test('a blob comes back as stored, compressed or not', async () => {
  const store = new LocalStore(tempDir('ls-roundtrip'), 2 ** 30, 1);
  for (const data of [Buffer.alloc(0), Buffer.from('x'), blob(1), Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251))]) {
    const d = sha256(data);
    await store.putBlob(d, data);
    assert.ok(store.getBlob(d)!.equals(data));
  }
  assert.equal(store.getBlob('ab'.repeat(32)), undefined);
});

test('a blob whose bytes changed on disk is refused, removed and reported', async () => {
  const corrupt: string[] = [];
  const store = new LocalStore(tempDir('ls-corrupt'), 2 ** 30, 0, { onCorrupt: (p) => corrupt.push(p) });
  const data = blob(7);
  const d = sha256(data);
  await store.putBlob(d, data);
  const file = join(store.root, 'cas', d.slice(0, 2), d);
  const raw = readFileSync(file);
  raw[100] = raw[100]! ^ 1;
  writeFileSync(file, raw);
  assert.equal(store.getBlob(d), undefined);
  assert.deepEqual(corrupt, [file]);
  assert.equal(store.getBlob(d), undefined, 'removed, so now simply missing');
});

test('an entry that is not valid JSON is a miss, not a crash', () => {
  const store = new LocalStore(tempDir('ls-json'), 2 ** 30, 1);
  const strong = 'cd'.repeat(32);
  store.putEntry(strong, { outputs: [], deleted: [], stdout: '', stderr: '', exit: 0, durationUs: 1, createdMs: 0, buildId: 'b' });
  assert.equal(store.getEntry(strong)?.exit, 0);
  writeFileSync(join(store.root, 'ac', strong.slice(0, 2), `${strong}.e`), '{"outputs": [');
  assert.equal(store.getEntry(strong), undefined);
});

test('past the size limit the least recently used blobs go first', async () => {
  const store = new LocalStore(tempDir('ls-evict'), 40 * 1024, 0);
  const digests: string[] = [];
  for (let i = 0; i < 8; i++) {
    const d = sha256(blob(i));
    digests.push(d);
    await store.putBlob(d, blob(i));
    // Age each blob by its index so that the order of use is unambiguous.
    const t = new Date(Date.now() - (100 - i) * 1000);
    utimesSync(join(store.root, 'cas', d.slice(0, 2), d), t, t);
  }
  store.getBlob(digests[0]!); // used again: now the most recent
  for (let i = 8; i < 12; i++) await store.putBlob(sha256(blob(i)), blob(i));
  assert.ok(store.sizes.current() <= 40 * 1024, `store is ${store.sizes.current()} bytes`);
  assert.ok(store.getBlob(digests[0]!), 'the recently used blob survived');
  assert.equal(store.getBlob(digests[1]!), undefined, 'the least recently used blob was evicted');
  assert.ok(store.sizes.evictedFiles > 0);
  assert.ok(readdirSync(join(store.root, 'cas')).length > 0);
});

test('the size it counts is what is on disk, however often a record is rewritten', () => {
  const store = new LocalStore(tempDir('ls-rewrite'), 2 ** 30, 1);
  const weak = 'cd'.repeat(32);
  const strong = (i: number) => i.toString(16).padStart(64, '0');
  const entries = (n: number) => Array.from({ length: n }, (_, i) => ({ k: 'c' as const, p: `/src/file-${i}.h`, v: 'ab'.repeat(32) }));
  for (let i = 1; i <= 40; i++) {
    store.putPathSets(weak, { command: 'cc -c x.c', cwd: '/src', sets: Array.from({ length: Math.min(i, 16) }, (_, j) => ({ strong: strong(j), entries: entries(20) })) });
  }
  const onDisk = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((n, d) => n + (d.isDirectory() ? onDisk(join(dir, d.name)) : statSync(join(dir, d.name)).size), 0);
  assert.equal(store.sizes.current(), onDisk(store.root));
});
