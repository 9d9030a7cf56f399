// Where a daemon for a given KBX_DIR listens and logs. One daemon per store
// directory; the socket sits in the directory when the path fits a Unix
// socket address (108 bytes), otherwise in /tmp under a hash of the directory.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../util/hash.js';

export function socketPath(dir: string): string {
  const inDir = join(dir, 'daemon.sock');
  if (Buffer.byteLength(inDir) < 100) return inDir;
  return join(tmpdir(), `kbx-${process.getuid?.() ?? 0}-${sha256(dir).slice(0, 16)}.sock`);
}

export function daemonLogPath(dir: string): string {
  return join(dir, 'daemon.log');
}

/**
 * Identifies the code a daemon runs: a digest of the compiled files. A CLI
 * that finds a daemon with a different id restarts it, so a rebuilt kbx never
 * talks to an old daemon.
 */
export function codeId(): string {
  const distSrc = join(dirname(fileURLToPath(import.meta.url)), '..');
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.js')) h.update(name).update(readFileSync(p));
    }
  };
  walk(distSrc);
  return h.digest('hex').slice(0, 16);
}
