// How a `redis://` or `rediss://` item of remote_storage connects, checked
// when the configuration loads (spec.ts), so a bad form is a clear error
// before any build. Kept apart from redis-backend.ts: no client is loaded.
import type { RedisOptions } from 'ioredis';
import { KbxError } from '../../util/errors.js';
import type { RemoteSpec } from './backend.js';

/** How a `redis://` or `rediss://` spec connects; throws an Error naming the setting for a bad form. */
export interface RedisTarget {
  nodes: { host: string; port: number }[];
  cluster: boolean;
  /** Selected by kbx after connecting, not by ioredis, which goes on in database 0 when SELECT fails. */
  db: number;
  options: RedisOptions;
}

export function redisTarget(spec: RemoteSpec): RedisTarget {
  const u = spec.url;
  const bad = (what: string) =>
    new KbxError('KBX_BAD_REMOTE', `remote_storage item '${spec.display}': ${what}`, HINT);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw bad('not a redis:// or rediss:// URL');
  if (u.hostname === '') throw bad('no host');
  if (u.search !== '' || u.hash !== '') throw bad('a Redis URL takes no query or fragment (attributes follow a |)');
  const path = u.pathname.replace(/^\/$/, '');
  if (path !== '' && !/^\/\d{1,5}$/.test(path)) throw bad(`the path must be a database number, as redis://host/1, not ${path}`);
  const db = path === '' ? 0 : Number(path.slice(1));
  const cluster = spec.attrs.has('cluster') && spec.attrs.get('cluster') !== 'false';
  if (cluster && db !== 0) throw bad('a Redis Cluster has only database 0');
  const nodes = [{ host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port === '' ? 6379 : Number(u.port) }];
  const options: RedisOptions = {
    connectTimeout: spec.connectTimeoutMs,
    commandTimeout: spec.operationTimeoutMs,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: () => null,
    reconnectOnError: () => false,
    lazyConnect: true,
  };
  if (u.username !== '') options.username = decodeURIComponent(u.username);
  if (u.password !== '') options.password = decodeURIComponent(u.password);
  // Each node's certificate is checked against its own host name and Node's
  // CA list (NODE_EXTRA_CA_CERTS adds a private CA).
  if (u.protocol === 'rediss:') options.tls = {};
  return { nodes, cluster, db, options };
}

const HINT = "write redis://[user:password@]host[:port][/db] or rediss://…, and a cluster as 'redis://host:port|cluster' (any one node; kbx learns the others)";

