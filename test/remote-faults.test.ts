// A shared store that fails never fails or stalls a build: each fault below
// leaves a successful build equal to plain make, the store taken out after its
// first failure (for every line, not per line), and the counters showing it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Entry } from '../src/store/store.js';
import { decodeBuildLines, decodeBundle, decodeRemoteEntry, decodeRemotePathSets } from '../src/store/remote/wire.js';
import { Kbx, SHARED_ITEMS, SHARED_MAKEFILE, assertSameTree, copyFixture, plainMake, snapshot, summary, tempDir, writeTree, type RunResult } from './support/kbx.js';
import { Nginx, freePort, startNginx } from './support/nginx.js';
import { TrickleProxy } from './support/trickle-proxy.js';
import { assertBuilt, reference, remoteCounts, rewriteBundles, secondMachineTree, stripInline } from './support/remote.js';
import { program, unlessMissing } from './support/tools.js';

const skip = unlessMissing(program('nginx', 'nginx'), program('gcc', 'gcc'));
// The pipeline fixture's cacheable lines.
const LINES = 12;

// Goals that wait for the test: wait<N>.txt says started<N>, then waits (bounded) for go<N>.
const WAIT_MK = 'wait%.txt:\n\ttouch started$*; for i in $$(seq 600); do [ -e go$* ] && break; sleep 0.05; done; echo waited > $@\n';

async function waitFor(tree: string, name: string): Promise<void> {
  for (let i = 0; i < 600 && !existsIn(tree, name); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(existsIn(tree, name), `${name} never appeared`);
}

const machine = (name: string, remote: string) => new Kbx(name, { KBX_REMOTE_STORAGE: remote });

/** The first machine builds the pipeline against the store and uploads; returns its tree. */
function fill(remote: string): string {
  const a = machine('fill', remote);
  const tree = copyFixture('pipeline', 'fill');
  const r = a.make(tree);
  assertBuilt(r);
  assert.equal(remoteCounts(a, remote).uploaded, LINES, r.stderr);
  a.stop();
  return tree;
}

/** The files a server holds under kind ('cas' or 'ac'). */
function stored(nginx: Nginx, kind: 'cas' | 'ac'): string[] {
  const dir = join(nginx.data, 'kbx', kind);
  return readdirSync(dir).map((n) => join(dir, n));
}

/** The server's entry records (the other ac records are bundles of path sets and a list of lines). */
function entryFiles(nginx: Nginx): string[] {
  return stored(nginx, 'ac').filter((f) => {
    try {
      return 'outputs' in (JSON.parse(gunzipSync(readFileSync(f)).toString()) as object);
    } catch {
      return false;
    }
  });
}

function timedMake(kbx: Kbx, tree: string): { r: RunResult; ms: number } {
  const t0 = Date.now();
  const r = kbx.make(tree);
  return { r, ms: Date.now() - t0 };
}

describe('shared store faults', { skip }, () => {
  let ref: string;
  before(() => {
    ref = reference('pipeline');
  });

  test('a server refusing connections: one error, the build goes on local-only and says so once', async (t) => {
    const url = `http://127.0.0.1:${await freePort()}/kbx`;
    const kbx = machine('refused', url);
    const tree = copyFixture('pipeline', 'refused');
    const r = kbx.make(tree);
    assertBuilt(r);
    assert.equal(summary(r.stderr).stored, LINES, r.stderr);
    assert.deepEqual(remoteCounts(kbx, url), { error: 1 });
    assert.equal(r.stderr.match(/shared store .* failed/g)?.length, 1, r.stderr);
    assertSameTree(tree, ref);
    kbx.stop();
  });

  test('a frozen server costs about one operation timeout, once, then the build goes on', async (t) => {
    const nginx = await startNginx(t);
    const timeoutMs = 1000;
    const url = `${nginx.url}|operation-timeout=${timeoutMs}`;
    const local = new Kbx('frozen-baseline');
    const base = timedMake(local, copyFixture('pipeline', 'frozen-baseline'));
    assertBuilt(base.r);
    local.stop();
    const kbx = machine('frozen', url);
    const tree = copyFixture('pipeline', 'frozen');
    nginx.freeze();
    let run;
    try {
      run = timedMake(kbx, tree);
    } finally {
      await nginx.stop();
    }
    assertBuilt(run.r);
    assert.deepEqual(remoteCounts(kbx, nginx.url), { timeout: 1 });
    // Loosely, in units of the timeout: one timed-out request, not one per line
    // (that would be 12); the margin absorbs a loaded machine.
    assert.ok(run.ms - base.ms < 6 * timeoutMs, `frozen server: ${run.ms} ms, local only: ${base.ms} ms`);
    assertSameTree(tree, ref);
    kbx.stop();
  });

  test('a server trickling its answers is cut off by the operation timeout', async (t) => {
    const nginx = await startNginx(t);
    const proxy = await new TrickleProxy(nginx.port, 4, 100).start();
    t.after(() => proxy.stop());
    const url = `http://127.0.0.1:${proxy.port}/kbx|operation-timeout=500`;
    const kbx = machine('slow', url);
    const tree = copyFixture('pipeline', 'slow');
    const r = kbx.make(tree);
    await proxy.stop();
    await nginx.stop();
    assertBuilt(r);
    assert.deepEqual(remoteCounts(kbx, `http://127.0.0.1:${proxy.port}/kbx`), { timeout: 1 });
    assertSameTree(tree, ref);
    kbx.stop();
  });

  test('a server restarted between two requests of a build costs nothing: every line still hits', async (t) => {
    const nginx = await startNginx(t);
    const treeA = fill(nginx.url);
    const kbx = machine('restart', nginx.url);
    const tree = secondMachineTree('pipeline', treeA);
    writeTree(tree, { 'wait.mk': WAIT_MK });
    const done = kbx.makeAsync(tree, ['-f', 'Makefile', '-f', 'wait.mk', 'wait1.txt', 'all']);
    await waitFor(tree, 'started1');
    await nginx.stop();
    await nginx.start();
    writeFileSync(join(tree, 'go1'), '');
    const r = await done;
    assertBuilt(r);
    assert.equal(summary(r.stderr).hits, LINES, r.stderr);
    assert.equal(remoteCounts(kbx, nginx.url).error ?? 0, 0);
    for (const f of ['wait.mk', 'wait1.txt', 'started1', 'go1']) rmSync(join(tree, f));
    assertSameTree(tree, ref);
    kbx.stop();
    await nginx.stop();
  });

  test('a server down mid-build and back: out for the rest of that build (one error), used again by the next', async (t) => {
    const nginx = await startNginx(t);
    const treeA = fill(nginx.url);
    const kbx = machine('down-and-back', nginx.url);
    const tree = secondMachineTree('pipeline', treeA);
    writeTree(tree, { 'wait.mk': WAIT_MK });
    const done = kbx.makeAsync(tree, ['-f', 'Makefile', '-f', 'wait.mk', 'wait1.txt', 'all', 'wait2.txt']);
    await waitFor(tree, 'started1');
    await nginx.stop();
    writeFileSync(join(tree, 'go1'), '');
    await waitFor(tree, 'started2');
    await nginx.start();
    writeFileSync(join(tree, 'go2'), '');
    const r = await done;
    assertBuilt(r);
    const s = summary(r.stderr);
    assert.equal(s.hits, 0, r.stderr);
    assert.deepEqual(remoteCounts(kbx, nginx.url), { miss: 1, error: 1 }); // wait1's lookup, then the first after the stop
    for (const f of ['wait.mk', 'wait1.txt', 'wait2.txt', 'started1', 'started2', 'go1', 'go2']) rmSync(join(tree, f));
    assertSameTree(tree, ref);
    kbx.stop();

    const c = machine('after-restart', nginx.url);
    const r2 = c.make(secondMachineTree('pipeline', tree));
    assertBuilt(r2);
    assert.equal(summary(r2.stderr).hits, LINES, r2.stderr);
    c.stop();
    await nginx.stop();
  });

  test('a corrupted blob, a truncated blob and an empty 2xx body are counted misses; those lines run, the rest hit', async (t) => {
    const nginx = await startNginx(t);
    const treeA = fill(nginx.url);
    // The faults are in what readers fetch under its own key (outputs too large to travel inline).
    stripInline(join(nginx.data, 'kbx', 'ac'));
    const entries = entryFiles(nginx).map((f) => ({ f, e: decodeRemoteEntry(readFileSync(f)) }));
    const withFiles = entries.filter(({ e }) => e.outputs.some((o) => o.kind === 'file' && o.size > 16));
    const [one, two, three] = withFiles;
    const blobOf = (e: Entry) => join(nginx.data, 'kbx', 'cas', (e.outputs.find((o) => o.kind === 'file' && o.size > 16) as { digest: string }).digest);
    const corrupt = blobOf(one!.e);
    const bytes = readFileSync(corrupt);
    const mid = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(mid) ^ 0xff, mid);
    writeFileSync(corrupt, bytes);
    truncateSync(blobOf(two!.e), statSync(blobOf(two!.e)).size >> 1);
    writeFileSync(three!.f, ''); // nginx answers 200 with no body

    const kbx = machine('corrupt', nginx.url);
    const tree = secondMachineTree('pipeline', treeA);
    const r = kbx.make(tree);
    assertBuilt(r);
    const s = summary(r.stderr);
    assert.equal(s.misses, 3, r.stderr);
    assert.equal(s.hits, LINES - 3, r.stderr);
    const counts = remoteCounts(kbx, nginx.url);
    assert.equal(counts.corrupt, 3, JSON.stringify(counts));
    assert.equal(counts.error ?? 0, 0, 'bad data is not a server fault');
    assert.equal(counts.hit, LINES - 3);
    assertSameTree(tree, ref);
    kbx.stop();
    await nginx.stop();
  });

  test('a blob inline in a bundle that does not hash to its name is a counted miss; that line runs', async (t) => {
    const nginx = await startNginx(t);
    const treeA = fill(nginx.url);
    let damaged = 0;
    rewriteBundles(join(nginx.data, 'kbx', 'ac'), (b) => {
      const first = [...b.blobs.values()].find((x) => x.length > 16);
      if (damaged || !first) return;
      first.writeUInt8(first.readUInt8(8) ^ 0xff, 8);
      damaged++;
    });
    assert.equal(damaged, 1);
    const kbx = machine('inline-corrupt', nginx.url);
    const tree = secondMachineTree('pipeline', treeA);
    const r = kbx.make(tree);
    assertBuilt(r);
    assert.equal(summary(r.stderr).misses, 1, r.stderr);
    assert.equal(remoteCounts(kbx, nginx.url).corrupt, 1);
    assertSameTree(tree, ref);
    kbx.stop();
    await nginx.stop();
  });

  test('a blob evicted under an entry that names it: a counted miss, that line runs', async (t) => {
    const nginx = await startNginx(t);
    const treeA = fill(nginx.url);
    stripInline(join(nginx.data, 'kbx', 'ac'));
    const e = entryFiles(nginx)
      .map((f) => decodeRemoteEntry(readFileSync(f)))
      .find((x) => x.outputs.some((o) => o.kind === 'file'))!;
    const digest = (e.outputs.find((o) => o.kind === 'file') as { digest: string }).digest;
    rmSync(join(nginx.data, 'kbx', 'cas', digest));
    const kbx = machine('evicted', nginx.url);
    const tree = secondMachineTree('pipeline', treeA);
    const r = kbx.make(tree);
    assertBuilt(r);
    assert.ok(summary(r.stderr).misses >= 1, r.stderr);
    assert.ok((remoteCounts(kbx, nginx.url)['blob-missing'] ?? 0) >= 1);
    assertSameTree(tree, ref);
    kbx.stop();
    await nginx.stop();
  });

  test('a hostile entry on the server (an output outside the build roots), inline in a bundle, is refused; nothing is written there', async (t) => {
    const nginx = await startNginx(t);
    const treeA = fill(nginx.url);
    const outside = join(tempDir('remote-hostile'), 'evil');
    let done = false;
    rewriteBundles(join(nginx.data, 'kbx', 'ac'), (b) => {
      for (const [strong, data] of b.entries) {
        const entry = decodeRemoteEntry(data);
        const out = entry.outputs.find((o) => o.kind === 'file');
        if (done || !out) continue;
        out.path = outside;
        b.entries.set(strong, gzipSync(JSON.stringify(entry)));
        done = true;
      }
    });
    assert.ok(done);
    const kbx = machine('hostile', nginx.url);
    const tree = secondMachineTree('pipeline', treeA);
    const r = kbx.make(tree);
    assertBuilt(r);
    assert.equal(remoteCounts(kbx, nginx.url)['hostile-entry'], 1);
    assert.equal(summary(r.stderr).misses, 1, r.stderr);
    assert.ok(!existsIn(outside, ''), 'wrote outside the build roots');
    assertSameTree(tree, ref);
    kbx.stop();
    await nginx.stop();
  });

  test('read-only by the server (403 on PUT): reads go on, uploads stop after the first refusal, said once', async (t) => {
    const writable = await startNginx(t);
    const treeA = fill(writable.url);
    await writable.stop();
    const nginx = await startNginx(t, { readOnly: true, data: writable.data });
    const kbx = machine('server-ro', nginx.url);
    const tree = secondMachineTree('pipeline', treeA);
    const edited = copyFixture('pipeline', 'server-ro-reference');
    for (const dir of [tree, edited]) writeFileSync(join(dir, 'note.txt'), 'PLACEHOLDER: a new note\n');
    assert.equal(plainMake(edited).status, 0);
    const r = kbx.make(tree);
    assertBuilt(r);
    const s = summary(r.stderr);
    assert.ok(s.hits > 0 && s.misses > 0, r.stderr);
    assert.match(r.stderr, /shared store .* refused uploads \(.*HTTP 403\); it was only read from/);
    const counts = remoteCounts(kbx, nginx.url);
    assert.equal(counts.error, 1, JSON.stringify(counts));
    assert.equal(counts.hit, s.hits);
    const puts = nginx.requests().filter((q) => q.startsWith('PUT'));
    assert.ok(puts.length >= 1 && puts.length <= 4, puts.join('\n')); // at most the uploads already under way
    for (const p of puts) assert.match(p, / 403$/);
    assertSameTree(tree, edited);
    kbx.stop();
    await nginx.stop();
  });

  test("kbx's read-only attribute: lookups, and not one write request", async (t) => {
    const nginx = await startNginx(t);
    const kbx = machine('attr-ro', `${nginx.url}|read-only`);
    const tree = copyFixture('pipeline', 'attr-ro');
    const r = kbx.make(tree);
    assertBuilt(r);
    assert.equal(summary(r.stderr).stored, LINES);
    const methods = nginx.requests().map((q) => q.split(' ')[0]);
    assert.equal(methods.filter((m) => m !== 'GET').length, 0, methods.join(' '));
    // One lookup per line, and the list of lines the last build left (read-ahead.ts).
    assert.equal(methods.length, LINES + 1, methods.join(' '));
    assert.deepEqual(remoteCounts(kbx, nginx.url), { miss: LINES });
    assertSameTree(tree, ref);
    kbx.stop();
    await nginx.stop();
  });

  test('wrong credentials (401): one error, and the secret is in no log, counter, record or message', async (t) => {
    const secret = 'Wr0ngSecret';
    const nginx = await startNginx(t, { user: { name: 'ci', password: 'right' } });
    const url = nginx.url.replace('//', `//ci:${secret}@`);
    const display = nginx.url.replace('//', '//ci:***@');
    const kbx = machine('wrong-creds', url);
    const tree = copyFixture('pipeline', 'wrong-creds');
    const r = kbx.make(tree);
    assertBuilt(r);
    assert.deepEqual(remoteCounts(kbx, display), { error: 1 });
    assert.match(r.stderr, /shared store http:\/\/ci:\*\*\*@127\.0\.0\.1:\d+\/kbx failed \(.*HTTP 401\)/);
    const stats = kbx.run(['stats']);
    const config = kbx.run(['config'], { env: { KBX_REMOTE_STORAGE: url } });
    kbx.stop();
    const texts = [r.stdout, r.stderr, stats.stdout, config.stdout];
    for (const [name, data] of snapshot(kbx.dir)) texts.push(name.endsWith('.gz') ? gunzipSync(data).toString() : data.toString());
    for (const t of texts) assert.ok(!t.includes(secret), `the secret leaked:\n${t.slice(0, 2000)}`);
    assertSameTree(tree, ref);
    await nginx.stop();
  });

  test('two builds writing the same keys at once leave records every reader can parse', async (t) => {
    const nginx = await startNginx(t);
    const tree = join(tempDir('remote-two-writers'), 'proj');
    const refTree = join(tempDir('remote-two-writers-ref'), 'proj');
    writeTree(tree, { Makefile: SHARED_MAKEFILE });
    writeTree(refTree, { Makefile: SHARED_MAKEFILE });
    assert.equal(plainMake(refTree, ['-j2']).status, 0);
    const [a, b] = [machine('writer-a', nginx.url), machine('writer-b', nginx.url)];
    const [ra, rb] = await Promise.all([a.makeAsync(tree, ['-j2']), b.makeAsync(tree, ['-j2'])]);
    assertBuilt(ra);
    assertBuilt(rb);
    a.stop();
    b.stop();
    for (const f of stored(nginx, 'ac')) {
      const data = readFileSync(f);
      if (data.subarray(0, 4).toString() === 'KBXB') {
        const b = decodeBundle(data);
        decodeRemotePathSets(b.pathSets);
        for (const e of b.entries.values()) decodeRemoteEntry(e);
        continue;
      }
      const json = JSON.parse(gunzipSync(data).toString()) as object;
      if ('outputs' in json) decodeRemoteEntry(data);
      else if ('lines' in json) decodeBuildLines(data);
      else decodeRemotePathSets(data);
    }
    // A third machine in a clean tree: most lines come from what the two wrote.
    for (const f of readdirSync(tree)) if (f !== 'Makefile') rmSync(join(tree, f));
    const c = machine('reader-c', nginx.url);
    const r = c.make(tree, ['-j2']);
    assertBuilt(r);
    assert.ok(summary(r.stderr).hits >= SHARED_ITEMS / 2, r.stderr);
    assert.equal(remoteCounts(c, nginx.url).corrupt ?? 0, 0);
    assertSameTree(tree, refTree);
    c.stop();
    await nginx.stop();
  });
});

function existsIn(dir: string, name: string): boolean {
  try {
    statSync(join(dir, name));
    return true;
  } catch {
    return false;
  }
}

