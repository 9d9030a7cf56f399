// The modes of the files a line creates go through its umask, and a hit
// restores the modes of the stored run: the umask is part of the key, so a
// build under another umask (a CI runner's 022, a desktop's 002, a packager's
// 077) gets the modes plain make gives it. Real make, real shells.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, ok, projectDir, summary } from './support/kbx.js';

test('a line run under another umask is not a hit of one stored under the first: its outputs get the modes plain make gives', () => {
  const kbx = new Kbx('umask');
  const dir = projectDir('umask', { Makefile: 'all:\n\trm -f out; echo made > out\n' });
  const build = (mask: string) => {
    kbx.launcher = ['sh', '-c', `umask ${mask} && exec "$@"`, 'sh'];
    const r = ok(kbx.make(dir, ['-B']));
    return { ...summary(r.stderr), out: statSync(join(dir, 'out')).mode & 0o777 };
  };
  try {
    assert.equal(build('022').out, 0o644);
    // Without the umask in the key, this hits and restores 644.
    const other = build('077');
    assert.equal(other.out, 0o600);
    assert.equal(other.hits, 0);
    const again = build('022');
    assert.deepEqual([again.out, again.misses], [0o644, 0]);
  } finally {
    kbx.stop();
  }
});
