// A shared store on an HTTP server in bazel-remote's layout (docs/PROTOCOL.md
// §7): GET/PUT/HEAD <url>/cas/<sha256> and <url>/ac/<key>. Served as it is by
// bazel-remote (AC validation off), nginx with WebDAV and any server that
// keeps bytes under a path. undici's Pool keeps connections alive (a kernel
// build makes thousands of small requests) and gives a connect timeout of its
// own; every request also carries the operation timeout as an AbortSignal.
import { createRequire } from 'node:module';
import type { Pool as PoolClass } from 'undici';
import { RemoteError, type RemoteBackend, type RemoteKind, type RemoteSpec } from './backend.js';

// What one response may hold: a blob (vmlinux with debug info is a few hundred
// MiB) or a record. A server sending more is refused, never buffered whole.
const MAX_BODY: Record<RemoteKind, number> = { cas: 1 << 30, ac: 64 << 20 };
// Sized for make -j plus the read-ahead (read-ahead.ts: 8 at once) beside the lookups.
const CONNECTIONS = 24;

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The failure as a RemoteError whose message names the backend (never its password) and the operation. */
function failure(spec: RemoteSpec, what: string, err: unknown): RemoteError {
  if (err instanceof RemoteError) return err;
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
  const timeout = e.name === 'TimeoutError' || TIMEOUT_CODES.has(e.code ?? '') || (e.name === 'AbortError' && String(e.message).includes('timeout'));
  const why = timeout ? 'timed out' : (e.code ?? e.cause?.code ?? e.message ?? String(err));
  return new RemoteError(`${spec.display}: ${what}: ${why}`, timeout ? 'timeout' : 'error');
}

function statusError(spec: RemoteSpec, what: string, status: number): RemoteError {
  const kind = status === 401 ? 'auth' : status === 403 ? 'forbidden' : status === 413 || status === 507 ? 'full' : 'error';
  return new RemoteError(`${spec.display}: ${what}: HTTP ${status}`, kind);
}

export function openHttpBackend(spec: RemoteSpec): RemoteBackend {
  const origin = spec.url.origin;
  const base = spec.url.pathname.replace(/\/+$/, '');
  const headers: Record<string, string> = {};
  if (spec.url.username || spec.url.password) {
    const user = decodeURIComponent(spec.url.username);
    const pass = decodeURIComponent(spec.url.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  // Loaded here, not with the daemon: undici costs ~150 ms of CPU to load, on every daemon start without an HTTP store.
  const { Pool } = createRequire(import.meta.url)('undici') as { Pool: typeof PoolClass };
  const pool = new Pool(origin, {
    connections: CONNECTIONS,
    connect: { timeout: spec.connectTimeoutMs },
    headersTimeout: spec.operationTimeoutMs,
    bodyTimeout: spec.operationTimeoutMs,
    keepAliveTimeout: 30_000,
  });

  async function call(method: 'GET' | 'PUT' | 'HEAD', kind: RemoteKind, key: string, body?: Buffer) {
    const what = `${method} ${kind}/${key.slice(0, 12)}`;
    try {
      const res = await pool.request({
        path: `${base}/${kind}/${key}`,
        method,
        headers: body ? { ...headers, 'content-type': 'application/octet-stream' } : headers,
        body,
        signal: AbortSignal.timeout(spec.operationTimeoutMs),
      });
      if (method !== 'GET' || res.statusCode < 200 || res.statusCode >= 300) {
        await res.body.dump().catch(() => {});
        return { status: res.statusCode, data: undefined };
      }
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > MAX_BODY[kind]) {
        res.body.destroy();
        throw new RemoteError(`${spec.display}: ${what}: ${declared} bytes is more than kbx accepts`, 'error');
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_BODY[kind]) {
          res.body.destroy();
          throw new RemoteError(`${spec.display}: ${what}: more than ${MAX_BODY[kind]} bytes`, 'error');
        }
        chunks.push(chunk);
      }
      return { status: res.statusCode, data: Buffer.concat(chunks, size) };
    } catch (err) {
      throw failure(spec, what, err);
    }
  }

  return {
    spec,
    async get(kind, key) {
      const r = await call('GET', kind, key);
      if (r.status === 404) return undefined;
      if (r.data === undefined) throw statusError(spec, `GET ${kind}/${key.slice(0, 12)}`, r.status);
      return r.data;
    },
    async put(kind, key, data) {
      const r = await call('PUT', kind, key, data);
      if (r.status < 200 || r.status >= 300) throw statusError(spec, `PUT ${kind}/${key.slice(0, 12)}`, r.status);
    },
    async has(kind, key) {
      const r = await call('HEAD', kind, key);
      if (r.status === 404) return false;
      if (r.status >= 200 && r.status < 300) return true;
      throw statusError(spec, `HEAD ${kind}/${key.slice(0, 12)}`, r.status);
    },
    async close() {
      await pool.destroy().catch(() => {});
    },
  };
}
