// The rule for kbuild's module BTF line (scripts/Makefile.modfinal,
// cmd_btf_ko; the same text in Linux 6.1 and 6.12, where $(MODULE_PAHOLE_FLAGS)
// is empty for in-tree modules):
//
//   if [ ! -f vmlinux ]; then printf "Skipping BTF generation for %s due to
//   unavailability of vmlinux\n" X.ko 1>&2; else LLVM_OBJCOPY="$(OBJCOPY)"
//   $(PAHOLE) -J $(PAHOLE_FLAGS) --btf_base vmlinux X.ko;
//   $(RESOLVE_BTFIDS) -b vmlinux X.ko; fi;
//
// Such a line reads vmlinux only through libbpf's btf__parse (btf-section.ts),
// so vmlinux is valued by its .BTF: a relink that changed code but no type
// leaves every module's BTF line a hit. The text must match exactly (blanks
// aside): any other command, flag or redirection, and the rule does not apply.
// A run counts only if the programs it started are the ELF pahole and
// resolve_btfids, the objcopy pahole starts to add the section, and shells.

import { closeSync, openSync, readSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { LineProjections, ProjectionRule } from '../../fingerprint/projection.js';
import { BTF_SECTION } from './btf-section.js';

const WORD = String.raw`[A-Za-z0-9_./+-]+`;
const KO = String.raw`[A-Za-z0-9_./+-]+\.ko`;
// pahole's options as scripts/pahole-flags.sh (6.1) or Makefile.btf (6.12) give them.
const FLAGS = String.raw`(?: -[A-Za-z0-9_=,+.-]+)*`;
// What kbuild's `cmd` puts before it (scripts/Kbuild.include): `set -e;`, the
// echo of the short or whole command (quotes escaped as '\''), or with
// `make -s` a redirection, and a trap per signal that removes the target.
const ECHO = String.raw` echo '(?:[^']|'\\'')*';`;
const TRAP = String.raw` trap 'rm -f ${WORD}; trap - [A-Z]+; kill -s [A-Z]+ \$\$' [A-Z]+;`;
const KBUILD_PREFIX = String.raw`set -e;(?:${ECHO})*(?: exec >/dev/null;)?(?:${TRAP})* `;
const SHAPE = new RegExp(
  String.raw`^(?:${KBUILD_PREFIX})?if \[ ! -f vmlinux \]; then printf "Skipping BTF generation for %s due to unavailability of vmlinux\\n" (${KO}) 1>&2; ` +
    String.raw`else LLVM_OBJCOPY="${WORD}" ((?:${WORD}/)?pahole) -J${FLAGS} --btf_base vmlinux (${KO}); ` +
    String.raw`((?:${WORD}/)?resolve_btfids) -b vmlinux (${KO}); fi;$`,
);

const SHELLS = new Set(['sh', 'dash', 'bash']);
const TOOLS = new Set(['pahole', 'resolve_btfids']);
const OBJCOPY = /^(?:[A-Za-z0-9_.+-]+-)?objcopy(?:-\d+)?$/;

/** The vmlinux a module BTF line reads, if the command is that line. */
export function moduleBtfBase(command: string, cwd: string): string | undefined {
  if (!command.includes('--btf_base vmlinux ')) return undefined; // every lookup asks: most lines answer here
  const m = SHAPE.exec(command.replace(/[ \t\n]+/g, ' ').trim());
  if (!m || m[1] !== m[3] || m[1] !== m[5]) return undefined;
  return resolve(cwd, 'vmlinux');
}

function isElf(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32BE(0) === 0x7f454c46;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export const MODULE_BTF_RULE: ProjectionRule = {
  inputs(command: string, cwd: string): LineProjections | undefined {
    const base = moduleBtfBase(command, cwd);
    return base === undefined ? undefined : new Map([[base, BTF_SECTION]]);
  },
  confirms(execed: readonly string[]): boolean {
    return execed.every((p) => {
      const name = basename(p);
      // A pahole or resolve_btfids that is a script could read vmlinux with anything.
      if (TOOLS.has(name)) return isElf(p);
      return SHELLS.has(name) || OBJCOPY.test(name);
    });
  },
};

/** Every rule of the kernel knowledge that values inputs by a projection. */
export const KERNEL_PROJECTION_RULES: readonly ProjectionRule[] = [MODULE_BTF_RULE];
