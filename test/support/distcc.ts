// Real distccd servers (Debian's distcc) for the tests: each on a free
// 127.0.0.1 port, with its own log, stopped by the test (and by process exit,
// should a test crash). DISTCC_HOSTS names them by address: the word
// `localhost` there means "compile here, without distccd".
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './kbx.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './redis.js';
import { program, type Need } from './tools.js';

export const distccNeeds: Need[] = [program('distcc', 'distcc'), program('distccd', 'distcc')];

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) killGroup(p, 'SIGKILL');
});

/** distccd preforks workers: the whole process group it leads goes. */
function killGroup(p: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-p.pid!, sig);
  } catch {
    /* gone already */
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.setTimeout(200, () => (s.destroy(), res(false)));
    s.on('error', () => res(false));
    s.on('connect', () => (s.destroy(), res(true)));
  });
}

export class Distccd {
  private proc?: ChildProcess;
  readonly log: string;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {
    this.log = join(dir, 'distccd.log');
  }

  /** A distccd serving `jobs` compiles at once. As root it runs as user distccd: its directory is open to it. */
  static async start(jobs = 2): Promise<Distccd> {
    const dir = tempDir('distccd');
    chmodSync(dir, 0o777);
    const d = new Distccd(await freePort(), dir);
    const args = ['--daemon', '--no-detach', '--allow', '127.0.0.1', '--listen', '127.0.0.1', '--port', String(d.port)];
    args.push('--jobs', String(jobs), '--log-file', d.log, '--log-level', 'info');
    const p = spawn('distccd', args, { stdio: 'ignore', detached: true });
    running.add(p);
    p.once('exit', () => running.delete(p));
    d.proc = p;
    for (let i = 0; i < 200; i++) {
      if (p.exitCode !== null) break;
      if (await accepts(d.port)) return d;
      await sleep(25);
    }
    throw new Error(`distccd on port ${d.port} did not start: see ${d.log}`);
  }

  /** This server's entry in DISTCC_HOSTS. */
  host(jobs = 2): string {
    return `127.0.0.1:${this.port}/${jobs}`;
  }

  /** How many compiles it served and finished well (its log's COMPILE_OK job summaries). */
  compilesServed(): number {
    if (!existsSync(this.log)) return 0;
    return (readFileSync(this.log, 'utf8').match(/COMPILE_OK/g) ?? []).length;
  }

  /** Its log as written so far. */
  logText(): string {
    return existsSync(this.log) ? readFileSync(this.log, 'utf8') : '';
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Stops it at once (a machine gone) and waits for its end. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = undefined;
    running.delete(p);
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((res) => p.once('exit', res));
      killGroup(p, 'SIGKILL');
      await gone;
    }
  }
}
