// Shared stores on real Redis servers through `kbx make`: a second machine
// with an empty local store builds every cacheable line from what the first
// uploaded, to one server or to a 3-master cluster, and a server that fails
// (frozen, full, a cluster master killed) costs hits, never the build or its
// outputs.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Kbx, assertSameTree, copyFixture, summary } from './support/kbx.js';
import { RedisCluster, RedisServer, redisNeeds } from './support/redis.js';
import { assertBuilt, reference, remoteCounts, secondMachineTree } from './support/remote.js';
import { program, unlessMissing } from './support/tools.js';

const skip = unlessMissing(...redisNeeds, program('gcc', 'gcc'));
const FIXTURE = 'pipeline';

/** Machine A builds cold and uploads to `storage`; returns its tree and how many lines it stored. */
function firstMachine(name: string, storage: string, display: string): { tree: string; stored: number } {
  const a = new Kbx(`${name}-a`, { KBX_REMOTE_STORAGE: storage });
  try {
    const tree = copyFixture(FIXTURE, `${name}-a`);
    const r = a.make(tree);
    assertBuilt(r);
    const s = summary(r.stderr);
    assert.equal(s.stored, s.misses, r.stderr);
    assert.ok(s.misses >= 11, r.stderr);
    assert.equal(remoteCounts(a, display).uploaded, s.stored, r.stderr);
    return { tree, stored: s.stored };
  } finally {
    a.stop();
  }
}

/** Machine B: an empty local store, the same tree; its build, checked against plain make. */
function secondMachine(name: string, storage: string, first: string, ref: string) {
  const b = new Kbx(`${name}-b`, { KBX_REMOTE_STORAGE: storage });
  try {
    const tree = secondMachineTree(FIXTURE, first);
    const r = b.make(tree);
    assertBuilt(r);
    assertSameTree(tree, ref);
    return { run: r, s: summary(r.stderr), counts: (display: string) => remoteCounts(b, display) };
  } finally {
    b.stop();
  }
}

describe('two machines share one Redis server', { skip }, () => {
  let server: RedisServer;
  let ref: string;
  before(async () => {
    server = await RedisServer.start();
    ref = reference(FIXTURE);
  });
  after(async () => server?.stop());

  test('the second machine hits every line from Redis, byte-identical to plain make', () => {
    const url = server.url('', '/2');
    const first = firstMachine('redis', url, url);
    assert.ok(Number(server.cli('-n', '2', 'dbsize').trim()) > first.stored, 'blobs and records under kbx:cas:/kbx:ac:');
    assert.match(server.cli('-n', '2', 'keys', 'kbx:cas:*'), /^kbx:cas:[0-9a-f]{64}$/m);
    const second = secondMachine('redis', url, first.tree, ref);
    assert.equal(second.s.misses, 0, second.run.stderr);
    assert.equal(second.s.hits, first.stored, second.run.stderr);
    const c = second.counts(url);
    assert.equal(c.hit, second.s.hits);
    assert.ok((c['bytes-down'] ?? 0) > 0);
    assert.equal(c.error ?? 0, 0);
  });

  test('a frozen server: the build goes on local-only, outputs as plain make, one timeout counted', () => {
    const url = `${server.url('', '/3')}|operation-timeout=300|connect-timeout=300`;
    const display = server.url('', '/3');
    const first = firstMachine('redis-frozen', url, display);
    server.freeze();
    try {
      const second = secondMachine('redis-frozen', url, first.tree, ref);
      assert.equal(second.s.hits, 0, second.run.stderr);
      assert.equal(second.counts(display).timeout, 1, second.run.stderr);
      assert.match(second.run.stderr, /shared store redis:\/\/127\.0\.0\.1:\d+\/3 failed .*timed out.*went on without it/);
    } finally {
      server.thaw();
    }
  });
});

describe('Redis credentials through kbx make', { skip }, () => {
  let server: RedisServer;
  let ref: string;
  before(async () => {
    server = await RedisServer.start([
      'user default on nopass ~* &* +@all',
      'user ci on >ci-pass ~* &* +@all',
      'user dev on >dev-pass ~kbx:* +@read +select', // as README suggests
    ]);
    ref = reference(FIXTURE);
  });
  after(async () => server?.stop());

  test('an ACL read-only user gets every hit and writes nothing; a cold build with it refuses uploads once, as plain make', () => {
    const ci = server.url('ci:ci-pass', '/4');
    const first = firstMachine('redis-acl', ci, server.url('ci:***', '/4'));
    const dev = server.url('dev:dev-pass', '/4');
    const devDisplay = server.url('dev:***', '/4');
    const second = secondMachine('redis-acl', dev, first.tree, ref);
    assert.equal(second.s.misses, 0, second.run.stderr);
    assert.equal(second.counts(devDisplay).hit, first.stored);

    const cold = new Kbx('redis-acl-cold', { KBX_REMOTE_STORAGE: server.url('dev:dev-pass', '/5') });
    try {
      const tree = copyFixture(FIXTURE, 'redis-acl-cold');
      const r = cold.make(tree);
      assertBuilt(r);
      assertSameTree(tree, ref);
      const c = remoteCounts(cold, server.url('dev:***', '/5'));
      assert.equal(c.error, 1, r.stderr);
      assert.equal(c.uploaded ?? 0, 0, r.stderr);
      assert.equal(server.cli('-n', '5', 'dbsize').trim(), '0');
      assert.match(r.stderr, /NOPERM/);
    } finally {
      cold.stop();
    }
  });

  test('a wrong password: the build is plain make, and the password is in no output, stat or record', () => {
    const secret = 'Wrong-Secret-5150';
    const kbx = new Kbx('redis-wrongpass', { KBX_REMOTE_STORAGE: server.url(`ci:${secret}`) });
    try {
      const tree = copyFixture(FIXTURE, 'redis-wrongpass');
      const r = kbx.make(tree);
      assertBuilt(r);
      assertSameTree(tree, ref);
      assert.match(r.stderr, /WRONGPASS/);
      assert.equal(remoteCounts(kbx, server.url('ci:***')).error, 1, r.stderr);
      const shown = [r.stdout, r.stderr, kbx.run(['stats']).stdout, kbx.run(['config']).stdout];
      for (const text of [...shown, ...filesUnder(kbx.dir)]) assert.ok(!text.includes(secret), 'the password leaked');
    } finally {
      kbx.stop();
    }
  });
});

/** Every file under dir as text, gzip'd ones unpacked (build records), other than the configuration the user wrote. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const p = join(dir, name);
    if (!statSync(p).isFile()) continue;
    const data = readFileSync(p);
    out.push((p.endsWith('.gz') ? gunzipSync(data) : data).toString('latin1'));
  }
  return out;
}

describe('a full Redis server (maxmemory, noeviction)', { skip }, () => {
  test('uploads stop with the server full; the build and its outputs are as plain make', async () => {
    const server = await RedisServer.start(['maxmemory-policy noeviction']);
    try {
      const used = Number(/used_memory:(\d+)/.exec(server.cli('info', 'memory'))?.[1]);
      server.cli('config', 'set', 'maxmemory', String(used + 4096));
      const ref = reference(FIXTURE);
      const a = new Kbx('redis-full', { KBX_REMOTE_STORAGE: server.url() });
      try {
        const tree = copyFixture(FIXTURE, 'redis-full');
        const r = a.make(tree);
        assertBuilt(r);
        assertSameTree(tree, ref);
        const c = remoteCounts(a, server.url());
        assert.equal(c.error, 1, r.stderr);
        assert.ok((c.uploaded ?? 0) < summary(r.stderr).stored, r.stderr);
        assert.match(r.stderr, /OOM/);
      } finally {
        a.stop();
      }
    } finally {
      await server.stop();
    }
  });
});

describe('two machines share a 3-master Redis Cluster', { skip }, () => {
  let cluster: RedisCluster;
  let ref: string;
  before(async () => {
    cluster = await RedisCluster.start();
    ref = reference(FIXTURE);
  });
  after(async () => cluster?.stop());

  test('hits from the cluster; a master killed costs hits, not the build; restarted, the next build uploads again', async () => {
    const display = cluster.url();
    const storage = `${display}|cluster`;
    const first = firstMachine('cluster', storage, display);
    for (const n of cluster.nodes) assert.ok(Number(n.cli('dbsize').trim()) > 0, `node ${n.port} holds no key`);
    const second = secondMachine('cluster', storage, first.tree, ref);
    assert.equal(second.s.misses, 0, second.run.stderr);
    assert.equal(second.s.hits, first.stored, second.run.stderr);

    const victim = cluster.nodes[1]!;
    await victim.kill();
    const third = secondMachine('cluster-down', storage, first.tree, ref);
    assert.equal(third.counts(display).error, 1, third.run.stderr);
    assert.equal(third.s.hits + third.s.misses, first.stored, third.run.stderr);

    await victim.start();
    await cluster.waitOk();
    const fourth = secondMachine('cluster-back', storage, first.tree, ref);
    assert.equal(fourth.counts(display).error ?? 0, 0, fourth.run.stderr);
    assert.ok((fourth.counts(display).hit ?? 0) > 0, fourth.run.stderr);
  });
});
