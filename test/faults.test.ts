// kbx must never be the reason a build fails or differs: each fault below
// leaves a successful build whose outputs equal plain make's.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, assertSameTree, copyFixture, plainMake, summary, tempDir } from './support/kbx.js';


function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('faults', () => {
  let reference: string;
  let pipelineRef: string;
  before(() => {
    reference = copyFixture('many', 'many-ref');
    assert.equal(plainMake(reference, ['-j2']).status, 0);
    pipelineRef = copyFixture('pipeline', 'pipeline-ref');
    assert.equal(plainMake(pipelineRef).status, 0);
  });

  test('killing the daemon in the middle of a build: the build finishes without the cache and says so once', async () => {
    const kbx = new Kbx('kill');
    const proj = copyFixture('many', 'kill');
    const running = kbx.makeAsync(proj, ['-j2']);
    let pid: number | undefined;
    for (let i = 0; i < 200 && !pid; i++) {
      await sleep(20);
      const st = kbx.run(['daemon', 'status']);
      pid = Number(/pid (\d+)/.exec(st.stdout)?.[1]) || undefined;
    }
    assert.ok(pid, 'the daemon started');
    await sleep(400);
    process.kill(pid, 'SIGKILL');
    const r = await running;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.match(/running recipe lines without the cache/g)?.length, 1, r.stderr);
    assert.ok(summary(r.stderr).fallback > 0, r.stderr);
    assertSameTree(proj, reference);
    kbx.stop();
  });

  test('flipped bytes in every stored blob: nothing wrong is restored, the lines run again', () => {
    const kbx = new Kbx('corrupt');
    const proj = copyFixture('pipeline', 'corrupt');
    assert.equal(kbx.make(proj).status, 0);
    kbx.stats(); // waits until every blob is written
    const blobs = allFiles(join(kbx.dir, 'store', 'v2', 'cas'));
    assert.ok(blobs.length > 5);
    for (const b of blobs) {
      const data = readFileSync(b);
      const at = Math.floor(data.length / 2);
      data[at] = data[at]! ^ 0xff;
      writeFileSync(b, data);
    }
    plainMake(proj, ['clean']);
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(summary(r.stderr).misses > 0, r.stderr);
    assertSameTree(proj, pipelineRef);
    assert.ok((kbx.stats()['corrupt-entry'] ?? 0) > 0);
    kbx.stop();
  });

  test('a full disk under the store: the build succeeds and equals the plain build', (t) => {
    const mnt = tempDir('fulldisk');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      t.skip('mounting a small tmpfs needs root');
      return;
    }
    try {
      const kbx = new Kbx('fulldisk', { KBX_DIR: join(mnt, 'kbx') });
      mkdirSync(join(mnt, 'kbx'));
      const proj = copyFixture('pipeline', 'fulldisk');
      writeFileSync(join(proj, 'big.bin'), Buffer.alloc(400 * 1024, 7));
      writeFileSync(join(proj, 'Makefile'), readFileSync(join(proj, 'Makefile'), 'utf8').replace('all: prog', 'all: prog big.copy\nbig.copy: big.bin\n\tcp $< $@'));
      const ref = copyFixture('pipeline', 'fulldisk-ref');
      cpSync(join(proj, 'Makefile'), join(ref, 'Makefile'));
      cpSync(join(proj, 'big.bin'), join(ref, 'big.bin'));
      assert.equal(plainMake(ref).status, 0);
      let r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assertSameTree(proj, ref);
      plainMake(proj, ['clean']);
      r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assertSameTree(proj, ref);
      kbx.stop();
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  });

  test('two builds at once on one store both succeed and equal the plain build', async () => {
    const kbx = new Kbx('twobuilds');
    const a = copyFixture('many', 'two-a');
    const b = copyFixture('many', 'two-b');
    const [ra, rb] = await Promise.all([kbx.makeAsync(a, ['-j2']), kbx.makeAsync(b, ['-j2'])]);
    assert.equal(ra.status, 0, ra.stderr);
    assert.equal(rb.status, 0, rb.stderr);
    assertSameTree(a, reference);
    assertSameTree(b, reference);
    kbx.stop();
  });
});
