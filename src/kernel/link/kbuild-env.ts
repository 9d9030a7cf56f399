// What scripts/link-vmlinux.sh receives from scripts/Makefile.vmlinux: three
// arguments ("$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)", or "clean"),
// the variables kbuild exports, and include/config/auto.conf in the current
// directory (the object tree). Read once into one value.

import { readFileSync } from 'node:fs';

export interface LinkInputs {
  /** The object tree (the script runs there). */
  cwd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** CONFIG_* options that are =y in include/config/auto.conf. */
  enabled: Set<string>;
}

/** Shell word splitting of an unquoted expansion (no globs in kbuild's flags). */
export function words(v: string | undefined): string[] {
  return (v ?? '').split(/[ \t\n]+/).filter((w) => w.length > 0);
}

export function readAutoConf(text: string): Set<string> {
  const on = new Set<string>();
  for (const m of text.matchAll(/^(CONFIG_\w+)=y$/gm)) on.add(m[1]!);
  return on;
}

export function linkInputs(cwd: string, args: string[], env: NodeJS.ProcessEnv): LinkInputs {
  let conf = '';
  try {
    conf = readFileSync(`${cwd}/include/config/auto.conf`, 'utf8');
  } catch {
    /* the script greps it and treats a missing file as "nothing enabled" (grep fails) */
  }
  return { cwd, args, env, enabled: readAutoConf(conf) };
}

export const srctree = (i: LinkInputs): string => i.env.srctree || '.';
export const objtree = (i: LinkInputs): string => i.env.objtree || '.';

/** The script's path as make's `$<` names it (what .vmlinux.d records). */
export function scriptPath(i: LinkInputs): string {
  const s = srctree(i);
  return s === '.' ? 'scripts/link-vmlinux.sh' : `${s}/scripts/link-vmlinux.sh`;
}
