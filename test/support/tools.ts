// A test that needs a tool the machine lacks fails, naming the Debian
// package to install (scripts/test.sh installs them all). A run that asks
// for a subset sets KBX_TEST_ALLOW_MISSING=1, and such tests are skipped.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { hasTool, tarball, type LinuxSeries } from './kernel-tree.js';

export const ALLOW_MISSING = process.env.KBX_TEST_ALLOW_MISSING === '1';

/** Something a test needs, whether the machine has it, and the package that provides it. */
export interface Need {
  what: string;
  pkg: string;
  present: boolean;
}

export const program = (name: string, pkg: string): Need => ({ what: name, pkg, present: hasTool(name) });
export const file = (path: string, pkg: string): Need => ({ what: path, pkg, present: existsSync(path) });
export const check = (what: string, pkg: string, present: boolean): Need => ({ what, pkg, present });
/** The Linux source tree of `version` (6.1 unless said), given what kernelTree() found. */
export const linuxSource = (tree: string | undefined, version: LinuxSeries = '6.1'): Need =>
  check(tarball(version), `linux-source-${version}`, tree !== undefined);

/**
 * The `skip` option of a suite or test that needs `needs`: false when all are
 * there. Otherwise the reason, so that it does not run; and, unless
 * KBX_TEST_ALLOW_MISSING=1, a test registered beside it fails with the
 * `apt-get install` that would let it run.
 */
export function unlessMissing(...needs: Need[]): string | false {
  const missing = needs.filter((n) => !n.present);
  if (missing.length === 0) return false;
  const pkgs = [...new Set(missing.map((n) => n.pkg))].join(' ');
  const reason = `${missing.map((n) => n.what).join(', ')} missing: apt-get install ${pkgs}`;
  if (!ALLOW_MISSING) {
    test(`needs ${pkgs}`, () => {
      assert.fail(`${reason} (or set KBX_TEST_ALLOW_MISSING=1 to skip what needs it)`);
    });
  }
  return reason;
}
