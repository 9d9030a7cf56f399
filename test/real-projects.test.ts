// Real projects from Debian 12's sources (issue 16), built by real make and
// gcc: plain make, kbx cold, `make clean` + kbx warm, and a source edit must
// leave trees byte-identical to plain make's at each step, and the warm build
// must hit. lua 5.4.4 is a plain recursive Makefile; busybox 1.35 is Kbuild,
// like the kernel, with its .cmd files.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, assertSameTree, plainMake, summary, tempDir, type Summary } from './support/kbx.js';
import { BUSYBOX_1_35_0, LUA_5_4_4, unpack } from './support/sources.js';

// Each suite's trees and store are ~100 MB: removed when it ends.
const made: string[] = [];
function scratch(tag: string): string {
  const dir = tempDir(tag);
  made.push(dir);
  return dir;
}
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function kbxBuild(kbx: Kbx, dir: string, args: string[], env: Record<string, string> = {}): Summary {
  const r = kbx.make(dir, args, env);
  assert.equal(r.status, 0, r.stderr);
  return summary(r.stderr);
}

function plainBuild(dir: string, args: string[], env: Record<string, string> = {}): void {
  const r = plainMake(dir, args, env);
  assert.equal(r.status, 0, r.stderr);
}

interface MissedLine {
  command: string;
  outputs: string[];
  reason: string;
}

/** The lines of the tree's newest kbx build that missed, from `kbx trace`. */
function missedLines(kbx: Kbx, dir: string): MissedLine[] {
  const file = join(scratch('trace'), 'trace.json');
  const r = kbx.run(['trace', '-o', file], { cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  const events = (JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: Array<{ ph: string; cat?: string; args?: Record<string, unknown> }> }).traceEvents;
  return events
    .filter((e) => e.ph === 'X' && e.cat === 'miss')
    .map((e) => ({
      command: String(e.args?.command ?? ''),
      outputs: (e.args?.outputs as string[] | undefined) ?? [],
      reason: String(e.args?.reason ?? ''),
    }));
}

/** Replaces `from` by `to` in a file, which must hold it. */
function edit(path: string, from: string, to: string): void {
  const text = readFileSync(path, 'utf8');
  assert.ok(text.includes(from), `${path} has no ${JSON.stringify(from)}`);
  writeFileSync(path, text.replace(from, to));
}

describe('lua 5.4.4 (Debian orig tarball), make -j2 linux', () => {
  const kbx = new Kbx('lua');
  const args = ['-j2', 'linux'];
  let plain = '';
  let proj = '';
  let cold: Summary;
  before(async () => {
    plain = await unpack(LUA_5_4_4, scratch('lua-plain'));
    proj = await unpack(LUA_5_4_4, scratch('lua'));
  });
  after(() => {
    kbx.stop();
    rmSync(kbx.dir, { recursive: true, force: true });
  });

  test('kbx cold builds what plain make builds, and stores it', () => {
    plainBuild(plain, args);
    cold = kbxBuild(kbx, proj, args);
    // 33 compiles, ar and ranlib of liblua.a, two links: each ran and was stored.
    assert.ok(cold.misses >= 37, JSON.stringify(cold));
    assert.equal(cold.stored, cold.misses, JSON.stringify(cold));
    assertSameTree(proj, plain);
  });

  test('make clean + kbx warm: every line a hit, the same bytes', () => {
    assert.equal(kbx.make(proj, ['clean']).status, 0);
    const warm = kbxBuild(kbx, proj, args);
    assert.deepEqual([warm.hits, warm.misses, warm.fallback], [cold.misses, 0, 0], JSON.stringify(warm));
    assertSameTree(proj, plain);
  });

  test('a comment in lvm.c and a string in lua.c: the lines they change run, the rest hit', () => {
    for (const dir of [plain, proj]) {
      edit(join(dir, 'src', 'lvm.c'), '** Lua virtual machine', '** Lua virtual machine (edited)');
      edit(join(dir, 'src', 'lua.c'), '"usage: %s [options]', '"Usage: %s [options]');
    }
    plainBuild(plain, args);
    const r = kbxBuild(kbx, proj, args);
    assertSameTree(proj, plain);
    // lvm.o and lua.o compile again (their sources changed), lua links again
    // (lua.o changed), and `ar rcu liblua.a` runs again because it now reads
    // the liblua.a of the last build, absent when the stored run ran. lvm.o's
    // bytes did not change, so ranlib and luac's link, which make runs again, hit.
    const missed = missedLines(kbx, proj).map((m) => m.outputs.join(' ')).sort();
    assert.deepEqual(missed, ['src/liblua.a', 'src/lua', 'src/lua.o', 'src/lvm.o'], JSON.stringify(r));
    assert.equal(r.hits, 2, JSON.stringify(r));
  });
});

// A defconfig busybox is ~570 compiles (104 s of CPU here, three builds of
// it ~5 min of CI): allnoconfig and a few applets is ~140, libbb included.
const APPLETS = ['CAT', 'ECHO', 'LS', 'WC', 'SED', 'GREP', 'SORT', 'HEAD', 'TR'];
// What a reproducible Kbuild build sets: no date in .config or autoconf.h.
const REPRODUCIBLE = { SOURCE_DATE_EPOCH: '1700000000', KCONFIG_NOTIMESTAMP: '1' };

describe(`busybox 1.35.0 (Debian orig tarball), allnoconfig + ${APPLETS.length} applets, make -j2`, () => {
  const kbx = new Kbx('busybox');
  const args = ['-j2'];
  let configured = '';
  let plain = '';
  let proj = '';
  let cold: Summary;
  before(async () => {
    configured = await unpack(BUSYBOX_1_35_0, scratch('busybox-src'));
    plainBuild(configured, ['allnoconfig'], REPRODUCIBLE);
    for (const a of APPLETS) edit(join(configured, '.config'), `# CONFIG_${a} is not set`, `CONFIG_${a}=y`);
    plainBuild(configured, ['oldconfig'], REPRODUCIBLE); // stdin is /dev/null: the defaults
    // Kbuild writes the tree's absolute path into .busybox_unstripped.cmd:
    // plain and kbx build in the same place, the plain tree then moved aside.
    const base = scratch('busybox');
    proj = join(base, 'busybox-1.35.0');
    cpSync(configured, proj, { recursive: true, preserveTimestamps: true });
    plainBuild(proj, args, REPRODUCIBLE);
    plain = join(base, 'plain');
    renameSync(proj, plain);
    cpSync(configured, proj, { recursive: true, preserveTimestamps: true });
  });

  /** Runs plain make in the plain tree, moved for that to the place the kbx tree builds in. */
  function plainInPlace(makeArgs: string[]): void {
    const aside = `${proj}.kbx`;
    renameSync(proj, aside);
    renameSync(plain, proj);
    try {
      plainBuild(proj, makeArgs, REPRODUCIBLE);
    } finally {
      renameSync(proj, plain);
      renameSync(aside, proj);
    }
  }
  after(() => {
    kbx.stop();
    rmSync(kbx.dir, { recursive: true, force: true });
  });

  test('kbx cold builds what plain make builds, .cmd files and all, and stores it', () => {
    assert.ok(readdirSync(plain).includes('busybox'));
    cold = kbxBuild(kbx, proj, args, REPRODUCIBLE);
    assert.ok(cold.stored >= 250, JSON.stringify(cold));
    assertSameTree(proj, plain);
  });

  test('make clean + kbx warm: every line that builds busybox a hit, the same bytes', () => {
    // After clean, configuring again saves .config as .config.old: the plain
    // tree does the same, to compare the warm tree with.
    plainInPlace(['clean']);
    plainInPlace(args);
    assert.equal(kbx.make(proj, ['clean'], REPRODUCIBLE).status, 0);
    const warm = kbxBuild(kbx, proj, args, REPRODUCIBLE);
    assertSameTree(proj, plain);
    // busybox's clean also removes the host tools and the configuration
    // output the configured tree had, so the build first makes them again
    // (the cold build found them): host tools under scripts/, include/autoconf.h
    // and friends, and make's second reading of the Makefiles after that
    // (MAKE_RESTARTS=1 in every $(shell) probe's environment) miss once.
    // Nothing of busybox itself, and nothing that ran in the cold build:
    assert.ok(warm.hits >= cold.stored, JSON.stringify(warm));
    const own = missedLines(kbx, proj).filter((m) => m.outputs.some((o) => !/^(scripts\/|include\/|\.config|\.kconfig\.d$|\.kernelrelease$)/.test(o)));
    assert.deepEqual(own, [], JSON.stringify(warm));
  });

  test('make clean + kbx warm again: every line a hit but the few that cannot be', () => {
    assert.equal(kbx.make(proj, ['clean'], REPRODUCIBLE).status, 0);
    const warm = kbxBuild(kbx, proj, args, REPRODUCIBLE);
    assertSameTree(proj, plain);
    // `cat .kernelrelease` fails (it is absent after clean; a failure is stored
    // only when nothing outside its key can have caused it) and
    // scripts/gen_build_files.sh, run every time, lists directories the build
    // itself writes into. The shim runs `cat FILE` of a small file itself: those
    // lines count as trivial, not hits (about 90 of them here). Lines that are
    // just `:` reach no shim (make skips them under a Bourne shell's name):
    // here 374 hits + 93 trivial, 2 misses.
    const missed = missedLines(kbx, proj).map((m) => m.command.replace(/ .*/s, '').replace(/.*\//, ''));
    assert.ok(missed.every((c) => c === 'cat' || c === 'gen_build_files.sh'), JSON.stringify(missed));
    assert.ok(warm.misses <= 5 && warm.hits + warm.trivial >= 450, JSON.stringify(warm));
  });
});
