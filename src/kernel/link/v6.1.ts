// Linux 6.1's scripts/link-vmlinux.sh: what is its own (see version.ts).

import { KALLSYMS_6_1 } from '../kallsyms/versions.js';
import { objtree, srctree, words } from './kbuild-env.js';
import type { LinkVersion } from './version.js';

export const LINK_6_1: LinkVersion = {
  id: '6.1',
  kallsyms: KALLSYMS_6_1,
  // Absolute addresses would each need a relocation in a relocatable kernel (only ia64 has them in 6.1).
  misfit: (on) =>
    on('CONFIG_KALLSYMS') && !on('CONFIG_KALLSYMS_BASE_RELATIVE') ? 'kallsyms tables without CONFIG_KALLSYMS_BASE_RELATIVE are left to the script' : undefined,
  mksysmapArgv: (inp, vmlinux, out) => [...words(inp.env.CONFIG_SHELL || 'sh'), `${srctree(inp)}/scripts/mksysmap`, vmlinux, out],
  // 6.1's scripts/mksysmap: `$NM -n $1 | grep -v -e ' [aNUw] ' -e ' \$' -e ' \.L' -e ' __crc_' -e ' __kstrtab_' -e ' __kstrtabns_' -e ' L0$'`
  mksysmapDrops: (type, name) =>
    type === 'a' ||
    type === 'N' ||
    type === 'U' ||
    type === 'w' ||
    name.startsWith('$') ||
    name.startsWith('.L') ||
    name.startsWith('__crc_') ||
    name.startsWith('__kstrtab_') ||
    name.startsWith('__kstrtabns_') ||
    name === 'L0',
  sorttableArgv: (inp) => [`${objtree(inp)}/scripts/sorttable`, 'vmlinux'],
  resolvesBtfIds: (on) => on('CONFIG_DEBUG_INFO_BTF') && on('CONFIG_BPF'),
};
