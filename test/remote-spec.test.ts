// remote_storage is written as ccache users know it; every mistake names the
// item and what to write, and no output ever shows a password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { maskSecrets, parseRemoteStorage, shardSpec } from '../src/store/remote/spec.js';
import { pickShard } from '../src/store/remote/shard.js';
import { KbxError } from '../src/util/errors.js';
import { Kbx, tempDir } from './support/kbx.js';

const refused = (text: string, re: RegExp) =>
  assert.throws(
    () => parseRemoteStorage(text),
    (err: unknown) => err instanceof KbxError && err.code === 'KBX_BAD_REMOTE' && re.test(err.message + '\n' + (err.hint ?? '')),
  );

test('items, attributes and defaults as ccache writes them', () => {
  const [a, b] = parseRemoteStorage('  http://cache:8080/kbx|read-only|operation-timeout=5000\thttps://u:p%40ss@ci.example/x/  ');
  assert.equal(a!.url.href, 'http://cache:8080/kbx');
  assert.equal(a!.readOnly, true);
  assert.equal(a!.operationTimeoutMs, 5000);
  assert.equal(a!.connectTimeoutMs, 1000);
  assert.equal(b!.readOnly, false);
  assert.equal(decodeURIComponent(b!.url.password), 'p@ss');
  assert.equal(b!.display, 'https://u:***@ci.example/x');
  assert.deepEqual(parseRemoteStorage(''), []);
});

test('shards: a * in the URL and the names that replace it, each key on one shard by rendezvous hashing', () => {
  const [s] = parseRemoteStorage('http://cache-*.lan:8080/kbx|shards=a,b,c');
  assert.deepEqual(s!.shards, ['a', 'b', 'c']);
  assert.equal(shardSpec(s!, 'b').url.href, 'http://cache-b.lan:8080/kbx');
  const counts = [0, 0, 0];
  for (let i = 0; i < 300; i++) counts[pickShard(s!.shards, `key${i}`)]!++;
  for (const c of counts) assert.ok(c > 50, `uneven shards: ${counts.join(' ')}`);
  // Removing a shard moves only the keys it held.
  for (let i = 0; i < 300; i++) {
    const k = `key${i}`;
    if (pickShard(['a', 'b', 'c'], k) !== 2) assert.equal(pickShard(['a', 'b'], k), pickShard(['a', 'b', 'c'], k));
  }
  refused('http://cache-*.lan/kbx', /needs shards=/);
  refused('http://cache.lan/kbx|shards=a,b', /needs a '\*'/);
});

test('a bad URL, scheme or attribute is an error naming it and what to write', () => {
  refused('cache:8080', /not a URL/);
  refused('ftp://cache/kbx', /unknown scheme 'ftp:'.*http:\/\//s);
  refused('http://cache/kbx|readonly', /unknown attribute 'readonly'.*read-only/s);
  refused('http://cache/kbx|operation-timeout=fast', /operation-timeout=fast: write a number of milliseconds/);
  refused('http://cache/kbx|cluster', /for redis\/rediss URLs only/);
  refused('redis://cache:6379/cache', /database number/);
  refused('redis://u:secret@cache:6379/1|cluster', /only database 0/);
  refused('redis://cache-*:6379/x|shards=a,b', /database number/);
  refused('http://u:secret@cache/kbx|bogus', /u:\*\*\*@cache/);
  refused('http://cache/kbx http://cache/kbx', /listed twice/);
  refused('http://cache/kbx|password-file=relative', /absolute path/);
});

test('a password-file gives the password; it shows nowhere', () => {
  const dir = tempDir('remote-pw');
  const file = join(dir, 'pw');
  writeFileSync(file, 's3cret\n');
  const [s] = parseRemoteStorage(`http://ci@cache/kbx|password-file=${file}`);
  assert.equal(s!.url.password, 's3cret');
  assert.equal(s!.display, 'http://ci:***@cache/kbx');
  refused(`http://cache/kbx|password-file=${join(dir, 'none')}`, /cannot read password-file/);
  assert.equal(maskSecrets('a http://u:pw@h/x|read-only b'), 'a http://u:***@h/x|read-only b');
  assert.equal(maskSecrets('http://u:p@ss@h/x http://v:w@h2'), 'http://u:***@h/x http://v:***@h2');
});

test('kbx config shows remote_storage with secrets masked; a bad value names the variable', () => {
  const kbx = new Kbx('remote-config');
  const ok = kbx.run(['config'], { env: { KBX_REMOTE_STORAGE: 'http://ci:hunter2@cache:8080/kbx|read-only' } });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^remote_storage = http:\/\/ci:\*\*\*@cache:8080\/kbx\|read-only {2}\(KBX_REMOTE_STORAGE\)$/m);
  assert.doesNotMatch(ok.stdout + ok.stderr, /hunter2/);
  const bad = kbx.run(['config'], { env: { KBX_REMOTE_STORAGE: 'http://ci:hunter2@cache/kbx|nope' } });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /KBX_BAD_REMOTE.*KBX_REMOTE_STORAGE.*unknown attribute 'nope'/);
  assert.doesNotMatch(bad.stderr, /hunter2/);
});

test('the daemon loads the HTTP and Redis clients only when a store of that kind is opened', () => {
  // undici and ioredis cost ~250 ms of CPU to load, on every daemon start (a fresh CI runner's among them).
  const src = `
    import { createRequire } from 'node:module';
    const { openBackend } = await import(${JSON.stringify(new URL('../src/store/remote/open.js', import.meta.url).href)});
    const { parseRemoteStorage } = await import(${JSON.stringify(new URL('../src/store/remote/spec.js', import.meta.url).href)});
    const cache = createRequire(import.meta.url).cache;
    const loaded = (name) => Object.keys(cache).some((p) => p.includes('/node_modules/' + name + '/'));
    const before = [loaded('undici'), loaded('ioredis')];
    const b = openBackend(parseRemoteStorage('http://127.0.0.1:9/kbx')[0]);
    await b.close();
    console.log(JSON.stringify({ before, after: [loaded('undici'), loaded('ioredis')] }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { before: [false, false], after: [true, false] });
});
