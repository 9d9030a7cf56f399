// Linux 6.12's scripts/link-vmlinux.sh: what is its own (see version.ts and
// ../VERSIONS.md). mksysmap is a sed script applied to `nm -n`, with the
// names 6.1's kallsyms dropped itself; sorttable reads `nm -S` output;
// resolve_btfids depends on CONFIG_DEBUG_INFO_BTF alone.
//
// Without kallsyms the script links vmlinux once too (BTF aside, which is
// left to it): `kbx make` routes the link to kbx only with CONFIG_KALLSYMS.
//
// What the single link does not do for 6.12 yet, and leaves to the script:
// BTF (6.12 encodes it from .tmp_vmlinux1, linked with an empty table and
// debug info: the .BTF room is not shown to get the same bytes), a link map
// (CONFIG_VMLINUX_MAP), and clang LTO.

import { KALLSYMS_6_12 } from '../kallsyms/versions.js';
import { objtree, srctree, words } from './kbuild-env.js';
import type { LinkVersion } from './version.js';

const LEFT_TO_SCRIPT: readonly [string, string][] = [
  ['CONFIG_DEBUG_INFO_BTF', 'BTF'],
  ['CONFIG_VMLINUX_MAP', 'a link map (CONFIG_VMLINUX_MAP)'],
  ['CONFIG_LTO_CLANG', 'clang LTO'],
];

/** 6.12's scripts/mksysmap, sed `/…/d` rules, as tests of one `<addr> <type> <name>` line's type and name. */
function mksysmapDrops(type: string, name: string): boolean {
  return (
    'aNUw'.includes(type) ||
    name.startsWith('$') ||
    name.startsWith('.L') ||
    name.startsWith('__efistub_') ||
    name.startsWith('__pi_$') ||
    name.startsWith('__pi_.L') ||
    name.startsWith('__kvm_nvhe_$') ||
    name.startsWith('__kvm_nvhe_.L') ||
    /^__[A-Za-z0-9]*Thunk_/.test(name) ||
    name.startsWith('__kcfi_typeid_') ||
    name.startsWith('__kvm_nvhe___kcfi_typeid_') ||
    name.startsWith('__pi___kcfi_typeid_') ||
    name.startsWith('__crc_') ||
    name.startsWith('__kstrtab_') ||
    name.startsWith('__kstrtabns_') ||
    name.endsWith('_from_arm') ||
    name.endsWith('_from_thumb') ||
    name.endsWith('_veneer') ||
    name === 'L0' ||
    name === '_SDA_BASE_' ||
    name === '_SDA2_BASE_' ||
    name.includes('.long_branch.') ||
    name.includes('.plt_branch.')
  );
}

export const LINK_6_12: LinkVersion = {
  id: '6.12',
  kallsyms: KALLSYMS_6_12,
  savesLinksWith: ['CONFIG_KALLSYMS'],
  misfit: (on) => {
    const left = LEFT_TO_SCRIPT.filter(([o]) => on(o)).map(([, what]) => what);
    return left.length ? `kbx does not link Linux 6.12 with ${left.join(', ')} in one step yet` : undefined;
  },
  // mksysmap(): ${NM} -n "${1}" | sed -f "${srctree}/scripts/mksysmap" > "${2}" (the status is sed's: no pipefail)
  mksysmapArgv: (inp, vmlinux, out) => [
    ...words(inp.env.CONFIG_SHELL || 'sh'),
    '-c',
    '${NM} -n "$1" | sed -f "$2" > "$3"',
    'mksysmap',
    vmlinux,
    `${srctree(inp)}/scripts/mksysmap`,
    out,
  ],
  mksysmapDrops,
  // sorttable(), run as `if ! sorttable vmlinux`: set -e is off inside, so the status is sorttable's.
  sorttableArgv: (inp) => [
    ...words(inp.env.CONFIG_SHELL || 'sh'),
    '-c',
    '${NM} -S "$1" > .tmp_vmlinux.nm-sort; "$2" -s .tmp_vmlinux.nm-sort "$1"',
    'sorttable',
    'vmlinux',
    `${objtree(inp)}/scripts/sorttable`,
  ],
  resolvesBtfIds: (on) => on('CONFIG_DEBUG_INFO_BTF'),
};
