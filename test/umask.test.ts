// The modes of the files a line creates go through its umask, and a hit
// restores the modes of the stored run: the umask is part of the key, so a
// build under another umask (a CI runner's 022, a desktop's 002, a packager's
// 077) gets the modes plain make gives it. Real make, real shells.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, ok, plainMake, projectDir, summary } from './support/kbx.js';

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

// A directory a line makes is an output like a file: a hit (or replay) that
// makes it with the daemon's umask gave `mkdir -m 700 private` mode 755.
test('a directory a line made is restored with the mode the line gave it (mkdir -m, the line\'s umask), not the daemon\'s', () => {
  const kbx = new Kbx('dir-mode');
  const other = projectDir('dir-mode-other', { Makefile: 'all:\n\techo other > other\n' });
  const dir = projectDir('dir-mode', {
    Makefile: 'all:\n\tmkdir -m 700 priv && mkdir -m 750 priv/sub && echo x > priv/sub/f\n\tmkdir -p pub/a/b && echo y > pub/a/b/g\nclean:\n\trm -rf priv pub\n',
  });
  const modes = () => ['priv', 'priv/sub', 'pub', 'pub/a', 'pub/a/b'].map((p) => (statSync(join(dir, p)).mode & 0o777).toString(8));
  try {
    kbx.launcher = ['sh', '-c', 'umask 022 && exec "$@"', 'sh'];
    ok(kbx.make(other)); // the daemon starts under 022
    kbx.launcher = ['sh', '-c', 'umask 027 && exec "$@"', 'sh'];
    ok(kbx.make(dir));
    const plain = modes();
    assert.deepEqual(plain, ['700', '750', '750', '750', '750']);
    kbx.stats();
    ok(plainMake(dir, ['clean']));
    const hit = ok(kbx.make(dir, [], { KBX_REPLAY: 'true' })); // records this build for the replay below
    assert.equal(summary(hit.stderr).hits, 2, hit.stderr);
    assert.deepEqual(modes(), plain, 'modes after hits');
    ok(plainMake(dir, ['clean']));
    const replay = ok(kbx.make(dir, [], { KBX_REPLAY: 'true' }));
    assert.match(replay.stderr, /replayed 2 lines/);
    assert.deepEqual(modes(), plain, 'modes after replay');
  } finally {
    kbx.stop();
  }
});

// An entry holds permission bits only; the special bits a line sets are not
// dropped by a hit: such a line is not stored and runs every time.
test('a line that leaves a setuid file or a sticky directory is not stored: a hit would drop the bit', () => {
  const kbx = new Kbx('setid-out');
  const dir = projectDir('setid-out', { Makefile: 'all:\n\techo x > tool && chmod 4755 tool\n\tmkdir -m 1777 spool\nclean:\n\trm -rf tool spool\n' });
  const modes = () => ['tool', 'spool'].map((p) => (statSync(join(dir, p)).mode & 0o7777).toString(8));
  try {
    const first = ok(kbx.make(dir));
    assert.deepEqual(modes(), ['4755', '1777']);
    assert.equal(summary(first.stderr).stored, 0, first.stderr);
    ok(plainMake(dir, ['clean']));
    const again = ok(kbx.make(dir));
    assert.equal(summary(again.stderr).hits, 0, again.stderr);
    assert.deepEqual(modes(), ['4755', '1777']);
    assert.equal(kbx.stats()['not-stored:output-setid'], 4); // two lines, two builds
  } finally {
    kbx.stop();
  }
});
