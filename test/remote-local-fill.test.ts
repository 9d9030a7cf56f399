// A fresh machine's remote hits are restored from the bytes the remote sent,
// and copied into its local store after the answers (src/store/remote/
// local-fill.ts): every copy is there when kbx make returns, a blob is
// written once however many entries name it, a blob that does not verify
// reaches neither the tree nor the store, and a copy whose blob could not be
// written leaves no entry. The read-ahead hands the lookup what it decoded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sha256 } from '../src/util/hash.js';
import { LocalStore } from '../src/store/local/local-store.js';
import { LocalFill } from '../src/store/remote/local-fill.js';
import { ReadAhead } from '../src/store/remote/read-ahead.js';
import { strongFingerprint } from '../src/fingerprint/key.js';
import type { Entry } from '../src/store/store.js';
import { decodePathSetsRecord } from '../src/store/record-codec.js';
import { decodeBundle, encodeBundle, encodeEntry, encodePathSets, pathSetsKey } from '../src/store/remote/wire.js';
import { Kbx, assertSameTree, plainMake, summary, tempDir, writeTree } from './support/kbx.js';
import { Nginx } from './support/nginx.js';
import { assertBuilt, remoteCounts } from './support/remote.js';
import { program, unlessMissing } from './support/tools.js';

const skip = unlessMissing(program('nginx', 'nginx'));

// Six lines whose outputs are the same bytes (one blob), and one output too
// large to travel inline in its bundle (fetched under its own key).
const SAME = 6;
const MAKEFILE = `OUTS := $(patsubst src/%.in,out/%.o,$(wildcard src/*.in))
all: $(OUTS)
out/%.o: src/%.in
\t@mkdir -p out
\tcat $< | tr a-z A-Z > $@
`;
const BIG = randomBytes(60_000).toString('base64');

function project(tag: string): string {
  const dir = join(tempDir(tag), 'proj');
  const files: Record<string, string> = { Makefile: MAKEFILE, 'src/big.in': `${BIG}\n` };
  for (let i = 1; i <= SAME; i++) files[`src/same${i}.in`] = 'the same bytes\n';
  writeTree(dir, files);
  return dir;
}

const upper = (s: string) => s.replace(/[a-z]/g, (c) => c.toUpperCase());

/** The local counters of a store's `kbx stats --json` under `local fill `. */
function fillCounts(kbx: Kbx): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(kbx.stats())) if (k.startsWith('local fill ')) out[k.slice('local fill '.length)] = v;
  return out;
}

/** A local store's path set records (one per command), decoded, and the names of its entries. */
function localRecords(kbx: Kbx): { weaks: string[]; sets: string[][]; entries: Set<string> } {
  const ac = join(kbx.dir, 'store', 'v2', 'ac');
  const sets: string[][] = [];
  const weaks: string[] = [];
  const entries = new Set<string>();
  for (const fan of readdirSync(ac))
    for (const name of readdirSync(join(ac, fan))) {
      if (name.endsWith('.pz')) weaks.push(name.slice(0, -3));
      if (name.endsWith('.pz')) sets.push(decodePathSetsRecord(readFileSync(join(ac, fan, name))).sets.map((s) => s.strong));
      if (name.endsWith('.e')) entries.add(name.slice(0, -2));
    }
  return { weaks, sets, entries };
}

const localFile = (kbx: Kbx, kind: 'cas' | 'ac', name: string) => join(kbx.dir, 'store', 'v2', kind, name.slice(0, 2), name);

describe("a fresh machine's local copies of remote hits", { skip }, () => {
  let nginx: Nginx;
  let ref: string;
  let lines: number;
  before(async () => {
    nginx = await new Nginx().start();
    ref = project('fill-ref');
    assert.equal(plainMake(ref).status, 0);
    const a = new Kbx('fill-a', { KBX_REMOTE_STORAGE: nginx.url });
    const r = a.make(project('fill-a'));
    assertBuilt(r);
    lines = summary(r.stderr).stored;
    assert.equal(lines, SAME + 2, r.stderr); // the cat lines and one mkdir (run before each, a hit after the first)
    a.stop();
  });
  after(() => nginx.stop());

  test('every hit is in the local store when kbx make returns; the next build asks the server for nothing but its list', () => {
    const b = new Kbx('fill-b', { KBX_REMOTE_STORAGE: nginx.url });
    const tree = project('fill-b');
    const r = b.make(tree);
    assertBuilt(r);
    assert.equal(summary(r.stderr).misses, 0, r.stderr);
    // Read before anything asks the daemon (kbx stats waits for its writes).
    const local = localRecords(b);
    assert.equal(local.sets.length, lines, 'a path set record for each command');
    for (const strong of local.sets.flat()) assert.ok(local.entries.has(strong), `entry ${strong} in the local store`);
    // A new command's record is kept as the server sent it (every set in it checked), not encoded again.
    for (const weak of local.weaks) assert.deepEqual(readFileSync(localFile(b, 'ac', `${weak}.pz`)), decodeBundle(readFileSync(join(nginx.data, 'kbx', 'ac', pathSetsKey(weak)))).pathSets);
    const blob = sha256(Buffer.from(upper(`${BIG}\n`)));
    assert.ok(existsSync(localFile(b, 'cas', blob)), 'the large blob in the local store');
    const hits = summary(r.stderr).hits;
    const remoteHits = remoteCounts(b, nginx.url).hit!;
    assert.ok(remoteHits >= lines, r.stderr);
    assert.ok(fillCounts(b).entry! >= lines, JSON.stringify(fillCounts(b)));

    const before = nginx.requests().length;
    const again = project('fill-b2');
    const r2 = b.make(again);
    assertBuilt(r2);
    assert.equal(summary(r2.stderr).hits, hits, r2.stderr);
    assert.equal(remoteCounts(b, nginx.url).hit, remoteHits, 'no remote hit in the second build');
    assert.deepEqual(
      nginx.requests().slice(before).map((q) => q.split(' ')[0]),
      ['GET'],
      'the list of lines, nothing else',
    );
    assertSameTree(again, ref);
    b.stop();
  });

  test('a blob many entries name is written once', () => {
    const c = new Kbx('fill-once', { KBX_REMOTE_STORAGE: nginx.url });
    const tree = project('fill-once');
    assertBuilt(c.make(tree));
    const counts = fillCounts(c);
    assert.equal(counts.blob, 2, `the shared output and the large one: ${JSON.stringify(counts)}`);
    // The shared one for each line after the first; the large one when the lookup found it fetched ahead.
    assert.ok(counts['blob-known']! >= SAME - 1, JSON.stringify(counts));
    assertSameTree(tree, ref);
    c.stop();
  });

  test('a blob that does not verify reaches neither the tree nor the local store: that line runs', () => {
    const digest = sha256(Buffer.from(upper(`${BIG}\n`)));
    const file = join(nginx.data, 'kbx', 'cas', digest);
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad.writeUInt8(bad.readUInt8(100) ^ 0x20, 100);
    writeFileSync(file, bad);
    try {
      const d = new Kbx('fill-corrupt', { KBX_REMOTE_STORAGE: `${nginx.url}|read-only` });
      const tree = project('fill-corrupt');
      const r = d.make(tree);
      assertBuilt(r);
      assert.equal(summary(r.stderr).misses, 1, r.stderr);
      assert.equal(remoteCounts(d, nginx.url).corrupt, 1);
      assertSameTree(tree, ref);
      // What the store holds under that name is what the line made, never the server's bytes.
      const store = new LocalStore(d.dir, 1 << 30, 1);
      assert.deepEqual(store.getBlob(digest), Buffer.from(upper(`${BIG}\n`)));
      d.stop();
    } finally {
      writeFileSync(file, good);
    }
  });
});

describe('local copies, unit by unit', () => {
  const events = () => {
    const counts: Record<string, number> = {};
    return { counts, count: (_b: string, name: string, n = 1) => void (counts[name] = (counts[name] ?? 0) + n), log: () => {} };
  };
  const entryOf = (digest: string, size: number): Entry => ({
    outputs: [{ kind: 'file', path: '@make/out.o', digest, mode: 0o644, size }],
    deleted: [],
    stdout: '',
    stderr: '',
    exit: 0,
    durationUs: 1,
    createdMs: 1,
    buildId: 'b',
  });

  test('a copy whose blob cannot be written leaves no entry and no path set, and is counted', async () => {
    const dir = tempDir('fill-unit');
    const store = new LocalStore(dir, 1 << 30, 1);
    const data = Buffer.from('an output\n');
    const digest = sha256(data);
    // The blob's fan-out directory is a file: its write fails.
    mkdirSync(join(store.root, 'cas'), { recursive: true });
    writeFileSync(join(store.root, 'cas', digest.slice(0, 2)), 'in the way');
    const ev = events();
    const fill = new LocalFill(store, ev);
    let installed = false;
    const strong = 'a'.repeat(64);
    fill.entry('b', strong, entryOf(digest, data.length), new Map([[digest, data]]), () => (installed = true));
    assert.deepEqual(fill.pendingBlob(digest), data, 'a restore may use it while it waits');
    await fill.flush();
    assert.equal(installed, false);
    assert.equal(store.getEntry(strong), undefined);
    assert.equal(ev.counts['local fill failed'], 1);
    assert.equal(ev.counts['local fill entry-skipped'], 1);
    assert.equal(fill.pendingBlob(digest), undefined);
  });

  test('the entry is written after its blob, the path set after the entry', async () => {
    const dir = tempDir('fill-order');
    const store = new LocalStore(dir, 1 << 30, 1);
    const data = Buffer.from('another output\n');
    const digest = sha256(data);
    const ev = events();
    const fill = new LocalFill(store, ev);
    const strong = 'b'.repeat(64);
    let seen: [boolean, boolean] | undefined;
    fill.entry('b', strong, entryOf(digest, data.length), new Map([[digest, data]]), () => {
      seen = [store.hasBlob(digest), store.getEntry(strong) !== undefined];
    });
    assert.equal(store.hasBlob(digest), false, 'nothing is written before the answer goes out');
    await fill.flush();
    assert.deepEqual(seen, [true, true]);
    assert.deepEqual(store.getBlob(digest), data);
  });

  test("the read-ahead hands the lookup the bundle it decoded and the sets it verified", async () => {
    const weak = 'c'.repeat(64);
    const entries = [{ k: 'c' as const, p: '@make/in.c', v: 'd'.repeat(64) }];
    const strong = strongFingerprint(weak, entries);
    const entry = entryOf('e'.repeat(64), 3);
    const bundle = encodeBundle({
      pathSets: encodePathSets({ command: 'cc -c in.c', cwd: '/x', sets: [{ strong, entries }] }),
      entries: new Map([[strong, encodeEntry(entry)]]),
      blobs: new Map(),
    });
    const reader = new ReadAhead([weak], {
      get: async (key) => (key === pathSetsKey(weak) ? bundle : undefined),
      blob: async () => true,
      knownLocally: () => false,
      out: () => false,
      hasBlob: () => true,
    });
    reader.start();
    const held = reader.take(pathSetsKey(weak));
    assert.ok(held, 'fetched ahead');
    assert.deepEqual(await held.bytes, bundle);
    assert.ok(held.decoded, 'decoded by the read-ahead before the lookup resumes');
    assert.deepEqual([...held.decoded.verified], [strong]);
    assert.deepEqual(held.decoded.entries.get(strong), entry);
    reader.stop();
  });
});
