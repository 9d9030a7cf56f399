// `kbx link-vmlinux`: the replacement for scripts/link-vmlinux.sh. A tree
// whose script kbx knows is linked once (link-6.1.ts, with its version's own
// steps from v6.1.ts or v6.12.ts); any other tree, and any
// build where the single link does not fit, runs the tree's own script.

import { resolve } from 'node:path';
import { detectScript } from './detect.js';
import { LinkMisfit, LinkStepError, type LinkListener, type LinkReport } from './events.js';
import { runStockScript } from './fallback.js';
import type { EarlyStart } from './early.js';
import { srctree, type LinkInputs } from './kbuild-env.js';
import { linkOnce, type SingleLinkOptions } from './link-6.1.js';
import { LINK_VERSIONS } from './versions.js';

export { LinkMisfit, LinkStepError, type LinkEvent, type LinkListener, type LinkReport, type LinkStep } from './events.js';
export { linkInputs, type LinkInputs } from './kbuild-env.js';
export { detectScript, type Detection } from './detect.js';
export { DEFAULT_MARGIN, type Margin } from './reserve.js';
export { startEarly, type EarlyStart } from './early.js';
export type { SingleLinkOptions } from './link-6.1.js';

export interface LinkResult {
  status: number;
  report: LinkReport;
  /** A step failed (its message is for the user, like the script's own). */
  error?: string;
}

/**
 * Links vmlinux as the tree's script would, once where kbx knows the script.
 * `early` is the script's first step already started (early.ts); the tree's
 * script, when it runs, runs only after that step has ended.
 */
export async function linkVmlinux(inp: LinkInputs, emit: LinkListener, opts: SingleLinkOptions = {}, early?: EarlyStart): Promise<LinkResult> {
  const t0 = performance.now();
  const stock = async (reason: string, quiet = false): Promise<LinkResult> => {
    if (!quiet) emit({ kind: 'fallback', reason });
    if (early) await early.made;
    const status = runStockScript(inp, emit);
    const report: LinkReport = { mode: 'stock', reason, links: 0, seconds: (performance.now() - t0) / 1000 };
    emit({ kind: 'done', report });
    return { status, report };
  };
  if (inp.args[0] === 'clean') return stock('clean is left to the script', true);
  if (inp.args.length !== 3) return stock(`the script takes 3 arguments (LD, KBUILD_LDFLAGS, LDFLAGS_vmlinux), got ${inp.args.length}`);
  const det = detectScript(resolve(inp.cwd, srctree(inp)));
  if (!det.known) return stock(det.reason);
  try {
    const report = await linkOnce(LINK_VERSIONS[det.version], inp, emit, opts, early);
    report.seconds = (performance.now() - t0) / 1000;
    report.startup = t0 / 1000; // performance.now() counts from the process's start
    emit({ kind: 'done', report });
    return { status: 0, report };
  } catch (e) {
    if (e instanceof LinkMisfit) return stock(e.reason);
    if (e instanceof LinkStepError) {
      return { status: e.status || 1, error: e.message, report: { mode: 'single', links: 0, seconds: (performance.now() - t0) / 1000 } };
    }
    // Never the reason a build fails: anything unexpected is reported in the
    // one line and the script does the link.
    return stock(`internal error: ${(e as Error).stack ?? String(e)}`.split('\n').slice(0, 2).join(' '));
  }
}
