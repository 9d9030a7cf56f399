// The tree's own scripts/link-vmlinux.sh, run unchanged: with the arguments
// and environment kbx was given, as make would have run it (`$<` with the
// path make gives it, so the script's `$0` and .vmlinux.d are the same).

import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { LinkListener } from './events.js';
import { tryRun } from './exec.js';
import { scriptPath, words, type LinkInputs } from './kbuild-env.js';

/** Runs the stock script and returns its exit status. */
export function runStockScript(inp: LinkInputs, emit: LinkListener): number {
  const script = scriptPath(inp);
  let argv: string[];
  try {
    accessSync(join(inp.cwd, script), constants.X_OK);
    argv = [script.includes('/') ? script : `./${script}`, ...inp.args];
  } catch {
    argv = [...words(inp.env.CONFIG_SHELL || 'sh'), script, ...inp.args];
  }
  return tryRun({ cwd: inp.cwd, env: inp.env, emit }, argv);
}
