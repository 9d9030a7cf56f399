// A shared HTTP store on a real nginx with WebDAV: the backend speaks
// bazel-remote's layout, and a second machine with an empty local store
// builds every cacheable line from what the first one uploaded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openBackend } from '../src/store/remote/open.js';
import { parseRemoteStorage } from '../src/store/remote/spec.js';
import { RemoteError } from '../src/store/remote/backend.js';
import { sha256 } from '../src/util/hash.js';
import { Kbx, assertSameTree, copyFixture, summary, tempDir, writeTree } from './support/kbx.js';
import { Nginx, freePort } from './support/nginx.js';
import { assertBuilt, reference, remoteCounts, secondMachineTree } from './support/remote.js';
import { program, unlessMissing } from './support/tools.js';

const skip = unlessMissing(program('nginx', 'nginx'), program('gcc', 'gcc'));

describe('the HTTP backend against nginx', { skip }, () => {
  const nginx = new Nginx({ user: { name: 'ci', password: 'pw' } });
  before(() => nginx.start());
  after(() => nginx.stop());
  const open = (attrs = '', creds = 'ci:pw@') => openBackend(parseRemoteStorage(nginx.url.replace('//', `//${creds}`) + attrs)[0]!);

  test('blobs under /cas/<sha256>, records under /ac/<key>; a missing key is undefined', async () => {
    const b = open();
    const data = Buffer.from('an object file');
    const digest = sha256(data);
    assert.equal(await b.get('cas', digest), undefined);
    assert.equal(await b.has!('cas', digest), false);
    await b.put('cas', digest, data);
    await b.put('ac', 'a'.repeat(64), Buffer.from('record'));
    assert.deepEqual(await b.get('cas', digest), data);
    assert.equal(await b.has!('cas', digest), true);
    assert.deepEqual(await b.get('ac', 'a'.repeat(64)), Buffer.from('record'));
    assert.ok(existsSync(join(nginx.data, 'kbx', 'cas', digest)));
    assert.ok(existsSync(join(nginx.data, 'kbx', 'ac', 'a'.repeat(64))));
    await b.close();
  });

  test('wrong credentials are an auth error that names the store without its password', async () => {
    const b = open('', 'ci:wrong@');
    await assert.rejects(b.get('cas', 'b'.repeat(64)), (err: unknown) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.kind, 'auth');
      assert.doesNotMatch(err.message, /wrong/);
      assert.match(err.message, /ci:\*\*\*@127\.0\.0\.1/);
      return true;
    });
    await b.close();
  });

  test('a refused connection is an error, a frozen server a timeout within the operation timeout', async () => {
    const refused = openBackend(parseRemoteStorage(`http://127.0.0.1:${await freePort()}/kbx`)[0]!);
    await assert.rejects(refused.get('cas', 'c'.repeat(64)), (err: unknown) => err instanceof RemoteError && err.kind === 'error');
    await refused.close();
    const b = open('|operation-timeout=300');
    nginx.freeze();
    try {
      await assert.rejects(b.get('cas', 'c'.repeat(64)), (err: unknown) => err instanceof RemoteError && err.kind === 'timeout');
    } finally {
      nginx.thaw();
    }
    await b.close();
  });

  test('kbx remote check says whether each store can be read and written, without the password', () => {
    const kbx = new Kbx('remote-check');
    const good = `${nginx.url.replace('//', '//ci:pw@')} ${nginx.url.replace('//', '//other:nope@')}|read-only`;
    const r = kbx.run(['remote', 'check'], { env: { KBX_REMOTE_STORAGE: good } });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const [ok, bad] = r.stdout.trim().split('\n');
    assert.match(ok!, /^http:\/\/ci:\*\*\*@127\.0\.0\.1:\d+\/kbx: reachable, [\d.]+ ms a request; read ok; write ok$/);
    assert.match(bad!, /^http:\/\/other:\*\*\*@127\.0\.0\.1:\d+\/kbx: GET ac\/\w+: HTTP 401$/);
    assert.doesNotMatch(r.stdout + r.stderr, /nope|:pw@/);
  });
});

describe('two machines share one nginx', { skip }, () => {
  const nginx = new Nginx();
  let ref: string;
  before(async () => {
    await nginx.start();
    ref = reference('pipeline');
  });
  after(() => nginx.stop());

  test('the first builds cold and uploads; the second, with an empty store, hits every line and equals plain make', () => {
    const a = new Kbx('machine-a', { KBX_REMOTE_STORAGE: nginx.url });
    const treeA = copyFixture('pipeline', 'machine-a');
    const first = a.make(treeA);
    assertBuilt(first);
    const s1 = summary(first.stderr);
    assert.equal(s1.stored, s1.misses, first.stderr);
    assert.ok(s1.misses >= 11, first.stderr);
    assert.equal(remoteCounts(a, nginx.url).uploaded, s1.stored);
    assert.ok(readdirSync(join(nginx.data, 'kbx', 'cas')).length > 0);
    a.stop();

    const b = new Kbx('machine-b', { KBX_REMOTE_STORAGE: nginx.url });
    const treeB = secondMachineTree('pipeline', treeA);
    const served = nginx.requests().length;
    const second = b.make(treeB);
    const reads = nginx.requests().slice(served).filter((x) => /^(GET|HEAD) /.test(x));
    assertBuilt(second);
    const s2 = summary(second.stderr);
    assert.equal(s2.misses, 0, second.stderr);
    assert.equal(s2.hits, s1.misses, second.stderr);
    assert.match(second.stderr, new RegExp(`${s2.hits} hits \\(${s2.hits} from shared stores\\)`));
    const counts = remoteCounts(b, nginx.url);
    assert.equal(counts.hit, s2.hits);
    assert.ok((counts['bytes-down'] ?? 0) > 0);
    assert.equal(counts.uploaded ?? 0, 0, 'a hit uploads nothing');
    // One request a hit: the command's bundle carries its entry and small
    // blobs. Beside them, the list of lines, and the first line's bundle may
    // be asked for twice (by its lookup and by the read-ahead).
    assert.ok(reads.length <= s2.hits + 2, `${reads.length} reads for ${s2.hits} hits:\n${reads.join('\n')}`);
    assert.ok(reads.every((x) => x.includes('/kbx/ac/')), reads.join('\n'));
    assertSameTree(treeB, ref);
    b.stop();
  });

  test("a hard link of an input, which keeps no blob, is a hit on the second machine: linked again", () => {
    // 40 KiB: more than a bundle carries inline, so nothing but the link can restore it.
    const files = { 'src.bin': 'x'.repeat(40 << 10), Makefile: 'all: link.bin\nlink.bin: src.bin\n\tln -f src.bin link.bin\n' };
    const tree = (tag: string) => {
      const dir = join(tempDir(`links-${tag}`), 'proj');
      writeTree(dir, files);
      return dir;
    };
    const a = new Kbx('links-a', { KBX_REMOTE_STORAGE: nginx.url });
    assert.equal(summary(a.make(tree('a')).stderr).stored, 1);
    a.stop();
    const b = new Kbx('links-b', { KBX_REMOTE_STORAGE: nginx.url });
    const treeB = tree('b');
    const r = b.make(treeB);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stderr).hits, 1, r.stderr);
    assert.equal(remoteCounts(b, nginx.url)['blob-missing'] ?? 0, 0);
    const [src, link] = ['src.bin', 'link.bin'].map((f) => statSync(join(treeB, f)));
    assert.equal(link!.ino, src!.ino, 'restored as a hard link of src.bin');
    b.stop();
  });
});
