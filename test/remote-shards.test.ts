// A sharded Redis store (`redis://127.0.0.*:port|shards=1,2,3`, three real
// servers on loopback): one shard that fails takes out only itself. Keys on
// it miss, counted under that shard; keys on the live shards still hit; the
// build succeeds with plain make's outputs; and no key moves to another shard.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pickShard } from '../src/store/remote/shard.js';
import { decodeBundle, decodeRemoteEntry, decodeRemotePathSets, entryKey, type Bundle } from '../src/store/remote/wire.js';
import { Kbx, assertSameTree, copyFixture, summary } from './support/kbx.js';
import { RedisServer, freePort, redisNeeds } from './support/redis.js';
import { assertBuilt, reference, remoteCounts, secondMachineTree } from './support/remote.js';
import { program, unlessMissing } from './support/tools.js';

const skip = unlessMissing(...redisNeeds, program('gcc', 'gcc'));
const FIXTURE = 'pipeline';
const NAMES = ['1', '2', '3'];

/**
 * Per shard, the lines a fresh machine can hit with that shard out: those
 * whose bundle, and entry and blobs when not inline in it, are on the other
 * shards (read from the servers, placed by the same rendezvous hashing).
 */
async function hitsWithout(shards: RedisServer[]): Promise<number[]> {
  const ac = new Map<string, Buffer>();
  for (const s of shards) {
    const c = new Redis({ host: s.host, port: s.port, lazyConnect: true });
    try {
      await c.connect();
      for (const k of await c.keys('kbx:ac:*')) ac.set(k.slice('kbx:ac:'.length), (await c.getBuffer(k))!);
    } finally {
      c.disconnect();
    }
  }
  const lines: string[][] = [];
  for (const [key, data] of ac) {
    let bundle: Bundle;
    try {
      bundle = decodeBundle(data);
    } catch {
      continue; // an entry, or the list of lines
    }
    const sets = decodeRemotePathSets(bundle.pathSets).sets;
    assert.equal(sets.length, 1, 'one set per command after one cold build');
    const strong = sets[0]!.strong;
    const inline = bundle.entries.get(strong);
    const entry = decodeRemoteEntry(inline ?? ac.get(entryKey(strong))!);
    const blobs = [entry.stdout, entry.stderr, ...entry.outputs.map((o) => (o.kind === 'file' ? o.digest : ''))];
    lines.push([key, ...(inline ? [] : [entryKey(strong)]), ...blobs.filter((d) => d !== '' && !bundle.blobs.has(d))]);
  }
  return NAMES.map((_, out) => lines.filter((keys) => keys.every((k) => pickShard(NAMES, k) !== out)).length);
}

/**
 * The shard to take out: of those whose loss leaves some hits but not all,
 * the one that leaves the most. Placement follows the keys, and the keys
 * follow the tree's paths, so which shard that is differs from run to run
 * (with 12 lines, one shard may hold none of them at all).
 */
function shardToLose(counts: number[], stored: number): number {
  const fit = counts.map((c, i) => [c, i] as const).filter(([c]) => c > 0 && c < stored);
  assert.ok(fit.length > 0, `no shard whose loss leaves some hits but not all: ${counts.join(' ')} of ${stored}`);
  return fit.reduce((a, b) => (b[0] > a[0] ? b : a))[1];
}

/** Every key on each of these shards is one rendezvous hashing places there. */
async function assertPlaced(on: RedisServer[]): Promise<void> {
  for (const s of on) {
    const i = NAMES.indexOf(s.host.split('.')[3]!);
    const keys = s.cli('--scan', '--pattern', 'kbx:*').trim().split('\n').filter(Boolean);
    assert.ok(keys.length > 0);
    for (const k of keys) assert.equal(pickShard(NAMES, k.replace(/^kbx:(ac|cas):/, '')), i, `${k} on shard ${s.host}`);
  }
}

describe('a sharded Redis store with one shard out', { skip }, () => {
  let shards: RedisServer[];
  let ref: string;
  let storage: string;
  let template: string;
  let stored: number;
  let firstTree: string;
  before(async () => {
    const port = await freePort();
    shards = [];
    for (const n of NAMES) shards.push(new RedisServer(port, [], `127.0.0.${n}`));
    for (const s of shards) await s.start();
    template = `redis://127.0.0.*:${port}`;
    storage = `${template}|shards=${NAMES.join(',')}|operation-timeout=2000|connect-timeout=2000`;
    ref = reference(FIXTURE);
    const a = new Kbx('shards-a', { KBX_REMOTE_STORAGE: storage });
    try {
      firstTree = copyFixture(FIXTURE, 'shards-a');
      const r = a.make(firstTree);
      assertBuilt(r);
      stored = summary(r.stderr).stored;
      assert.equal(remoteCounts(a, template).uploaded, stored, r.stderr);
      for (const s of shards) assert.ok(Number(s.cli('dbsize').trim()) > 0, `shard ${s.host} holds no key`);
    } finally {
      a.stop();
    }
  });
  after(async () => {
    for (const s of shards ?? []) await s.stop();
  });

  /** A fresh machine's build with shard `out` failing (frozen or killed by `fail`); its counters. */
  async function buildWithout(name: string, out: number, fail: (s: RedisServer) => Promise<void> | void) {
    await fail(shards[out]!);
    const b = new Kbx(name, { KBX_REMOTE_STORAGE: storage });
    try {
      const tree = secondMachineTree(FIXTURE, firstTree);
      firstTree = tree;
      const r = b.make(tree);
      assertBuilt(r);
      assertSameTree(tree, ref);
      const s = summary(r.stderr);
      const dead = shards[out]!.url();
      return { r, s, dead, all: remoteCounts(b, template), shard: (i: number) => remoteCounts(b, shards[i]!.url()) };
    } finally {
      b.stop();
    }
  }

  test('a frozen shard (kill -STOP): its keys miss after one timeout, the live shards still hit', async () => {
    const counts = await hitsWithout(shards);
    const out = shardToLose(counts, stored);
    const expected = counts[out]!;
    try {
      const { r, s, dead, all, shard } = await buildWithout('shards-frozen', out, (x) => x.freeze());
      assert.equal(s.hits, expected, r.stderr);
      assert.equal(s.misses, stored - expected, r.stderr);
      assert.equal(all.hit, expected, JSON.stringify(all));
      assert.equal(all.miss ?? 0, 0, JSON.stringify(all));
      assert.equal(shard(out).timeout, 1, r.stderr);
      assert.equal(shard(out)['out-miss'], stored - expected, r.stderr);
      for (const i of [0, 1, 2].filter((i) => i !== out)) {
        assert.equal((shard(i).error ?? 0) + (shard(i).timeout ?? 0), 0, `shard ${i}: ${JSON.stringify(shard(i))}`);
      }
      const said = r.stderr.split('\n').filter((l) => l.includes(`shard ${dead} of shared store ${template} failed`));
      assert.equal(said.length, 1, r.stderr);
      assert.match(said[0]!, /timed out/);
    } finally {
      shards[out]!.thaw();
    }
  });

  test('a killed shard: refused connections cost its keys only; restarted empty, the next build uploads to it again', async () => {
    const counts = await hitsWithout(shards);
    const out = shardToLose(counts, stored);
    const { r, s, shard } = await buildWithout('shards-killed', out, (x) => x.kill());
    assert.equal(s.hits, counts[out], r.stderr);
    assert.equal(shard(out).error, 1, r.stderr);
    // The machine's uploads went to the live shards only for keys placed there, none moved to stand in for the dead one.
    await assertPlaced(shards.filter((_, i) => i !== out));
    await shards[out]!.start();
    const again = await buildWithout('shards-back', out, () => undefined);
    assert.equal(again.shard(out).error ?? 0, 0, again.r.stderr);
    assert.ok(Number(shards[out]!.cli('dbsize').trim()) > 0, `the restarted shard got its keys back: ${again.r.stderr}`);
    await assertPlaced(shards);
  });
});
