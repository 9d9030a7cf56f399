// `kbx explain` after a revert (issue 16): the closest stored run is the one
// made with the edit (it differs only in the reverted file), so explain also
// names the run the tree is back to, and what else differs from it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, summary, tempDir, writeTree } from './support/kbx.js';

test('after a revert, explain names the stored run the tree matches and the input that still differs', async () => {
  const kbx = new Kbx('explain-revert');
  after(() => kbx.stop());
  const proj = join(tempDir('explain-revert'), 'proj');
  writeTree(proj, { Makefile: 'out.txt: a.txt b.txt\n\tcat a.txt b.txt > out.txt\n', 'a.txt': 'original a\n', 'b.txt': 'first b\n' });
  const build = (files: Record<string, string>) => {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(proj, name), text);
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    return summary(r.stderr);
  };
  build({});
  const first = kbx.run(['builds']).stdout;
  build({ 'a.txt': 'edited a\n', 'b.txt': 'second b\n' });
  // a.txt reverted; b.txt keeps its second version: neither stored run holds.
  assert.equal(build({ 'a.txt': 'original a\n' }).misses, 1);
  const r = kbx.run(['explain', 'out.txt'], { cwd: proj });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /a\.txt: content changed/, r.stdout);
  const m = /the tree matches the stored run of build (\S+) except:\n\s+b\.txt: content changed/.exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.ok(first.includes(m[1]!), `build ${m[1]} is the first one:\n${first}`);
});
