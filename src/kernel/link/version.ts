// What one kernel version's scripts/link-vmlinux.sh (and scripts/mksysmap)
// does differently, behind one interface: the single link (link-6.1.ts, the
// steps every version shares) asks it. One file per version (v6.1.ts,
// v6.12.ts), listed in versions.ts; a new kernel is a new file there and a
// line in detect.ts. ../VERSIONS.md lists what differs and why.

import type { KallsymsVersion } from '../kallsyms/version.js';
import type { LinkInputs } from './kbuild-env.js';

/** The versions kbx links in one step (detect.ts maps a script to one). */
export type ScriptVersion = '6.1' | '6.12';

export interface LinkVersion {
  readonly id: ScriptVersion;
  /** The scripts/kallsyms.c the script runs. */
  readonly kallsyms: KallsymsVersion;
  /**
   * Options of which one must be on (in include/config/auto.conf) for the
   * single link to save a link over the script's; undefined: always routed.
   * Without them `kbx make` leaves the link to the script, which links once
   * too and needs no node start (route.ts tests this in the recipe's shell).
   */
  readonly savesLinksWith?: readonly string[];
  /** Why a build with these options is left to the tree's script, or undefined when the single link does it. */
  misfit(on: (option: string) => boolean): string | undefined;
  /** mksysmap(): the map of `vmlinux` written to `out`, as one argv (a shell where the script pipes). */
  mksysmapArgv(inp: LinkInputs, vmlinux: string, out: string): string[];
  /** What scripts/mksysmap removes from `nm -n` (by type letter and name), for the table prediction (estimate.ts). */
  mksysmapDrops(type: string, name: string): boolean;
  /** sorttable() on vmlinux, as one argv; its status is the script's `if ! sorttable vmlinux`. */
  sorttableArgv(inp: LinkInputs): string[];
  /** Whether the script runs resolve_btfids on vmlinux. */
  resolvesBtfIds(on: (option: string) => boolean): boolean;
}
