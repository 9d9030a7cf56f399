// A real nginx with WebDAV for the shared-store tests: its own conf, prefix,
// logs and temp dirs under a temporary directory, on a free 127.0.0.1 port,
// one process (master_process off) so that `kill -STOP` freezes all of it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './kbx.js';

export interface NginxOptions {
  /** The server answers 403 to anything but GET and HEAD (nginx's limit_except). */
  readOnly?: boolean;
  /** Basic auth: this user and password ({PLAIN} in the user file). */
  user?: { name: string; password: string };
  /** Serve this data directory (another server's, to read what it was given). */
  data?: string;
  /** The access log's format (nginx's log_format), beginning with `"$request" $status` as the default's part that requests() reads. */
  logFormat?: string;
  /** More locations served with WebDAV beside /kbx/ (the benchmark's /ccache/ for ccache's remote_storage). */
  alsoServe?: string[];
}

/** A free loopback port (the kernel's choice for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Nginx {
  readonly dir = tempDir('nginx');
  /** Where nginx keeps what kbx stores: <data>/kbx/cas/…, <data>/kbx/ac/…. */
  readonly data: string;
  port = 0;
  private child?: ChildProcess;

  constructor(private readonly opts: NginxOptions = {}) {
    this.data = opts.data ?? join(this.dir, 'data');
  }

  /** The store's URL, without credentials. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/kbx`;
  }

  private conf(): string {
    const d = this.dir;
    const auth = this.opts.user ? `auth_basic "kbx"; auth_basic_user_file ${d}/htpasswd;` : '';
    const ro = this.opts.readOnly ? 'limit_except GET HEAD { deny all; }' : '';
    return `daemon off;
master_process off;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log;
events { worker_connections 256; }
http {
  ${this.opts.logFormat ? `log_format kbx '${this.opts.logFormat}';\n  access_log ${d}/access.log kbx;` : `access_log ${d}/access.log;`}
  client_body_temp_path ${d}/tmp/body;
  proxy_temp_path ${d}/tmp/proxy;
  fastcgi_temp_path ${d}/tmp/fastcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi;
  scgi_temp_path ${d}/tmp/scgi;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:${this.port};
    root ${this.data};
${['/kbx/', ...(this.opts.alsoServe ?? [])]
  .map(
    (loc) => `    location ${loc} {
      dav_methods PUT DELETE;
      create_full_put_path on;
      ${auth}
      ${ro}
    }
`,
  )
  .join('')}  }
}
`;
  }

  /** Starts nginx (again on the same port after stop()); resolves once it accepts connections. */
  async start(): Promise<this> {
    if (!this.port) this.port = await freePort();
    mkdirSync(join(this.dir, 'tmp'), { recursive: true });
    mkdirSync(join(this.data, 'kbx'), { recursive: true });
    for (const loc of this.opts.alsoServe ?? []) mkdirSync(join(this.data, loc), { recursive: true });
    if (this.opts.user) writeFileSync(join(this.dir, 'htpasswd'), `${this.opts.user.name}:{PLAIN}${this.opts.user.password}\n`);
    writeFileSync(join(this.dir, 'nginx.conf'), this.conf());
    const child = spawn('nginx', ['-p', this.dir, '-c', join(this.dir, 'nginx.conf'), '-e', join(this.dir, 'error.log')], { stdio: 'ignore' });
    this.child = child;
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(this.dir, 'error.log'), 'utf8')}`);
      if (await accepts(this.port)) return this;
      await sleep(25);
    }
    throw new Error('nginx did not accept connections within 5 s');
  }

  /** Stops it (thawed first if frozen) and waits for the process to end. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const ended = new Promise((r) => child.once('exit', r));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    await ended;
    this.child = undefined;
  }

  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** The requests nginx logged, e.g. 'PUT /kbx/cas/… 201'. */
  requests(): string[] {
    let log = '';
    try {
      log = readFileSync(join(this.dir, 'access.log'), 'utf8');
    } catch {
      /* no request yet */
    }
    return log
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const m = /"(\w+) (\S+) [^"]*" (\d+)/.exec(l);
        return m ? `${m[1]} ${m[2]} ${m[3]}` : l;
      });
  }
}

/** Starts an nginx that is stopped when the test ends, passed or failed (a running one keeps the test runner alive). */
export function startNginx(t: { after(fn: () => unknown): void }, opts: NginxOptions = {}): Promise<Nginx> {
  const nginx = new Nginx(opts);
  t.after(() => nginx.stop());
  return nginx.start();
}
