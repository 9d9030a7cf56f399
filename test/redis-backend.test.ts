// The Redis backend against real redis-server processes on loopback: what
// it stores comes back, and every way a server fails is one RemoteError of
// the right kind, promptly, with no secret in its text.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RemoteError, type RemoteBackend, type RemoteSpec } from '../src/store/remote/backend.js';
import { openRedisBackend, redisTarget } from '../src/store/remote/redis-backend.js';
import { KbxError } from '../src/util/errors.js';
import { repoRoot } from './support/kbx.js';
import { freePort, RedisCluster, RedisServer, redisNeeds, TlsFront } from './support/redis.js';
import { unlessMissing } from './support/tools.js';

const skip = unlessMissing(...redisNeeds);
const execFileAsync = promisify(execFile);

function spec(url: string, attrs: Record<string, string> = {}, timeouts = { connect: 500, operation: 300 }): RemoteSpec {
  const u = new URL(url);
  const display = u.password === '' ? url : url.replace(`:${u.password}@`, ':***@');
  return {
    url: u,
    display,
    readOnly: false,
    connectTimeoutMs: timeouts.connect,
    operationTimeoutMs: timeouts.operation,
    shards: [],
    attrs: new Map(Object.entries(attrs)),
  };
}

type WithHas = RemoteBackend & { has?(kind: 'cas' | 'ac', key: string): Promise<boolean> };

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The RemoteError a call rejected with (fails the test if it resolved or threw something else). */
async function failure(p: Promise<unknown>): Promise<RemoteError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RemoteError, `not a RemoteError: ${String(e)}`);
    return e;
  }
  assert.fail('the call succeeded');
}

async function using<T>(b: RemoteBackend, f: (b: RemoteBackend) => Promise<T>): Promise<T> {
  try {
    return await f(b);
  } finally {
    await b.close();
  }
}

describe('redis backend, one server', { skip }, () => {
  let server: RedisServer;
  before(async () => {
    server = await RedisServer.start([
      'user default on nopass ~* &* +@all',
      'user reader on >reader-pw ~* &* +@all -@write',
      'user writer on >writer-secret-7 ~* &* +@all',
    ]);
  });
  after(async () => server?.stop());

  test('blobs and records come back byte for byte under kbx:cas: and kbx:ac:; a missing key is undefined', async () => {
    await using(openRedisBackend(spec(server.url())), async (b) => {
      const blob = Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a]), randomBytes(1 << 20)]);
      const record = Buffer.from('an entry record\0with a NUL');
      await b.put('cas', sha(blob), blob);
      await b.put('ac', sha(record), record);
      assert.deepEqual(await b.get('cas', sha(blob)), blob);
      assert.deepEqual(await b.get('ac', sha(record)), record);
      assert.equal(await b.get('cas', sha(record)), undefined, 'a blob under a record key: never stored as a blob');
      assert.equal(await b.get('ac', 'f'.repeat(64)), undefined);
      assert.equal(await (b as WithHas).has?.('cas', sha(blob)), true);
      assert.equal(await (b as WithHas).has?.('cas', sha(record)), false);
      assert.equal(server.cli('strlen', `kbx:cas:${sha(blob)}`).trim(), String(blob.length));
      assert.equal(server.cli('exists', `kbx:ac:${sha(record)}`).trim(), '1');
    });
  });

  test('the database number in the path is the one written; one the server lacks is an error', async () => {
    await using(openRedisBackend(spec(server.url('', '/3'))), async (b) => {
      await b.put('ac', 'a'.repeat(64), Buffer.from('x'));
      assert.equal(server.cli('-n', '3', 'exists', `kbx:ac:${'a'.repeat(64)}`).trim(), '1');
      assert.equal(server.cli('-n', '0', 'exists', `kbx:ac:${'a'.repeat(64)}`).trim(), '0');
    });
    await using(openRedisBackend(spec(server.url('', '/99'))), async (b) => {
      const e = await failure(b.put('ac', '9'.repeat(64), Buffer.from('x')));
      assert.equal(e.kind, 'error', e.message);
      assert.match(e.message, /DB index/);
      assert.equal(server.cli('exists', `kbx:ac:${'9'.repeat(64)}`).trim(), '0', 'not written to database 0 instead');
    });
  });

  test('credentials in the URL: an ACL user reads and writes', async () => {
    await using(openRedisBackend(spec(server.url('writer:writer-secret-7'))), async (b) => {
      await b.put('ac', 'b'.repeat(64), Buffer.from('y'));
      assert.deepEqual(await b.get('ac', 'b'.repeat(64)), Buffer.from('y'));
    });
  });

  test('an ACL read-only user: put is forbidden, get works', async () => {
    await using(openRedisBackend(spec(server.url())), (b) => b.put('cas', 'c'.repeat(64), Buffer.from('z')));
    await using(openRedisBackend(spec(server.url('reader:reader-pw'))), async (b) => {
      const e = await failure(b.put('cas', 'd'.repeat(64), Buffer.from('w')));
      assert.equal(e.kind, 'forbidden', e.message);
      assert.deepEqual(await b.get('cas', 'c'.repeat(64)), Buffer.from('z'), 'the connection still serves reads');
    });
  });

  test('a wrong password is auth, and the password is not in the error text', async () => {
    await using(openRedisBackend(spec(server.url('writer:not-the-Secret-42'))), async (b) => {
      const e = await failure(b.get('cas', 'e'.repeat(64)));
      assert.equal(e.kind, 'auth', e.message);
      assert.doesNotMatch(e.message + String(e.stack), /not-the-Secret-42/);
      assert.match(e.message, /\*\*\*/, 'names the server with the password masked');
    });
  });

  test('close() leaves no connection open and nothing reconnecting', async () => {
    const b = openRedisBackend(spec(server.url()));
    await b.get('cas', 'f'.repeat(64));
    await b.close();
    const clients = () => server.cli('client', 'list').trim().split('\n').length;
    // The server may see the close a moment after the client did.
    for (let i = 0; i < 40 && clients() > 1; i++) await sleep(25);
    assert.equal(clients(), 1, 'only redis-cli itself');
    assert.equal((await failure(b.get('cas', 'f'.repeat(64)))).kind, 'error');
  });
});

describe('redis backend, server faults', { skip }, () => {
  test('a refused connection is an error', async () => {
    const port = await freePort();
    await using(openRedisBackend(spec(`redis://127.0.0.1:${port}`)), async (b) => {
      const e = await failure(b.get('cas', '0'.repeat(64)));
      assert.equal(e.kind, 'error', e.message);
      assert.match(e.message, /ECONNREFUSED/);
    });
  });

  test('a frozen server (kill -STOP): the call returns with kind timeout, and serves again once thawed', async () => {
    const server = await RedisServer.start();
    try {
      await using(openRedisBackend(spec(server.url())), async (b) => {
        await b.put('cas', '1'.repeat(64), Buffer.from('v'));
        server.freeze();
        try {
          assert.equal((await failure(b.get('cas', '1'.repeat(64)))).kind, 'timeout');
          assert.equal((await failure(b.put('ac', '1'.repeat(64), Buffer.from('v')))).kind, 'timeout', 'a new connection to it too');
        } finally {
          server.thaw();
        }
        assert.deepEqual(await b.get('cas', '1'.repeat(64)), Buffer.from('v'));
      });
    } finally {
      await server.stop();
    }
  });

  test('a restarted server: the next call reconnects and works', async () => {
    const server = await RedisServer.start();
    try {
      await using(openRedisBackend(spec(server.url())), async (b) => {
        await b.put('cas', '2'.repeat(64), Buffer.from('before'));
        await server.restart();
        assert.equal(await b.get('cas', '2'.repeat(64)), undefined, 'no persistence: gone');
        await b.put('cas', '2'.repeat(64), Buffer.from('after'));
        assert.deepEqual(await b.get('cas', '2'.repeat(64)), Buffer.from('after'));
      });
    } finally {
      await server.stop();
    }
  });

  test('a full server (maxmemory, noeviction) is full; reads still work', async () => {
    const server = await RedisServer.start(['maxmemory-policy noeviction']);
    try {
      const used = Number(/used_memory:(\d+)/.exec(server.cli('info', 'memory'))?.[1]);
      server.cli('config', 'set', 'maxmemory', String(used + (2 << 20)));
      await using(openRedisBackend(spec(server.url())), async (b) => {
        const blob = randomBytes(256 << 10);
        await b.put('cas', sha(blob), blob);
        let e: RemoteError | undefined;
        for (let i = 0; i < 64 && e === undefined; i++) {
          const more = randomBytes(256 << 10);
          await b.put('cas', sha(more), more).catch((x: unknown) => {
            e = x as RemoteError;
          });
        }
        assert.ok(e instanceof RemoteError, 'the server never refused a write');
        assert.equal(e.kind, 'full', e.message);
        assert.deepEqual(await b.get('cas', sha(blob)), blob);
      });
    } finally {
      await server.stop();
    }
  });

  test('no password given to a server that wants one is auth', async () => {
    const server = await RedisServer.start(['requirepass sesame-open-9']);
    try {
      await using(openRedisBackend(spec(server.url())), async (b) => {
        assert.equal((await failure(b.get('cas', '3'.repeat(64)))).kind, 'auth');
      });
      await using(openRedisBackend(spec(server.url(':sesame-open-9'))), async (b) => {
        await b.put('cas', '3'.repeat(64), Buffer.from('ok'));
        assert.deepEqual(await b.get('cas', '3'.repeat(64)), Buffer.from('ok'));
      });
    } finally {
      await server.stop();
    }
  });
});

describe('redis backend over TLS (rediss://)', { skip }, () => {
  test('the server certificate is checked: unknown CA refused; trusted through NODE_EXTRA_CA_CERTS, a round trip works', async () => {
    const server = await RedisServer.start();
    const front = await TlsFront.start(server.port);
    const url = `rediss://127.0.0.1:${front.port}`;
    try {
      await using(openRedisBackend(spec(url)), async (b) => {
        const e = await failure(b.get('cas', '4'.repeat(64)));
        assert.equal(e.kind, 'error', e.message);
        assert.match(e.message, /certificate/);
      });
      // Node reads NODE_EXTRA_CA_CERTS only when it starts: a child process.
      const script = `
        import { openRedisBackend } from ${JSON.stringify(join(repoRoot, 'dist', 'src', 'store', 'remote', 'redis-backend.js'))};
        const b = openRedisBackend(${specSource(url)});
        await b.put('cas', '4'.repeat(64), Buffer.from('over tls'));
        process.stdout.write(String(await b.get('cas', '4'.repeat(64))));
        await b.close();`;
      // Not spawnSync: the TLS front runs in this process's event loop.
      const r = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: front.caFile },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(r.stdout, 'over tls', r.stderr);
      assert.equal(server.cli('get', `kbx:cas:${'4'.repeat(64)}`).trim(), 'over tls');
    } finally {
      await front.stop();
      await server.stop();
    }
  });
});

/** JavaScript source that builds the same spec in a child process. */
function specSource(url: string): string {
  return `{ url: new URL(${JSON.stringify(url)}), display: ${JSON.stringify(url)}, readOnly: false, connectTimeoutMs: 2000, operationTimeoutMs: 2000, shards: [], attrs: new Map() }`;
}

describe('redis URL forms', () => {
  test('a bad form is an error naming it; credentials, database, TLS and cluster as written', () => {
    const refused = (url: string, attrs: Record<string, string>, why: RegExp) =>
      assert.throws(() => redisTarget(spec(url, attrs)), (e: unknown) => e instanceof KbxError && e.code === 'KBX_BAD_REMOTE' && why.test(e.message));
    refused('redis://h/abc', {}, /database number/);
    refused('redis://u:hidden-pw@h/2', { cluster: '' }, /only database 0/);
    assert.doesNotThrow(() => redisTarget(spec('redis://h/2', { cluster: 'false' })));
    refused('redis://h?x=1', {}, /no query/);
    refused('http://h', {}, /not a redis/);
    const t = redisTarget(spec('rediss://u:p%40ss@[::1]:7000', { cluster: '' }));
    assert.deepEqual(t.nodes, [{ host: '::1', port: 7000 }]);
    assert.equal(t.cluster, true);
    assert.equal(t.options.username, 'u');
    assert.equal(t.options.password, 'p@ss');
    assert.ok(t.options.tls);
    assert.equal(redisTarget(spec('redis://h/5')).db, 5);
    assert.equal(redisTarget(spec('redis://h')).nodes[0]!.port, 6379);
  });
});

describe('redis backend, a 3-master cluster', { skip }, () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => cluster?.stop());

  const clusterSpec = () => spec(cluster.url(), { cluster: '' });

  test('keys spread over the 3 masters and come back, a burst of calls at once as the daemon makes them', async () => {
    await using(openRedisBackend(clusterSpec()), async (b) => {
      const keys = Array.from({ length: 30 }, (_, i) => sha(Buffer.from(`k${i}`)));
      await Promise.all(keys.map((k) => b.put('cas', k, Buffer.from(k))));
      const back = await Promise.all(keys.map((k) => b.get('cas', k)));
      assert.deepEqual(back, keys.map((k) => Buffer.from(k)));
      for (const n of cluster.nodes) assert.ok(Number(n.cli('dbsize').trim()) > 0, `node ${n.port} holds none`);
    });
  });

  test('the master the URL names killed: its keys fail, the others serve; restarted: it serves again', async () => {
    await using(openRedisBackend(clusterSpec()), async (b) => {
      const keys = Array.from({ length: 30 }, (_, i) => sha(Buffer.from(`m${i}`)));
      for (const k of keys) await b.put('ac', k, Buffer.from(k));
      const victim = cluster.nodes[0]!;
      const owner = new Map(keys.map((k) => [k, cluster.nodeOf(`kbx:ac:${k}`)]));
      await victim.kill();
      for (const k of keys) {
        if (owner.get(k) === victim) {
          const e = await failure(b.get('ac', k));
          assert.ok(['error', 'timeout'].includes(e.kind), e.message);
        } else {
          assert.deepEqual(await b.get('ac', k), Buffer.from(k));
        }
      }
      await victim.start();
      await cluster.waitOk();
      for (const k of keys) {
        if (owner.get(k) === victim) await b.put('ac', k, Buffer.from('again'));
        assert.deepEqual(await b.get('ac', k), owner.get(k) === victim ? Buffer.from('again') : Buffer.from(k));
      }
    });
  });
});
