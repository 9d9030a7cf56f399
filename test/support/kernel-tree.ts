// Finding the Linux 6.1 source tree the tests and benchmarks use, extracting
// it from Debian's linux-source-6.1 tarball when it is missing, and building
// the tree's own scripts/kallsyms with the host compiler.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const TREE_PARENT = process.env.KBX_KERNEL_SRC_PARENT ?? '/var/tmp/kbx-src';
export const TREE = join(TREE_PARENT, 'linux-source-6.1');
export const TARBALL = '/usr/src/linux-source-6.1.tar.xz';
const TOOLS = '/var/tmp/kbx-test-tools';

/** The extracted 6.1 tree, or undefined when neither the tree nor the tarball exists. */
export function kernelTree(): string | undefined {
  if (existsSync(join(TREE, 'Makefile'))) return TREE;
  if (!existsSync(TARBALL)) return undefined;
  mkdirSync(TREE_PARENT, { recursive: true });
  execFileSync('tar', ['xf', TARBALL, '-C', TREE_PARENT], { stdio: 'inherit' });
  return existsSync(join(TREE, 'Makefile')) ? TREE : undefined;
}

/** `VERSION.PATCHLEVEL.SUBLEVEL` from the tree's Makefile. */
export function treeVersion(tree: string): string {
  const mk = readFileSync(join(tree, 'Makefile'), 'utf8').slice(0, 400);
  const v = (k: string): string => new RegExp(`^${k} = (\\S*)`, 'm').exec(mk)?.[1] ?? '?';
  return `${v('VERSION')}.${v('PATCHLEVEL')}.${v('SUBLEVEL')}`;
}

/** The tree's scripts/kallsyms compiled with the host gcc (rebuilt when the source is newer). */
export function cKallsyms(tree: string): string {
  const src = join(tree, 'scripts/kallsyms.c');
  const bin = join(TOOLS, 'kallsyms-6.1');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(TOOLS, { recursive: true });
    execFileSync('gcc', ['-O2', '-o', `${bin}.tmp`, src]);
    execFileSync('mv', [`${bin}.tmp`, bin]);
  }
  return bin;
}

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
