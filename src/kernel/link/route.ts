// How `kbx make` sends a kernel tree's link-vmlinux.sh line to `kbx link-vmlinux`.
// (Filled in by the routing work of issue 3; until then nothing is routed.)
import type { MakeInvocation } from '../../cli/make.js';

/** Extra make arguments that route the vmlinux link through kbx, or none. */
export function linkVmlinuxMakeArgs(_inv: MakeInvocation): string[] {
  return [];
}
