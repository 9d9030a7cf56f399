// Real redis-server instances (Debian's) for the tests: each on a free
// 127.0.0.1 port, with its own directory and configuration, no persistence,
// stopped by the test (and by process exit, should a test crash). Never the
// system's service.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import { tempDir } from './kbx.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { program, type Need } from './tools.js';

export const redisNeeds: Need[] = [
  program('redis-server', 'redis-server'),
  program('redis-cli', 'redis-tools'),
  program('openssl', 'openssl'),
];

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** A port nobody listens on now (the kernel picks it; redis binds it a moment later). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const addr = srv.address();
  await new Promise<void>((res) => srv.close(() => res()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

/** Whether the server answers a RESP PING (any reply: +PONG or -NOAUTH) within 200 ms. */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      res(ok);
    };
    s.setTimeout(200, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', () => done(true));
  });
}

export class RedisServer {
  readonly dir: string;
  private proc?: ChildProcess;

  /**
   * `conf`: extra redis.conf lines (e.g. `maxmemory 1mb`, `user ro on >pw ~* +get`).
   * `host`: a loopback address (127.0.0.2 …): shards on one port told apart by host, as `redis://127.0.0.*:port|shards=1,2,3`.
   */
  constructor(
    readonly port: number,
    private readonly conf: string[] = [],
    readonly host = '127.0.0.1',
  ) {
    this.dir = tempDir('redis');
    writeFileSync(
      join(this.dir, 'redis.conf'),
      [
        `port ${port}`,
        `bind ${host}`,
        `dir ${this.dir}`,
        `logfile ${join(this.dir, 'redis.log')}`,
        'save ""',
        'appendonly no',
        'daemonize no',
        ...conf,
        '',
      ].join('\n'),
    );
  }

  static async start(conf: string[] = [], host?: string): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), conf, host);
    await s.start();
    return s;
  }

  url(userinfo = '', path = ''): string {
    return `redis://${userinfo === '' ? '' : `${userinfo}@`}${this.host}:${this.port}${path}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const p = spawn('redis-server', [join(this.dir, 'redis.conf')], { stdio: 'ignore' });
    running.add(p);
    this.proc = p;
    for (let i = 0; i < 200; i++) {
      if (p.exitCode !== null) break;
      if (await answers(this.host, this.port)) return;
      await sleep(25);
    }
    throw new Error(`redis-server on port ${this.port} did not start: see ${join(this.dir, 'redis.log')}`);
  }

  /** Stops the process, at once (SIGKILL: a crash, or a machine gone) and waits for its end. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (p === undefined) return;
    this.proc = undefined;
    running.delete(p);
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((res) => p.once('exit', res));
      p.kill('SIGCONT');
      p.kill('SIGKILL');
      await gone;
    }
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** kill -STOP: connections are accepted by the kernel, nothing is answered. */
  freeze(): void {
    this.proc?.kill('SIGSTOP');
  }

  thaw(): void {
    this.proc?.kill('SIGCONT');
  }

  /** redis-cli against this server; its stdout. */
  cli(...args: string[]): string {
    const r = spawnSync('redis-cli', ['-h', this.host, '-p', String(this.port), ...args], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A TLS front for a plain server (Debian's redis-server is built without
 * TLS), with a self-signed certificate for 127.0.0.1 and localhost in
 * `caFile`: what a client sees of a rediss:// server.
 */
export class TlsFront {
  private constructor(
    readonly port: number,
    readonly caFile: string,
    private readonly server: Server,
    private readonly dir: string,
  ) {}

  static async start(target: number): Promise<TlsFront> {
    const dir = tempDir('redis-tls');
    const r = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (r.status !== 0) throw new Error(`openssl req: ${r.stderr}`);
    const server = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (tls) => {
      const plain = createConnection({ host: '127.0.0.1', port: target });
      tls.pipe(plain).pipe(tls);
      tls.on('error', () => plain.destroy());
      plain.on('error', () => tls.destroy());
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    return new TlsFront(addr.port, join(dir, 'cert.pem'), server, dir);
  }

  async stop(): Promise<void> {
    await new Promise<void>((res) => this.server.close(() => res()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A 3-master Redis Cluster on loopback, no replicas. */
export class RedisCluster {
  private constructor(readonly nodes: RedisServer[]) {}

  static async start(): Promise<RedisCluster> {
    const nodes: RedisServer[] = [];
    for (let i = 0; i < 3; i++) {
      // The bus port is chosen too, not port+10000, which may be taken.
      nodes.push(
        new RedisServer(await freePort(), [
          'cluster-enabled yes',
          'cluster-config-file nodes.conf',
          `cluster-port ${await freePort()}`,
          'cluster-node-timeout 2000',
          // The other masters keep serving their slots while one is down.
          'cluster-require-full-coverage no',
        ]),
      );
    }
    const c = new RedisCluster(nodes);
    try {
      for (const n of nodes) await n.start();
      const r = spawnSync(
        'redis-cli',
        ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
        { encoding: 'utf8', timeout: 60_000 },
      );
      if (r.status !== 0) throw new Error(`redis-cli --cluster create: ${r.stdout}${r.stderr}`);
      await c.waitOk();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** Waits (bounded) until every node says cluster_state:ok. */
  async waitOk(): Promise<void> {
    for (let i = 0; i < 400; i++) {
      if (this.nodes.every((n) => n.pid !== undefined && /cluster_state:ok/.test(n.cli('cluster', 'info')))) return;
      await sleep(25);
    }
    throw new Error('cluster did not reach cluster_state:ok');
  }

  /** The node that serves `key`'s slot. */
  nodeOf(key: string): RedisServer {
    const slot = Number(this.nodes[0]!.cli('cluster', 'keyslot', key).trim());
    const lines = this.nodes[0]!.cli('cluster', 'nodes').trim().split('\n');
    for (const line of lines) {
      const f = line.split(' ');
      const port = Number(/:(\d+)@/.exec(f[1] ?? '')?.[1]);
      for (const range of f.slice(8)) {
        const [lo, hi] = range.split('-').map(Number);
        if (lo !== undefined && slot >= lo && slot <= (hi ?? lo)) {
          const n = this.nodes.find((x) => x.port === port);
          if (n !== undefined) return n;
        }
      }
    }
    throw new Error(`no node serves ${key}`);
  }

  url(): string {
    return this.nodes[0]!.url();
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) await n.stop();
  }
}
