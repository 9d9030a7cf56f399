// kbx make's side of replay (ARCHITECTURE.md, Replay): the environment that
// makes every make log what it reads, and the request that replays the last
// build before make starts.
import type { Config } from '../config/config.js';
import { control } from '../daemon/client.js';
import { envDigest } from '../fingerprint/key.js';
import type { ReplaySpan } from '../builds/record.js';
import type { MakeInvocation } from './make.js';

/**
 * Digest of this process's environment as keys take it, and its umask (which
 * every line's key holds too): a build replays only one made with the same.
 */
export function makeEnvDigest(cfg: Config): string {
  const umask = process.umask(); // read only: set again as it was
  return envDigest([...Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`), `umask=${umask.toString(8)}`], cfg.envIgnore);
}

/** Variables that make every make (not the lines it runs) log its reads to `makeLog` (PROTOCOL.md section 3, "Make log"). */
export function makeLogEnv(tracer: string, makeLog: string): NodeJS.ProcessEnv {
  const preload = process.env.LD_PRELOAD;
  return { KBX_MAKE_LOG: makeLog, LD_PRELOAD: preload ? `${tracer} ${preload}` : tracer };
}

/** Asks the daemon to replay; undefined when it could not (the build runs as without replay). */
export async function replayBeforeMake(sock: string, buildId: string, inv: MakeInvocation, args: string[], digest: string): Promise<ReplaySpan | undefined> {
  try {
    return await control<ReplaySpan>(sock, { cmd: 'replay', build: buildId, dir: inv.dir, args, envDigest: digest, roots: inv.roots }, 600_000);
  } catch {
    return undefined;
  }
}

