// Portable names (root-names.ts): a path under a build root is stored by the
// root's role, put back under another checkout's roots, and a path outside
// every root stays as it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { RootNames, isRootRelative } from '../src/fingerprint/root-names.js';
import { tempDir } from './support/kbx.js';

test('a path is named by the innermost root; outside every root it stays absolute', () => {
  const n = new RootNames(['/home/u/linux', '/home/u/linux/build']);
  assert.equal(n.toStored('/home/u/linux/fs/ioctl.c'), '@make/fs/ioctl.c');
  assert.equal(n.toStored('/home/u/linux/build/fs/ioctl.o'), '@out/fs/ioctl.o');
  assert.equal(n.toStored('/home/u/linux/build2/x'), '@make/build2/x');
  assert.equal(n.toStored('/home/u/linux'), '@make');
  assert.equal(n.toStored('/home/u/linux2/x'), '/home/u/linux2/x');
  assert.equal(n.toStored('/usr/include/stdio.h'), '/usr/include/stdio.h');
  const other = new RootNames(['/ci/linux', '/tmp/out']);
  assert.equal(other.toAbsolute('@out/fs/ioctl.o'), '/tmp/out/fs/ioctl.o');
  assert.equal(other.toAbsolute('@make'), '/ci/linux');
  assert.equal(other.toAbsolute('/usr/include/stdio.h'), '/usr/include/stdio.h');
  // A role these roots lack, or no role at all: nothing.
  assert.equal(new RootNames(['/ci/linux']).toAbsolute('@out/x'), undefined);
  assert.equal(other.toAbsolute('@srctree/x'), undefined);
  assert.equal(other.toAbsolute('fs/x'), undefined);
});

test('a root reached through a symlink is named by either spelling, and put back as spelled', () => {
  const top = tempDir('root-names');
  mkdirSync(join(top, 'real'));
  symlinkSync('real', join(top, 'alias'));
  const n = new RootNames([join(top, 'alias')]);
  assert.equal(n.toStored(join(top, 'real', 'a.o')), '@make/a.o');
  assert.equal(n.toStored(join(top, 'alias', 'a.o')), '@make/a.o');
  assert.equal(n.toAbsolute('@make/a.o'), join(top, 'alias', 'a.o'));
  assert.equal(n.keyText(`cd ${join(top, 'real')} && cc -I${join(top, 'alias')}/inc`), 'cd \x000 && cc -I\x000/inc');
  assert.deepEqual(n.embeddedIn(Buffer.from(`\0${join(top, 'real')}/a.c\0`)).map((r) => r.token), ['@make']);
  assert.deepEqual(n.embeddedIn(Buffer.from('a.c')), []);
});

test('the root / names nothing', () => {
  const n = new RootNames(['/']);
  assert.equal(n.toStored('/usr/bin/cc'), '/usr/bin/cc');
  assert.equal(n.keyText('cc /x.c'), 'cc /x.c');
});

test('a stored root-relative path must be normalised: no `..` climbs out of the root it is put under', () => {
  for (const p of ['@make', '@out/a', '@make/a/b.c', '@make/..a', '@make/a..']) assert.ok(isRootRelative(p), p);
  for (const p of ['@make/..', '@make/../etc/passwd', '@out/a/../../x', '@make/./a', '@make//a', '@make/a/', '@makex/a', '@srctree/a', 'make/a', '@make/a\0'])
    assert.ok(!isRootRelative(p), JSON.stringify(p));
});
