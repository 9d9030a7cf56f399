// The link-vmlinux.sh versions kbx links in one step, by id.

import { LINK_6_1 } from './v6.1.js';
import { LINK_6_12 } from './v6.12.js';
import type { LinkVersion, ScriptVersion } from './version.js';

export const LINK_VERSIONS: Readonly<Record<ScriptVersion, LinkVersion>> = { '6.1': LINK_6_1, '6.12': LINK_6_12 };

export { LINK_6_1, LINK_6_12 };
