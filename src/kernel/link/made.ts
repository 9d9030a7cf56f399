// The script's first step started by the shell before node: when `kbx make`
// routes the link (route.ts), the recipe starts `make init/version-timestamp.o`
// in the background at once, since node takes about 0.1 s to start and the
// make is on the link's critical path, and leaves the make's exit status in
// MADE_FILE. kbx waits for that file. The background shell's pid comes along,
// so a shell that died without writing a status (killed) ends the wait
// instead of hanging the build.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the shell leaves the make's exit status, in the object tree (`.tmp_*`: make clean removes it). */
export const MADE_FILE = '.tmp_vmlinux.kbx.made';
/** kbx's copy of init/version-timestamp.o from the last link: what the prediction reads while the make rewrites the real one. */
export const TIMESTAMP_COPY = '.tmp_vmlinux.kbx.timestamp.o';

/** Whether `pid` is a process that has not exited (a zombie has: its parent, the recipe's shell, waits for kbx). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function status(file: string): number | undefined {
  try {
    const m = /^(\d+)\n/.exec(readFileSync(file, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves to the make's exit status once the shell has written it (1 when the shell ended without one). */
export function waitForMade(cwd: string, pid: number, onLost: () => void): Promise<number> {
  const file = join(cwd, MADE_FILE);
  return new Promise((resolve) => {
    const poll = (): void => {
      const s = status(file);
      if (s !== undefined) return resolve(s);
      if (!running(pid)) {
        const last = status(file); // written just before it ended
        if (last !== undefined) return resolve(last);
        onLost();
        return resolve(1);
      }
      setTimeout(poll, 2);
    };
    poll();
  });
}
