// The Redis backend (issue 11): one server, or a Redis Cluster with the
// `cluster` attribute. Keys are `kbx:cas:<sha256>` and `kbx:ac:<key>`
// (PROTOCOL.md §8). The client is ioredis: its commandTimeout rejects a
// command already sent to a frozen server (kill -STOP), which node-redis's
// timeout does not do without its experimental `rejectInFlight`.
//
// Fail fast, never stall: no retries, no reconnecting in the background, no
// offline queue (but for a cluster node's connection while it opens), and
// every call bounded by the connect and operation timeouts. A call that
// finds no connection opens one; a connection that failed or timed out is
// dropped, so the next call starts afresh (a restarted server serves again).
import { createRequire } from 'node:module';
import type { Cluster as ClusterClass, ClusterOptions, Redis as RedisClass, RedisOptions } from 'ioredis';
import { RemoteError, type RemoteBackend, type RemoteKind, type RemoteSpec } from './backend.js';
import { redisTarget, type RedisTarget } from './redis-target.js';

export { redisTarget };

// Loaded when a Redis store is opened, not with the daemon: ioredis costs ~100 ms
// of CPU to load, on every daemon start of every user without a Redis store.
let ioredis: typeof import('ioredis') | undefined;
const client = () => (ioredis ??= createRequire(import.meta.url)('ioredis') as typeof import('ioredis'));

type Client = RedisClass | ClusterClass;

const keyOf = (kind: RemoteKind, key: string) => `kbx:${kind}:${key}`;

export function openRedisBackend(spec: RemoteSpec): RemoteBackend {
  return new RedisBackend(spec, redisTarget(spec));
}

class RedisBackend implements RemoteBackend {
  private client?: Promise<Client>;
  private closed = false;
  /** The client's last 'error' event: why a connection closed (ECONNREFUSED, WRONGPASS), which a call reports only as "Connection is closed". */
  private lastEvent?: Error;
  private learned: { host: string; port: number }[] = [];

  constructor(
    readonly spec: RemoteSpec,
    private readonly target: RedisTarget,
  ) {}

  async get(kind: RemoteKind, key: string): Promise<Buffer | undefined> {
    const v = await this.call(`get ${kind}`, (c) => c.getBuffer(keyOf(kind, key)));
    return v ?? undefined;
  }

  async has(kind: RemoteKind, key: string): Promise<boolean> {
    return (await this.call(`has ${kind}`, (c) => c.exists(keyOf(kind, key)))) === 1;
  }

  async put(kind: RemoteKind, key: string, data: Buffer): Promise<void> {
    if (this.spec.readOnly) throw new RemoteError(`redis ${this.spec.display}: read-only`, 'forbidden');
    await this.call(`put ${kind}`, (c) => c.set(keyOf(kind, key), data));
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    if (c !== undefined) await c.then((x) => this.bounded(ended(x), 1000), () => undefined).catch(() => undefined);
  }

  private async call<T>(what: string, op: (c: Client) => Promise<T>): Promise<T> {
    if (this.closed) throw new RemoteError(`redis ${this.spec.display}: closed`, 'error');
    let pending = (this.client ??= this.connect());
    try {
      let c = await pending;
      if (c.status === 'end' || c.status === 'close') {
        // The server closed it (restarted, or idle timeout): open another.
        this.drop(pending);
        c = await (pending = this.client ??= this.connect());
      }
      return await this.bounded(op(c));
    } catch (e) {
      const err = this.classify(what, e);
      // A reply error (OOM, NOPERM) leaves the connection sound; anything
      // else may leave it half-dead, so the next call opens a new one.
      if (!isReplyError(e) || err.kind === 'auth') this.drop(pending);
      throw err;
    }
  }

  private async connect(): Promise<Client> {
    const { nodes, cluster, options } = this.target;
    const c: Client = cluster
      ? new (client().Cluster)([...this.learned, ...nodes], clusterOptions(options, this.spec))
      : new (client().Redis)({ ...nodes[0]!, ...options });
    this.lastEvent = undefined;
    c.on('error', (e: Error) => {
      this.lastEvent = e;
    });
    try {
      await this.bounded(c.connect(), this.spec.connectTimeoutMs);
      if (this.target.db !== 0 && c instanceof client().Redis) await this.bounded(c.select(this.target.db));
    } catch (e) {
      c.disconnect();
      throw e;
    }
    return c;
  }

  /** A guard over the client's own timeouts: no call outlives them, whatever the library does. */
  private bounded<T>(p: Promise<T>, ms = this.spec.connectTimeoutMs + this.spec.operationTimeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    });
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
  }

  private drop(pending: Promise<Client>): void {
    if (this.client !== pending) return;
    this.client = undefined;
    pending.then((c) => {
      if (c instanceof client().Cluster) this.learn(c);
      c.disconnect();
    }, () => undefined);
  }

  /** The masters a cluster client found: seeds for the next connection, should the URL's node be the one down. */
  private learn(c: ClusterClass): void {
    const found = c.nodes('master').map((n) => ({ host: n.options.host ?? '', port: n.options.port ?? 0 }));
    if (found.length > 0) this.learned = found.filter((n) => n.host !== '' && n.port !== 0).slice(0, 16);
  }

  /** A RemoteError from the server's or the client's words, first line only, never a secret. */
  private classify(what: string, e: unknown): RemoteError {
    let raw = e instanceof Error ? e.message : String(e);
    if (/Connection is closed|isn't writeable|isn't ready/.test(raw) && this.lastEvent !== undefined) raw = this.lastEvent.message;
    raw = raw.split('\n')[0]!.slice(0, 300);
    const text = this.scrub(raw);
    const message = `redis ${this.spec.display}: ${what}: ${text}`;
    if (/timed out|ETIMEDOUT/i.test(raw)) return new RemoteError(message, 'timeout');
    if (/^(WRONGPASS|NOAUTH)\b|^ERR (AUTH|invalid password|invalid username)/i.test(raw)) return new RemoteError(message, 'auth');
    if (/^OOM\b/.test(raw)) return new RemoteError(message, 'full');
    if (/^(NOPERM|READONLY)\b/.test(raw)) return new RemoteError(message, 'forbidden');
    return new RemoteError(message, 'error');
  }

  private scrub(text: string): string {
    const secrets = [this.spec.url.password, decodeURIComponent(this.spec.url.password)].filter((s) => s.length > 0);
    return secrets.reduce((t, s) => t.split(s).join('***'), text);
  }
}

function clusterOptions(options: RedisOptions, spec: RemoteSpec): ClusterOptions {
  const { retryStrategy: _r, enableOfflineQueue: _q, lazyConnect: _l, ...redisOptions } = options;
  return {
    redisOptions,
    // The cluster client opens a node's connection at its first command and,
    // without a queue, rejects every command sent while it is opening (all of
    // a burst of lookups). Queued commands still fail when the connection
    // does, and the call's own time limit holds.
    enableOfflineQueue: true,
    enableReadyCheck: false,
    lazyConnect: true,
    clusterRetryStrategy: () => null,
    slotsRefreshTimeout: spec.connectTimeoutMs,
    // MOVED/ASK after a resharding are followed; a down node is not waited for.
    maxRedirections: 4,
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    retryDelayOnTryAgain: 0,
  };
}

/** Disconnects and resolves when the socket is closed. */
function ended(c: Client): Promise<void> {
  return new Promise((res) => {
    if (c.status === 'end') return res();
    c.once('end', () => res());
    c.disconnect();
  });
}

function isReplyError(e: unknown): boolean {
  return e instanceof Error && e.name === 'ReplyError';
}
