// Linux 6.1 tinyconfig through a build farm: `kbx make CC="distcc gcc" -j8`
// with two real distccd on loopback compiles on the farm and gives the plain
// build's vmlinux and bzImage; after `make clean`, `kbx make CC=gcc` finds
// every compile in the cache; and objects stored by a CC=gcc build are hits
// under distcc, which then compiles nothing. Then icecream: a header edited,
// `kbx make CC="icecc gcc" -j8` in the same tree compiles the objects that
// include it on a remote iceccd, every other compile is a hit, and vmlinux
// and bzImage equal plain make's after the same edit; back to CC=gcc, every
// compile is a hit, those iceccd made included.
// Two cold kernel builds: plain make's reference and the distcc one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBuild } from '../src/builds/archive.js';
import { Kbx, ok, plainMake, summary, tempDir, type RunResult } from './support/kbx.js';
import { Distccd, distccNeeds } from './support/distcc.js';
import { IcecreamFarm, icecreamNeeds } from './support/icecream.js';
import { REPRODUCIBLE_KBUILD as REPRODUCIBLE, kernelTree } from './support/kernel-tree.js';
import { linuxSource, unlessMissing } from './support/tools.js';

const WORK = process.env.KBX_TEST_KERNEL_FARM_WORK ?? '/var/tmp/kbx-kernel-farm';
const ARTIFACTS = ['vmlinux', 'arch/x86/boot/bzImage'];

function artifacts(out: string): Map<string, Buffer> {
  return new Map(ARTIFACTS.map((a) => [a, readFileSync(join(out, a))]));
}

function assertSameArtifacts(out: string, expected: Map<string, Buffer>, what: string): void {
  for (const [a, bytes] of expected) assert.ok(readFileSync(join(out, a)).equals(bytes), `${a} of the ${what} build differs from the plain build`);
}


function readdirRecursive(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f));
}

/** The compile lines (kbuild's "  CC  x.o" echo) of the last build that missed. */
function missedCompiles(kbx: Kbx): string[] {
  assert.equal(kbx.run(['builds']).status, 0); // waits for the record
  return loadBuild(kbx.dir)
    .lines.filter((l) => l.kind === 'miss' && /'\s+CC\s+\S+\.o'/.test(l.command))
    .map((l) => l.command.slice(0, 200));
}

describe('Linux 6.1 tinyconfig through distcc and icecream', { skip: unlessMissing(linuxSource(kernelTree()), ...distccNeeds, ...icecreamNeeds) }, () => {
  const tree = kernelTree()!;
  let farm: Distccd[] = [];
  let env: Record<string, string> = {};
  let plain: Map<string, Buffer>;
  const out = join(WORK, 'kbx');
  const plainOut = join(WORK, 'plain');
  const kbx = new Kbx('kernel-farm', REPRODUCIBLE);
  const served = () => farm.reduce((n, d) => n + d.compilesServed(), 0);
  const report = (t: { diagnostic(msg: string): void }, r: RunResult) => t.diagnostic(/^kbx: \d+ lines.*$/m.exec(r.stderr)?.[0] ?? 'no summary line');

  before(async () => {
    farm = [await Distccd.start(4), await Distccd.start(4)];
    // Debian's distcc runs `gcc` as x86_64-linux-gnu-gcc, which kbuild writes into the
    // config (CONFIG_CC_VERSION_TEXT from `$(CC) --version`): without this, CC="distcc gcc"
    // configures another kernel than CC=gcc, in plain make as in kbx (README, Build farms).
    env = { DISTCC_HOSTS: farm.map((d) => d.host(4)).join(' '), DISTCC_DIR: tempDir('kernel-distcc'), DISTCC_NO_REWRITE_CROSS: '1' };
    rmSync(WORK, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    // kernel.test.ts's plain tree is built from its own copy of the source, and edited: not this one's reference.
    ok(plainMake(tree, [`O=${plainOut}`, 'tinyconfig'], REPRODUCIBLE));
    ok(plainMake(tree, [`O=${plainOut}`, '-j2'], REPRODUCIBLE));
    plain = artifacts(plainOut);
  });
  after(async () => {
    kbx.stop();
    for (const d of farm) await d.stop();
  });

  test('a cold build with CC="distcc gcc" -j8 compiles on the farm and gives the plain vmlinux and bzImage', (t) => {
    ok(kbx.make(tree, [`O=${out}`, 'CC=distcc gcc', 'tinyconfig'], env));
    const r = ok(kbx.make(tree, [`O=${out}`, 'CC=distcc gcc', '-j8'], env));
    report(t, r);
    const s = summary(r.stderr);
    assert.equal(s.fallback, 0, r.stderr.slice(-500));
    t.diagnostic(`distccd served ${served()} compiles; ${kbx.stats()['miss-via:distcc']} misses ran distcc`);
    assert.ok(served() > 300, `the farm served ${served()} compiles`);
    assertSameArtifacts(out, plain, 'distcc kbx');
  });

  test('after make clean, kbx make CC=gcc finds every compile in the cache, and syncs the config once', (t) => {
    ok(plainMake(tree, [`O=${out}`, 'clean'], REPRODUCIBLE));
    // CC changed, so kbuild syncs the config once: it once synced forever, when a
    // `gcc --version` hit gave distcc's answer (wrappers.ts, compiles()).
    const r = ok(kbx.make(tree, [`O=${out}`, 'CC=gcc', '-j2'], {}, 30 * 60_000));
    report(t, r);
    assert.equal(r.stdout.match(/^\s+SYNC\s/gm)?.length, 1, r.stdout.slice(0, 3000));
    // Compiles hit, and so do the lines that run no compiler and read no $CC (archives,
    // ld -r, objcopy: ~1,100 of them reran before, their environment held CC): CI saw 1,763
    // hits and 71 misses. $(CC) probes and links through $(CC) key per wrapper and rerun.
    assert.ok(summary(r.stderr).hits > 1500, r.stderr.slice(-500));
    assert.deepEqual(missedCompiles(kbx), [], 'object compiles missed');
    assertSameArtifacts(out, plain, 'CC=gcc warm kbx');
  });

  test('a header edited, CC="icecc gcc" -j8: its includers compile on a remote iceccd, every other compile hits, and vmlinux is plain make\'s', async (t) => {
    // include/linux/namei.h: 15 objects of tinyconfig include it. The edit is undone after,
    // with the header's times: this source tree is the one the other kernel tests build.
    const header = join(tree, 'include/linux/namei.h');
    const text = readFileSync(header);
    const times = statSync(header);
    // The objects kbuild compiles with -g (the real-mode setup code in arch/x86/boot) key apart
    // under icecc by design: a remote icecream object records icecream's options (README).
    const cmds = readdirRecursive(out).filter((f) => /\/\.[^/]+\.o\.cmd$/.test(f));
    const objectOf = (f: string) => f.slice(out.length + 1).replace(/(^|\/)\.([^/]+)\.cmd$/, '$1$2');
    const includers = cmds.filter((f) => readFileSync(f, 'utf8').includes('include/linux/namei.h')).map(objectOf).sort();
    // Of those, the C ones: missedCompiles counts kbuild's `CC` lines, not the `AS` ones.
    const withDebug = cmds.filter((f) => /^cmd_\S+ := .* -g /m.test(readFileSync(f, 'utf8')) && /^source_\S+ := \S+\.c$/m.test(readFileSync(f, 'utf8'))).map(objectOf);
    assert.ok(includers.length >= 10, includers.join(' '));
    const farm = await IcecreamFarm.start();
    try {
      writeFileSync(header, Buffer.concat([text, Buffer.from('\nstatic inline int kbx_farm_test_edit(void) { return 1; }\n')]));
      ok(plainMake(tree, [`O=${plainOut}`, '-j2'], REPRODUCIBLE));
      const edited = artifacts(plainOut);
      kbx.launcher = farm.launcher();
      // CC changed (gcc to icecc gcc): make reruns every compile, whose saved command
      // differs; kbx keys them without the wrapper, so all but the edited ones hit.
      const r = ok(kbx.make(tree, [`O=${out}`, 'CC=icecc gcc', '-j8'], farm.clientEnv()));
      report(t, r);
      const missed = missedCompiles(kbx).map((m) => /'\s+CC\s+(\S+\.o)'/.exec(m)?.[1] ?? m);
      const remote = farm.remoteFiles().filter((f) => f.startsWith(`${tree}/`)).map((f) => f.slice(tree.length + 1));
      t.diagnostic(`compiles missed: ${missed.length} (${withDebug.length} objects are built with -g); the remote iceccd compiled ${remote.length} of the tree's files`);
      assert.deepEqual(missed.sort(), [...new Set([...includers, ...withDebug])].sort(), 'the compiles that missed are the header\'s includers and the -g objects');
      const sourceOf = (o: string) => o.replace(/\.o$/, '.c');
      assert.deepEqual(remote.filter((f) => !missed.map(sourceOf).includes(f)), [], 'a compile that hit reached the farm');
      assert.deepEqual(includers.map(sourceOf).filter((f) => !remote.includes(f)), [], 'an includer compiled elsewhere than on the remote iceccd');
      assertSameArtifacts(out, edited, 'icecc kbx');
      // And back: CC=gcc reruns every compile again, and the objects iceccd made are hits too.
      kbx.launcher = [];
      const back = ok(kbx.make(tree, [`O=${out}`, 'CC=gcc', '-j2']));
      report(t, back);
      assert.deepEqual(missedCompiles(kbx), [], 'object compiles missed after icecream');
      assertSameArtifacts(out, edited, 'CC=gcc after icecream kbx');
    } finally {
      kbx.launcher = [];
      writeFileSync(header, text);
      utimesSync(header, times.atime, times.mtime);
      await farm.stop();
    }
  });

  test('objects stored by CC=gcc are hits under distcc, and the farm compiles nothing', (t) => {
    // The store now also holds the CC=gcc runs of the lines that missed above
    // and every compile's entry; drop the distcc-made ones by starting a store
    // that only CC=gcc fills: init/ and its prerequisites, cold.
    const k2 = new Kbx('kernel-farm-reverse', REPRODUCIBLE);
    try {
      ok(plainMake(tree, [`O=${out}`, 'clean'], REPRODUCIBLE));
      ok(k2.make(tree, [`O=${out}`, 'CC=gcc', '-j2', 'init/']));
      ok(plainMake(tree, [`O=${out}`, 'clean'], REPRODUCIBLE));
      const logs = farm.map((d) => d.logText().length);
      const r = ok(k2.make(tree, [`O=${out}`, 'CC=distcc gcc', '-j8', 'init/'], env));
      report(t, r);
      assert.deepEqual(missedCompiles(k2), [], 'object compiles missed');
      // Lines that miss on a first clean rebuild (kernel.test.ts says which) may still run
      // distcc; no compile of init/ may reach the farm.
      const jobs = farm.flatMap((d, i) => d.logText().slice(logs[i]).split('\n').filter((l) => /COMPILE_OK/.test(l)));
      t.diagnostic(`distccd jobs during the warm build: ${jobs.length}`);
      assert.deepEqual(jobs.filter((l) => /\binit\/[\w-]+\.c\b/.test(l)), [], 'distccd compiled init/');
      // make has nothing left to do with CC="distcc gcc": the .cmd files say what distcc runs.
      const again = ok(k2.make(tree, [`O=${out}`, 'CC=distcc gcc', '-j8', 'init/'], env));
      assert.doesNotMatch(again.stdout, /\bCC\s+init\//, 'init/ was compiled again');
    } finally {
      k2.stop();
    }
  });
});
