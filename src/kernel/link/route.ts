// How `kbx make` sends a kernel tree's link-vmlinux.sh line to `kbx link-vmlinux`.
//
// scripts/Makefile.vmlinux links vmlinux with
//
//   cmd_link_vmlinux = $< "$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)"; <ARCH_POSTLINK>
//
// where `$<` is scripts/link-vmlinux.sh. A variable given on make's command
// line wins over the makefile's, and make hands it to every sub-make through
// MAKEFLAGS, so one argument routes the link: the same recipe with kbx in the
// script's place. Because the recipe text is what kbuild records in
// .vmlinux.cmd, turning routing on or off (or moving kbx) relinks once.
//
// Routed only when kbx knows the tree's script (detect.ts) and the tree's
// Makefile.vmlinux defines the recipe exactly as replaced here; any other
// tree gets no argument and runs its own script. A version whose script
// links once without some options (6.12 without kallsyms) is routed with a
// test of them in the recipe (routeOverride).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MakeInvocation } from '../../cli/make.js';
import { detectScript, type Detection } from './detect.js';
import { timestampMakeArgs } from './early.js';
import { MADE_FILE } from './made.js';
import { LINK_VERSIONS } from './versions.js';

const SCRIPT_ARGS = '"$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)"';
const POSTLINK = '$(if $(ARCH_POSTLINK), $(MAKE) -f $(ARCH_POSTLINK) $@, true)';
/** The recipe as 6.1's and 6.12's scripts/Makefile.vmlinux define it (whitespace and line continuations aside). */
const STOCK_RECIPE = `$< ${SCRIPT_ARGS}; ${POSTLINK}`;

/** The kbx CLI this module belongs to: dist/src/cli/link-vmlinux.js next to dist/src/kernel/link/route.js. */
export const kbxLinkEntry = fileURLToPath(new URL('../../cli/link-vmlinux.js', import.meta.url));

export type Route = { routed: true; srctree: string; what: string; args: string[] } | { routed: false; reason: string };

/** The source tree of a make directory: itself, or what an O= object tree's `source` link points to. */
export function sourceTree(dir: string): string {
  if (!existsSync(join(dir, 'scripts/link-vmlinux.sh')) && existsSync(join(dir, 'source/scripts/link-vmlinux.sh'))) return join(dir, 'source');
  return dir;
}

/** A word for the shell inside a make variable: single-quoted, `$` doubled for make. */
export function makeShellWord(s: string): string {
  return shellWord(s).replace(/\$/g, '$$$$');
}

/** A word for the shell: single-quoted. */
export function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The shell text in the script's place. The script's first step, make for
 * init/version-timestamp.o, is started in the background at once (node
 * takes about 0.1 s to start, and that make is on the link's critical path);
 * the background shell leaves the make's status in MADE_FILE and kbx, told
 * its pid, waits for it (made.ts). The line runs make, so the shim passes it
 * through (as it does anyway under -j, where the recipe's `+` hands it the
 * jobserver) and never caches the link.
 *
 * `make`, `makeValue`, `srctree`, `node` and `entry` are shell text; `d` is
 * how a `$` of the shell is written (`$$` inside a make variable).
 */
function linkCommand(w: { make: string; makeValue: string; srctree: string; node: string; entry: string }, d: string): string {
  const step = [w.make, ...timestampMakeArgs(w.srctree)].join(' ');
  // set +e: kbuild runs recipes under set -e, which would end the group before a failed make's status is written.
  return `: > ${MADE_FILE}; { set +e; ${step}; echo ${d}? > ${MADE_FILE}; } & KBX_LINK_MADE=${d}! MAKE=${w.makeValue} ${w.node} ${w.entry}`;
}

/**
 * The command-line override that runs the routed link (linkCommand) in the
 * script's place. MAKE is already in the environment, with this value.
 * With `onlyWith` (LinkVersion.savesLinksWith), the recipe's shell asks the
 * tree's include/config/auto.conf first, as the script's is_enabled does,
 * and runs the script itself when none of them is on: the recipe text stays
 * the same whatever the configuration, so a changed .config relinks no more
 * often than plain make.
 */
export function routeOverride(node: string, entry: string, onlyWith?: readonly string[]): string {
  const kbx = linkCommand({ make: '$(MAKE)', makeValue: "'$(MAKE)'", srctree: '"$(srctree)"', node: makeShellWord(node), entry: makeShellWord(entry) }, '$$');
  if (!onlyWith) return `cmd_link_vmlinux=${STOCK_RECIPE.replace('$<', () => kbx)}`; // a function: kbx's $$ is no replacement pattern
  const test = `grep -q ${onlyWith.map((o) => `-e '^${o}=y'`).join(' ')} include/config/auto.conf`;
  return `cmd_link_vmlinux=if ${test}; then ${kbx} ${SCRIPT_ARGS}; else $< ${SCRIPT_ARGS}; fi; ${POSTLINK}`;
}

/** The routed link as plain shell text, make and srctree given: what the override runs, for tests and benchmarks (append the three arguments). */
export function routedShellCommand(node: string, entry: string, make: string, srctree: string): string {
  return linkCommand({ make: shellWord(make), makeValue: shellWord(make), srctree: shellWord(srctree), node: shellWord(node), entry: shellWord(entry) }, '$');
}

/** The definition of cmd_link_vmlinux in a Makefile.vmlinux text, joined and with runs of blanks made one space. */
export function recipeOf(makefile: string): string | undefined {
  const m = /^cmd_link_vmlinux\s*=((?:[^\n]*\\\n)*[^\n]*)$/m.exec(makefile);
  return m ? m[1]!.replace(/\\\n/g, ' ').replace(/[ \t]+/g, ' ').trim() : undefined;
}

/** Pure: whether a tree with this detection and Makefile.vmlinux can be routed. */
export function routable(det: Detection, makefileVmlinux: string | undefined): { ok: true } | { ok: false; reason: string } {
  if (!det.known) return { ok: false, reason: det.reason };
  if (makefileVmlinux === undefined) return { ok: false, reason: 'scripts/Makefile.vmlinux is missing' };
  const r = recipeOf(makefileVmlinux);
  if (r !== STOCK_RECIPE) return { ok: false, reason: 'scripts/Makefile.vmlinux links vmlinux with another recipe than the one kbx replaces' };
  return { ok: true };
}

export function route(dir: string, node = process.execPath, entry = kbxLinkEntry): Route {
  const src = sourceTree(dir);
  const det = detectScript(src);
  let mk: string | undefined;
  try {
    mk = readFileSync(join(src, 'scripts/Makefile.vmlinux'), 'utf8');
  } catch {
    mk = undefined;
  }
  const ok = routable(det, mk);
  if (!ok.ok || !det.known) return { routed: false, reason: ok.ok ? '' : ok.reason };
  return { routed: true, srctree: src, what: det.what, args: [routeOverride(node, entry, LINK_VERSIONS[det.version].savesLinksWith)] };
}

/** Goals that never link vmlinux, for which an unrouted kernel tree is not worth a word. */
const NO_LINK_GOAL = /^(?:.*config|clean|mrproper|distclean|help|kernelversion|kernelrelease|headers_install|scripts_gdb)$/;

/**
 * Extra make arguments that route the vmlinux link through kbx, or none.
 * A kernel tree kbx does not route (another version or script) is told to
 * `say`, in one line, since its link is then the stock script.
 */
export function linkVmlinuxMakeArgs(inv: MakeInvocation, say: (line: string) => void = () => {}): string[] {
  const r = route(inv.dir);
  if (r.routed) return r.args;
  const kernel = existsSync(join(sourceTree(inv.dir), 'scripts/link-vmlinux.sh'));
  const linking = inv.goals.length === 0 || inv.goals.some((g) => !NO_LINK_GOAL.test(g));
  if (kernel && linking) say(`kbx: vmlinux is linked by the tree's own scripts/link-vmlinux.sh: ${r.reason}\n`);
  return [];
}
