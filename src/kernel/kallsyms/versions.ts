// The kallsyms versions kbx knows, by kernel series (VERSION.PATCHLEVEL).

import { KALLSYMS_6_1 } from './v6.1.js';
import { KALLSYMS_6_12 } from './v6.12.js';
import type { KallsymsVersion } from './version.js';

export const KALLSYMS_VERSIONS: readonly KallsymsVersion[] = [KALLSYMS_6_1, KALLSYMS_6_12];

/** The version for a kernel series such as '6.12', or undefined. */
export function kallsymsVersion(id: string): KallsymsVersion | undefined {
  return KALLSYMS_VERSIONS.find((v) => v.id === id);
}

export { KALLSYMS_6_1, KALLSYMS_6_12 };
