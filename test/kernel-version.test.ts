// Which Linux a tree is: the Makefile's VERSION and PATCHLEVEL and the bytes
// of its scripts. 6.1 and 6.12 trees are linked by kbx; any tree whose
// link-vmlinux.sh kbx does not know (a 6.12 one edited by one byte) runs its
// own script, and `kbx make` says so once. No kernel is built here: the trees are the
// real Makefile head and scripts of 6.1 and 6.12 in small temp dirs.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { classify, detectScript, makefileSeries } from '../src/kernel/link/detect.js';
import { route } from '../src/kernel/link/route.js';
import { Kbx, tempDir } from './support/kbx.js';
import { kernelTree } from './support/kernel-tree.js';
import { linuxSource, unlessMissing } from './support/tools.js';

const tree61 = kernelTree();
const tree612 = kernelTree('6.12');
const work = tempDir('kernel-version');
const kbx = new Kbx('kernel-version');
after(() => {
  kbx.stop();
  rmSync(work, { recursive: true, force: true });
});

/** The head of `from`'s Makefile (its version lines) and its link scripts, with `edit` applied to link-vmlinux.sh. */
function miniTree(name: string, from: string, opts: { edit?: (s: string) => string; makefileFrom?: string; rules?: string } = {}): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'scripts'), { recursive: true });
  const head = readFileSync(join(opts.makefileFrom ?? from, 'Makefile'), 'utf8').split('\n').slice(0, 6).join('\n');
  writeFileSync(join(dir, 'Makefile'), `${head}\n${opts.rules ?? ''}`);
  const script = readFileSync(join(from, 'scripts/link-vmlinux.sh'), 'utf8');
  writeFileSync(join(dir, 'scripts/link-vmlinux.sh'), (opts.edit ?? ((s) => s))(script));
  for (const f of ['scripts/kallsyms.c', 'scripts/Makefile.vmlinux']) copyFileSync(join(from, f), join(dir, f));
  return dir;
}

/** One byte of code changed: the script's cleanup removes vmlinux.maq instead of vmlinux.map. */
const oneByte = (s: string): string => {
  assert.ok(s.includes('rm -f vmlinux.map'));
  return s.replace('rm -f vmlinux.map', 'rm -f vmlinux.maq');
};

test('the series is VERSION.PATCHLEVEL of the Makefile', () => {
  assert.equal(makefileSeries('# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\n'), '6.12');
  assert.equal(makefileSeries('VERSION = 6\nPATCHLEVEL = 1\n'), '6.1');
  assert.equal(makefileSeries('all:\n\techo\n'), undefined);
});

describe('detecting a tree', { skip: unlessMissing(linuxSource(tree61), linuxSource(tree612, '6.12')) }, () => {
  test('6.1 and 6.12 are linked by kbx, each as its own version', () => {
    assert.deepEqual(detectScript(miniTree('d61', tree61!)), { known: true, version: '6.1', what: "Linux 6.1 (Debian's linux-source-6.1)" });
    assert.deepEqual(detectScript(miniTree('d612', tree612!)), { known: true, version: '6.12', what: "Linux 6.12 (Debian's linux-source-6.12)" });
    assert.equal(route(miniTree('r612', tree612!)).routed, true);
  });

  test('a 6.12 tree with its link-vmlinux.sh edited by one byte is not known, and the reason names the version', () => {
    const d = detectScript(miniTree('d612-edited', tree612!, { edit: oneByte }));
    assert.equal(d.known, false);
    assert.match(!d.known ? d.reason : '', /^a Linux 6\.12 tree: its scripts\/link-vmlinux\.sh is not one kbx knows/);
  });

  test("a script of another version than the Makefile's, or no version at all, is not known", () => {
    const d = detectScript(miniTree('d612-with-61-script', tree61!, { makefileFrom: tree612! }));
    assert.match(!d.known ? d.reason : '', /Makefile says Linux 6\.12, but scripts\/link-vmlinux\.sh is Linux 6\.1 /);
    const script = readFileSync(join(tree61!, 'scripts/link-vmlinux.sh'), 'utf8');
    const kc = readFileSync(join(tree61!, 'scripts/kallsyms.c'));
    assert.match(JSON.stringify(classify(script, kc, null)), /names no VERSION and PATCHLEVEL/);
    assert.equal(classify(script, kc, '6.1').known, true);
  });

  test('kbx make on such a tree runs its own recipe and script, and says why once', () => {
    // The recipe kbx would replace runs the tree's script (`clean`: it needs no kernel) and leaves a mark.
    const rules = 'cmd_link_vmlinux = sh scripts/link-vmlinux.sh clean; echo stock > linked-by\nvmlinux: ; @$(cmd_link_vmlinux)\n';
    for (const [name, edit, why] of [['m612-edited', oneByte, /^kbx: vmlinux is linked by the tree's own scripts\/link-vmlinux\.sh: a Linux 6\.12 tree: its scripts\/link-vmlinux\.sh is not one kbx knows/]] as const) {
      const dir = miniTree(name, tree612!, { edit, rules });
      writeFileSync(join(dir, 'System.map'), 'x\n'); // the script's cleanup removes it
      assert.equal(route(dir).routed, false);
      const r = kbx.make(dir, ['vmlinux']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(join(dir, 'linked-by'), 'utf8'), 'stock\n');
      assert.throws(() => readFileSync(join(dir, 'System.map')), /ENOENT/);
      const lines = r.stderr.split('\n').filter((l) => l.includes("tree's own scripts/link-vmlinux.sh"));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, why);
      // A goal that links nothing is not worth the line.
      assert.doesNotMatch(kbx.make(dir, ['clean']).stderr, /own scripts\/link-vmlinux\.sh/);
    }
  });
});
