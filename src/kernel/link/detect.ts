// Which Linux a tree is and which scripts/link-vmlinux.sh it has. The
// version comes from the Makefile (VERSION, PATCHLEVEL); kbx replaces a
// script only when it knows it line for line for that version, together
// with the scripts/kallsyms.c whose tables kbx's kallsyms reproduces, and
// has a single link for it. Any other tree runs its own script.
//
// The script is compared without its comments and blank lines, so an edit
// to a comment does not turn kbx off; kallsyms.c is compared byte for byte.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { ScriptVersion } from './version.js';

export type { ScriptVersion } from './version.js';

interface KnownScript {
  /** The kernel series (VERSION.PATCHLEVEL) the script belongs to. */
  series: string;
  /** sha256 of link-vmlinux.sh without comment-only and blank lines. */
  script: string;
  /** sha256 of scripts/kallsyms.c. */
  kallsymsC: string;
  what: string;
  /** The single link kbx has for it; none yet: the tree's script runs. */
  links?: ScriptVersion;
}

const KNOWN: readonly KnownScript[] = [
  {
    series: '6.1',
    script: 'c724ae6af05a9342ac5f819cbd5da8e48d819a83ffe7fa7de44edef9f20215d8',
    kallsymsC: '99927d7c245af76caab30b5f6dbdebe23e50d8d6348b0ed90f5b15d5d3033d6f',
    what: "Linux 6.1 (Debian's linux-source-6.1)",
    links: '6.1',
  },
  {
    series: '6.12',
    script: '6a69764be32c682d5c826638d2cba8f836811ce0a59237b237725e70b01b2637',
    kallsymsC: '9da30067d42f0a5bee23f5234c654efa2a59d83b44c0fea71859e583735523f2',
    what: "Linux 6.12 (Debian's linux-source-6.12)",
    links: '6.12',
  },
];

export type Detection = { known: true; version: ScriptVersion; what: string } | { known: false; reason: string };

export function normalizedScriptHash(text: string): string {
  const kept = text.split('\n').filter((l) => !/^\s*(#.*)?$/.test(l));
  return createHash('sha256').update(kept.join('\n') + '\n').digest('hex');
}

/** `VERSION.PATCHLEVEL` from the first lines of a kernel Makefile, or undefined. */
export function makefileSeries(makefile: string): string | undefined {
  const head = makefile.slice(0, 1000);
  const v = /^VERSION = (\d+)$/m.exec(head)?.[1];
  const p = /^PATCHLEVEL = (\d+)$/m.exec(head)?.[1];
  return v !== undefined && p !== undefined ? `${v}.${p}` : undefined;
}

/**
 * Pure: what a script text and a kallsyms.c text are, in a tree whose
 * Makefile says `series` (null: it says none; undefined: not checked).
 */
export function classify(script: string, kallsymsC: Buffer | undefined, series?: string | null): Detection {
  const h = normalizedScriptHash(script);
  const k = KNOWN.find((x) => x.script === h);
  const tree = series ? `a Linux ${series} tree: its ` : '';
  if (!k) return { known: false, reason: `${tree}scripts/link-vmlinux.sh is not one kbx knows (sha256 of its code ${h.slice(0, 12)})` };
  if (series === null) return { known: false, reason: "the tree's Makefile names no VERSION and PATCHLEVEL" };
  if (series !== undefined && series !== k.series) {
    return { known: false, reason: `the Makefile says Linux ${series}, but scripts/link-vmlinux.sh is ${k.what}'s` };
  }
  if (!kallsymsC) return { known: false, reason: 'scripts/kallsyms.c is missing' };
  const kh = createHash('sha256').update(kallsymsC).digest('hex');
  if (kh !== k.kallsymsC) return { known: false, reason: `scripts/kallsyms.c differs from ${k.what}'s (sha256 ${kh.slice(0, 12)})` };
  if (!k.links) return { known: false, reason: `kbx does not link ${k.what} in one step yet` };
  return { known: true, version: k.links, what: k.what };
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
  let series: string | null;
  try {
    series = makefileSeries(readFileSync(join(srctree, 'Makefile'), 'utf8')) ?? null;
  } catch {
    series = null;
  }
  return classify(script, c, series);
}
