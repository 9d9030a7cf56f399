// `kbx link-vmlinux "$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)"`: run in
// the object tree where make runs scripts/link-vmlinux.sh, with the same
// arguments and environment. Prints the script's progress lines, one line
// when it falls back to the tree's script, and (with KBX_LINK_REPORT=path) a
// JSON report of what it did. Returns the exit status.

import { realpathSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
// Only light modules load before the link's first step has started (early.ts).
import { startEarly } from '../kernel/link/early.js';
import type { LinkEvent } from '../kernel/link/events.js';
import { linkInputs } from '../kernel/link/kbuild-env.js';
import { KbxError } from '../util/errors.js';

function printer(verbose: boolean): (e: LinkEvent) => void {
  return (e) => {
    switch (e.kind) {
      case 'info':
        process.stdout.write(`  ${e.tag.padEnd(7)} ${e.target}\n`);
        break;
      case 'trace':
        if (verbose) process.stderr.write(`+ ${e.argv.join(' ')}\n`);
        break;
      case 'warning':
        process.stderr.write(`kbx link-vmlinux: ${e.message}\n`);
        break;
      case 'fallback':
        process.stderr.write(`kbx link-vmlinux: running scripts/link-vmlinux.sh instead: ${e.reason}\n`);
        break;
      case 'done':
        if (verbose && e.report.kallsyms) {
          const k = e.report.kallsyms;
          process.stderr.write(
            `kbx link-vmlinux: ${e.report.links} link(s), kallsyms ${k.symbols} symbols, ${k.tableBytes} of ${k.reservedBytes} reserved bytes used ` +
              `(padding ${k.paddingBytes}, ${((100 * k.paddingBytes) / k.tableBytes).toFixed(2)} %)\n`,
          );
        }
        break;
    }
  };
}

function namesExtra(env: NodeJS.ProcessEnv): number {
  const v = env.KBX_LINK_NAMES_MARGIN;
  if (v === undefined || v === '') return 0;
  if (!/^-?\d+$/.test(v)) {
    throw new KbxError('KBX_BAD_LINK_MARGIN', `KBX_LINK_NAMES_MARGIN=${v} is not a whole number of bytes`, 'unset it, or give bytes to add to (or, negative, take from) the reserved kallsyms_names');
  }
  return Number(v);
}

export async function kbxLinkVmlinux(args: string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<number> {
  const verbose = /1/.test(env.KBUILD_VERBOSE ?? '');
  const extra = namesExtra(env);
  const inp = linkInputs(cwd, args, env);
  const print = printer(verbose);
  const early = startEarly(inp, print);
  const { linkVmlinux } = await import('../kernel/link/index.js');
  const res = await linkVmlinux(inp, print, { namesExtra: extra }, early);
  if (res.error) process.stderr.write(`${res.error}\n`);
  if (env.KBX_LINK_REPORT) writeFileSync(env.KBX_LINK_REPORT, JSON.stringify({ status: res.status, ...res.report }, null, 2) + '\n');
  return res.status;
}

// Run directly (`node dist/src/cli/link-vmlinux.js ARGS`, as `kbx make` routes
// the link): the same command without loading the rest of the CLI, since the
// link waits for node to start.
function runDirectly(): boolean {
  try {
    return !!process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (runDirectly()) {
  kbxLinkVmlinux(process.argv.slice(2)).then(
    (status) => (process.exitCode = status),
    (e: unknown) => {
      process.stderr.write(e instanceof KbxError ? `${e.format()}\n` : `kbx link-vmlinux: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
