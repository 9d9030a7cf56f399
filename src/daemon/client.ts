// The CLI's side of the daemon: control requests, and starting a daemon when
// none (or one running older code) serves this store directory.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configId, type Config } from '../config/config.js';
import { KbxError } from '../util/errors.js';
import { CONTROL_REPLY, CONTROL_REQUEST, FrameReader, encodeFrame } from './protocol.js';
import { checkPrivateDir, codeId, daemonLogPath, makePrivateDir, prepareKbxDir, socketPath } from './paths.js';

export interface DaemonStatus {
  pid: number;
  codeId: string;
  /** configId() of the settings the daemon read when it started. */
  configId: string;
  dir: string;
  socket: string;
  uptimeSec: number;
  rssBytes: number;
  knownFiles: number;
  storeBytes: number;
  /** How many of each thing the daemon keeps in memory (line-cache.ts and server.ts memoryCounts). */
  memory?: Record<string, number>;
}

/**
 * Sends one control request; rejects if no daemon answers within timeoutMs,
 * or, without connecting, if the socket is not in a private directory.
 */
export function control<T>(sock: string, req: Record<string, unknown>, timeoutMs = 30000): Promise<T> {
  return new Promise((resolve, reject) => {
    try {
      checkPrivateDir(dirname(sock));
    } catch (err) {
      reject(err as Error);
      return;
    }
    const s = connect(sock);
    const reader = new FrameReader();
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`daemon did not answer '${req.cmd}' within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('connect', () => s.write(encodeFrame(CONTROL_REQUEST, [JSON.stringify(req)])));
    s.on('data', (chunk) => {
      try {
        for (const f of reader.push(chunk)) {
          if (f.type !== CONTROL_REPLY) throw new Error(`unexpected reply type ${f.type}`);
          clearTimeout(timer);
          s.destroy();
          const body = JSON.parse(f.fields[0]?.toString() ?? '{}') as T & { error?: string };
          if (body.error) reject(new Error(body.error));
          else resolve(body);
        }
      } catch (err) {
        clearTimeout(timer);
        s.destroy();
        reject(err as Error);
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function daemonStatus(cfg: Config): Promise<DaemonStatus | undefined> {
  try {
    return await control<DaemonStatus>(socketPath(cfg.dir), { cmd: 'status' }, 5000);
  } catch {
    return undefined;
  }
}

/** Like daemonStatus, but a socket directory that is not private is an error, not "no daemon". */
async function checkedStatus(sock: string): Promise<DaemonStatus | undefined> {
  try {
    return await control<DaemonStatus>(sock, { cmd: 'status' }, 5000);
  } catch (err) {
    if (err instanceof KbxError) throw err;
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Returns the socket of a daemon running this kbx's code, starting one if
 * needed. Makes KBX_DIR's private directories first, and throws KbxError
 * (KBX_UNSAFE_DIR) rather than connect to, or hand the shims, a socket in a
 * directory another user could write.
 */
export async function ensureDaemon(cfg: Config): Promise<string> {
  const sock = socketPath(cfg.dir);
  prepareKbxDir(cfg.dir);
  makePrivateDir(dirname(sock));
  const want = codeId();
  const wantConfig = configId(cfg);
  const current = (st: DaemonStatus | undefined) => st?.codeId === want && st.configId === wantConfig;
  const st = await checkedStatus(sock);
  if (current(st)) return sock;
  if (st) {
    await control(sock, { cmd: 'stop' }).catch(() => {});
    for (let i = 0; i < 100 && (await checkedStatus(sock)); i++) await sleep(50);
  }
  const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
  // A daemon that is still shutting down makes a new one give up at once; try again.
  for (let attempt = 0; attempt < 5; attempt++) {
    const log = openSync(daemonLogPath(cfg.dir), 'a');
    const child = spawn(process.execPath, [main], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, KBX_DIR: cfg.dir },
    });
    child.unref();
    for (let i = 0; i < 200; i++) {
      const now = await checkedStatus(sock);
      if (current(now)) return sock;
      if (child.exitCode !== null) break;
      await sleep(25);
    }
  }
  throw new KbxError(
    'KBX_DAEMON_START',
    `the kbx daemon did not start for ${cfg.dir}`,
    `see ${daemonLogPath(cfg.dir)}; the build can still run without kbx`,
  );
}
