// `kbx remote check`: for setting up a shared store. Reaches each backend of
// remote_storage, and says how long a request takes and whether kbx can read
// and write there (a write stores one small record under a fixed key).
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/config.js';
import { openBackend } from '../store/remote/open.js';
import { sha256 } from '../util/hash.js';

const CHECK_KEY = sha256('kbx remote check');

async function timed<T>(op: () => Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const v = await op();
  return [v, Number(process.hrtime.bigint() - t0) / 1e6];
}

/** Prints one line per backend; returns 0 when every one could be read (and written, unless read-only). */
export async function remoteCheck(cfg: Config, out: (line: string) => void): Promise<number> {
  if (!cfg.remotes.length) {
    out("kbx: no shared store: remote_storage is empty (set it in kbx.conf or KBX_REMOTE_STORAGE)");
    return 1;
  }
  let failed = 0;
  for (const spec of cfg.remotes) {
    const b = openBackend(spec);
    const parts: string[] = [];
    try {
      await timed(() => b.get('ac', CHECK_KEY)); // connects
      const [, ms] = await timed(() => b.get('ac', CHECK_KEY));
      parts.push(`reachable, ${ms.toFixed(1)} ms a request`, 'read ok');
      if (spec.readOnly) parts.push('write not tried (read-only)');
      else {
        const probe = randomBytes(16);
        await b.put('ac', CHECK_KEY, probe);
        const back = await b.get('ac', CHECK_KEY);
        if (back?.equals(probe)) parts.push('write ok');
        else {
          parts.push('a write was accepted but not read back');
          failed++;
        }
      }
    } catch (err) {
      parts.push((err as Error).message.replace(`${spec.display}: `, ''));
      failed++;
    } finally {
      await b.close();
    }
    out(`${spec.display}: ${parts.join('; ')}`);
  }
  return failed ? 1 : 0;
}
