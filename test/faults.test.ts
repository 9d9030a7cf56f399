// kbx must never be the reason a build fails or differs: each fault below
// leaves a successful build whose outputs equal plain make's, and the
// summary's counts show that kbx served the lines it could (a kbx that
// never started would pass on equality alone).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, SHARED_ITEMS, SHARED_MAKEFILE, type RunResult, assertSameTree, copyFixture, plainMake, repoRoot, summary, tempDir, writeTree } from './support/kbx.js';

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

// Recipe lines of the pipeline fixture's `all`: five per object, two objects, two for the link.
const PIPELINE_LINES = 12;

/** Starts the store's daemon as any `kbx make` does, with a build of nothing. */
function startDaemon(kbx: Kbx): void {
  const dir = join(tempDir('start'), 'proj');
  writeTree(dir, { Makefile: 'all:\n\tcp Makefile copy\n' });
  const r = kbx.make(dir);
  assert.equal(summary(r.stderr).misses, 1, r.stderr);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a process still runs (a zombie no longer does: its sockets are closed). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Starts `kbx make` in proj and returns once a recipe line has created
 * `marker` (the line then waits for the test), with the build still running.
 */
async function startUntil(kbx: Kbx, proj: string, marker: string): Promise<{ done: Promise<RunResult> }> {
  const done = kbx.makeAsync(proj);
  let ended = false;
  void done.then(() => (ended = true));
  while (!existsSync(join(proj, marker)) && !ended) await sleep(20);
  if (ended) assert.fail(`the build ended before ${marker} appeared:\n${(await done).stderr}`);
  return { done };
}

// before/N go through the daemon; `blocking` says it has started, then waits
// for the test to kill the daemon and create `go`; after/N run without it.
const KILL_MAKEFILE = `BEFORE := $(patsubst %,before/%,1 2 3 4)
AFTER := $(patsubst %,after/%,1 2 3 4)
all: $(AFTER)
after/%: blocking
\tmkdir -p after && echo "after $*" > $@
blocking: $(BEFORE)
\ttouch blocking.started; while [ ! -e go ]; do sleep 0.02; done; cat $(BEFORE) > $@
before/%:
\tmkdir -p before && echo "before $*" > $@
`;

describe('faults', () => {
  let pipelineRef: string;
  before(() => {
    pipelineRef = copyFixture('pipeline', 'pipeline-ref');
    assert.equal(plainMake(pipelineRef).status, 0);
  });

  test('killing the daemon in the middle of a build: the build finishes without the cache and says so once', async () => {
    const kbx = new Kbx('kill');
    const proj = join(tempDir('kill'), 'proj');
    const ref = join(tempDir('kill-ref'), 'proj');
    writeTree(proj, { Makefile: KILL_MAKEFILE });
    writeTree(ref, { Makefile: KILL_MAKEFILE, go: '' });
    assert.equal(plainMake(ref).status, 0);
    // The blocking line has started: the lines before it went through the daemon.
    const running = await startUntil(kbx, proj, 'blocking.started');
    const pid = Number(/pid (\d+)/.exec(kbx.run(['daemon', 'status']).stdout)?.[1]);
    assert.ok(pid > 0, 'no daemon pid');
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await sleep(20);
    writeFileSync(join(proj, 'go'), '');
    const r = await running.done;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.match(/running recipe lines without the cache/g)?.length, 1, r.stderr);
    const s = summary(r.stderr);
    // before/1..4 and the blocking line were cache misses; after/1..4 ran without the daemon.
    assert.equal(s.misses, 5, r.stderr);
    assert.equal(s.fallback, 4, r.stderr);
    assertSameTree(proj, ref);
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

  test('a full disk under the store: the build succeeds, equals the plain build, and what fitted is served', (t) => {
    const mnt = tempDir('fulldisk');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      t.skip('mounting a small tmpfs needs root');
      return;
    }
    const kbx = new Kbx('fulldisk', { KBX_DIR: join(mnt, 'kbx') });
    try {
      mkdirSync(join(mnt, 'kbx'));
      const proj = copyFixture('pipeline', 'fulldisk');
      // Random, so that deflate cannot shrink it under the 256 KiB the store has.
      writeFileSync(join(proj, 'big.bin'), randomBytes(400 * 1024));
      writeFileSync(join(proj, 'Makefile'), readFileSync(join(proj, 'Makefile'), 'utf8').replace('all: prog', 'all: prog big.copy\nbig.copy: big.bin\n\tcp $< $@'));
      const ref = copyFixture('pipeline', 'fulldisk-ref');
      cpSync(join(proj, 'Makefile'), join(ref, 'Makefile'));
      cpSync(join(proj, 'big.bin'), join(ref, 'big.bin'));
      assert.equal(plainMake(ref).status, 0);
      let r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assertSameTree(proj, ref);
      const first = summary(r.stderr);
      // The pipeline's lines fit and are stored; big.copy does not fit.
      assert.equal(first.misses, PIPELINE_LINES + 1, r.stderr);
      assert.ok((kbx.stats()['store-write-error'] ?? 0) > 0, 'the store never ran out of room');
      plainMake(proj, ['clean']);
      r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assertSameTree(proj, ref);
      // With the disk still full, kbx may not be able to write even its
      // per-build files: then make runs without the cache, and says so once.
      if (/running make without the cache/.test(r.stderr)) {
        assert.match(r.stderr, /ENOSPC|no space/i);
      } else {
        const second = summary(r.stderr);
        assert.equal(second.hits, PIPELINE_LINES, r.stderr);
        assert.equal(second.misses, 1, r.stderr);
      }
      // Room again: the store serves what fitted.
      rmSync(join(mnt, 'kbx', 'builds'), { recursive: true, force: true });
      execFileSync('mount', ['-o', 'remount,size=4m', mnt]);
      plainMake(proj, ['clean']);
      r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assertSameTree(proj, ref);
      assert.ok(summary(r.stderr).hits >= PIPELINE_LINES, r.stderr);
    } finally {
      kbx.stop();
      execFileSync('umount', ['-l', mnt]);
    }
  });

  test('two builds at once of one tree into one store: the same lines meet, both equal the plain build, then all hits', async () => {
    const kbx = new Kbx('twobuilds');
    const proj = join(tempDir('two'), 'proj');
    const ref = join(tempDir('two-ref'), 'proj');
    writeTree(proj, { Makefile: SHARED_MAKEFILE });
    writeTree(ref, { Makefile: SHARED_MAKEFILE });
    assert.equal(plainMake(ref, ['-j2', 'all']).status, 0);
    // The daemon first: two `kbx make` starting one at once is the next test.
    startDaemon(kbx);
    const [ra, rb] = await Promise.all([kbx.makeAsync(proj, ['-j2', 'forward.txt']), kbx.makeAsync(proj, ['-j2', 'backward.txt'])]);
    for (const r of [ra, rb]) {
      assert.equal(r.status, 0, r.stderr);
      const s = summary(r.stderr);
      assert.equal(s.fallback, 0, r.stderr);
      assert.equal(s.hits + s.misses, SHARED_ITEMS + 1, r.stderr);
    }
    // Every item line either hit (the other build stored it first) or was
    // stored. The cat and the tac may not be: when the other build's hit
    // restored an item while they read it, that is input-changed, by design.
    const [sa, sb] = [summary(ra.stderr), summary(rb.stderr)];
    assert.ok(sa.hits + sb.hits + sa.stored + sb.stored >= 2 * SHARED_ITEMS, `${ra.stderr}\n${rb.stderr}`);
    assertSameTree(proj, ref);
    // What the two wrote side by side reads back: with every output spoiled
    // (not removed: an item line's mv probes its target, which is part of its
    // key), a third build is all hits and restores the right bytes.
    for (const f of readdirSync(proj)) if (f !== 'Makefile') writeFileSync(join(proj, f), 'spoiled\n');
    // Not every line can hit: when both builds' runs of an item probed its
    // target before either had moved it there, both stored "absent" (the
    // target exists now); a cat that read an item while the other build
    // replaced it is not stored (input-changed). Most lines hit.
    const r = kbx.make(proj, ['-j2', 'all']);
    assert.equal(r.status, 0, r.stderr);
    const s = summary(r.stderr);
    assert.equal(s.hits + s.misses, SHARED_ITEMS + 2, r.stderr);
    assert.ok(s.hits >= SHARED_ITEMS / 2, r.stderr);
    assert.equal(s.fallback, 0, r.stderr);
    assertSameTree(proj, ref);
    assert.equal(kbx.stats()['corrupt-entry'] ?? 0, 0);
    kbx.stop();
  });
  test('a daemon started while another serves the store (two kbx make at once) leaves the running lines alone', async () => {
    const kbx = new Kbx('second-daemon');
    const proj = join(tempDir('second-daemon'), 'proj');
    // The line reads in.txt and writes out.txt, then waits for the test.
    writeTree(proj, { Makefile: 'out.txt: in.txt\n\tcp in.txt out.txt; touch started; while [ ! -e go ]; do sleep 0.02; done\n', 'in.txt': 'one\n' });
    const running = await startUntil(kbx, proj, 'started');
    // What the second of two `kbx make` started at once does when both found
    // no daemon: start one, which finds this one serving and exits.
    const second = spawnSync(process.execPath, [join(repoRoot, 'dist', 'src', 'daemon', 'main.js')], { env: kbx.env(), stdio: 'ignore' });
    assert.equal(second.status, 0);
    writeFileSync(join(proj, 'go'), '');
    const r = await running.done;
    assert.equal(r.status, 0, r.stderr);
    // Whatever was stored, a changed in.txt must make out.txt again.
    writeFileSync(join(proj, 'in.txt'), 'two\n');
    const again = kbx.make(proj);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(readFileSync(join(proj, 'out.txt'), 'utf8'), 'two\n', `${r.stderr}\n${again.stderr}`);
    // And the line was traced whole, so it was stored.
    assert.equal(summary(r.stderr).stored, 1, r.stderr);
    kbx.stop();
  });
});
