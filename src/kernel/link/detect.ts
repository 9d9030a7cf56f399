// Which scripts/link-vmlinux.sh a tree has. kbx replaces a script only when
// it knows it line for line, together with the scripts/kallsyms.c whose
// tables kbx's kallsyms reproduces; any other tree runs its own script.
//
// The script is compared without its comments and blank lines, so an edit
// to a comment does not turn kbx off; kallsyms.c is compared byte for byte.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type ScriptVersion = '6.1';

interface KnownScript {
  version: ScriptVersion;
  /** sha256 of link-vmlinux.sh without comment-only and blank lines. */
  script: string;
  /** sha256 of scripts/kallsyms.c. */
  kallsymsC: string;
  what: string;
}

const KNOWN: readonly KnownScript[] = [
  {
    version: '6.1',
    script: 'c724ae6af05a9342ac5f819cbd5da8e48d819a83ffe7fa7de44edef9f20215d8',
    kallsymsC: '99927d7c245af76caab30b5f6dbdebe23e50d8d6348b0ed90f5b15d5d3033d6f',
    what: "Linux 6.1 (Debian's linux-source-6.1)",
  },
];

export type Detection = { known: true; version: ScriptVersion; what: string } | { known: false; reason: string };

export function normalizedScriptHash(text: string): string {
  const kept = text.split('\n').filter((l) => !/^\s*(#.*)?$/.test(l));
  return createHash('sha256').update(kept.join('\n') + '\n').digest('hex');
}

/** Pure: what a script text and a kallsyms.c text are. */
export function classify(script: string, kallsymsC: Buffer | undefined): Detection {
  const h = normalizedScriptHash(script);
  const k = KNOWN.find((x) => x.script === h);
  if (!k) return { known: false, reason: `scripts/link-vmlinux.sh is not one kbx knows (sha256 of its code ${h.slice(0, 12)})` };
  if (!kallsymsC) return { known: false, reason: 'scripts/kallsyms.c is missing' };
  const kh = createHash('sha256').update(kallsymsC).digest('hex');
  if (kh !== k.kallsymsC) return { known: false, reason: `scripts/kallsyms.c differs from ${k.what}'s (sha256 ${kh.slice(0, 12)})` };
  return { known: true, version: k.version, what: k.what };
}

export function detectScript(srctree: string): Detection {
  let script: string;
  try {
    script = readFileSync(join(srctree, 'scripts/link-vmlinux.sh'), 'utf8');
  } catch {
    return { known: false, reason: `cannot read ${join(srctree, 'scripts/link-vmlinux.sh')}` };
  }
  let c: Buffer | undefined;
  try {
    c = readFileSync(join(srctree, 'scripts/kallsyms.c'));
  } catch {
    c = undefined;
  }
  return classify(script, c);
}
