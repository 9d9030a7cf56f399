// The first step of 6.1's link, started before the rest of kbx has loaded.
//
// Both the script and kbx begin with `make init/version-timestamp.o` (most
// of it the compile of version-timestamp.c), and kbx predicts the kallsyms
// table while it runs. Node loads kbx's kallsyms and ELF code in tens of
// milliseconds that the make can use: this module imports nothing heavy, so
// the CLI can start the make first and load the rest meanwhile. It starts
// only for a tree kbx knows (on any other the tree's script runs untouched),
// and keeps version-timestamp.o's bytes as they were before the make began
// (the prediction reads its symbols; the make rewrites the file).

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { detectScript } from './detect.js';
import type { LinkListener } from './events.js';
import { runAsync } from './exec.js';
import { TIMESTAMP_COPY, waitForMade } from './made.js';
import { srctree, words, type LinkInputs } from './kbuild-env.js';

export const TIMESTAMP = 'init/version-timestamp.o';

export interface EarlyStart {
  /** init/version-timestamp.o before the make (undefined when there was none). */
  timestampBefore: Buffer | undefined;
  /** The make's exit status. */
  made: Promise<number>;
  /** When the make started (performance.now(); 0 when the recipe's shell started it, just before node). */
  at: number;
}

/** make's arguments for init/version-timestamp.o, as the script gives them (also in the routed recipe: route.ts). */
export function timestampMakeArgs(srctree: string): string[] {
  return ['-f', `${srctree}/scripts/Makefile.build`, 'obj=init', TIMESTAMP];
}

/** `make -f scripts/Makefile.build obj=init init/version-timestamp.o`, as the script runs it. */
export function timestampMake(inp: LinkInputs, emit: LinkListener): Promise<number> {
  return runAsync({ cwd: inp.cwd, env: inp.env, emit }, [...words(inp.env.MAKE || 'make'), ...timestampMakeArgs(srctree(inp))]);
}

function readIfThere(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Starts the make when the single link will want it; undefined when the
 * tree's script is to run. When the routed recipe's shell has started it
 * already (KBX_LINK_MADE is its pid, made.ts), waits for that one instead,
 * whatever the tree: the script must not start a second make beside it.
 */
export function startEarly(inp: LinkInputs, emit: LinkListener): EarlyStart | undefined {
  const shell = inp.env.KBX_LINK_MADE;
  if (shell && /^\d+$/.test(shell)) {
    // Absent on a first link: the prediction then waits for the make.
    const timestampBefore = readIfThere(resolve(inp.cwd, TIMESTAMP_COPY));
    const lost = () => emit({ kind: 'warning', message: `the shell that ran make ${TIMESTAMP} ended without leaving its exit status` });
    return { timestampBefore, at: 0, made: waitForMade(inp.cwd, Number(shell), lost) };
  }
  if (inp.args.length !== 3 || !detectScript(resolve(inp.cwd, srctree(inp))).known) return undefined;
  const timestampBefore = readIfThere(resolve(inp.cwd, TIMESTAMP));
  return { timestampBefore, at: performance.now(), made: timestampMake(inp, emit) };
}
