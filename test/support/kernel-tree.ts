// Finding the Linux source trees the tests and benchmarks use (6.1 and 6.12),
// extracting one from Debian's linux-source-<version> tarball when it is
// missing, and building the tree's own scripts/kallsyms with the host compiler.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type LinuxSeries = '6.1' | '6.12';

// Fixed so that two builds of the same tree produce the same bytes (`make
// clean` keeps .version, so the build number would otherwise move).
export const REPRODUCIBLE_KBUILD = {
  KBUILD_BUILD_TIMESTAMP: 'Thu Jan  1 00:00:00 UTC 2026',
  KBUILD_BUILD_USER: 'kbx',
  KBUILD_BUILD_HOST: 'kbx',
  KBUILD_BUILD_VERSION: '1',
};

export const TREE_PARENT = process.env.KBX_KERNEL_SRC_PARENT ?? '/var/tmp/kbx-src';
export const treeDir = (v: LinuxSeries): string => join(TREE_PARENT, `linux-source-${v}`);
export const tarball = (v: LinuxSeries): string => `/usr/src/linux-source-${v}.tar.xz`;
export const TREE = treeDir('6.1');
export const TARBALL = tarball('6.1');
const TOOLS = '/var/tmp/kbx-test-tools';

/**
 * The extracted tree of Linux `version` (6.1 unless said), or undefined when
 * neither the tree nor the tarball exists. The tarball is extracted beside
 * the final place and renamed into it, so a test that runs at the same time
 * (or after an interrupted one) never sees half a tree.
 */
export function kernelTree(version: LinuxSeries = '6.1'): string | undefined {
  const tree = treeDir(version);
  if (existsSync(join(tree, 'Makefile'))) return tree;
  if (!existsSync(tarball(version))) return undefined;
  mkdirSync(TREE_PARENT, { recursive: true });
  const tmp = mkdtempSync(join(TREE_PARENT, `.extract-${version}-`));
  try {
    execFileSync('tar', ['xf', tarball(version), '-C', tmp], { stdio: 'inherit' });
    if (!existsSync(join(tree, 'Makefile'))) {
      rmSync(tree, { recursive: true, force: true }); // a partial tree from before
      renameSync(join(tmp, `linux-source-${version}`), tree);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return existsSync(join(tree, 'Makefile')) ? tree : undefined;
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
  const bin = join(TOOLS, `kallsyms-${treeVersion(tree)}`);
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(TOOLS, { recursive: true });
    // 6.12's includes <xalloc.h> from scripts/include, as kbuild builds it.
    execFileSync('gcc', ['-O2', '-I', join(tree, 'scripts/include'), '-o', `${bin}.tmp`, src]);
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
