// The end-to-end story of kernel.test.ts on today's trees and toolchains:
// Linux 6.12 x86_64 tinyconfig + KALLSYMS_ALL and a serial console with gcc,
// and Linux 6.1 tinyconfig with LLVM=1 (clang, ld.lld and the llvm
// binutils). The 6.12 kernel kbx linked is booted in QEMU at the end (the
// checks of boot.test.ts), in this tree rather than a second cold build.
// For each tree: plain make, kbx cold, then `make clean` and kbx warm, and the warm build is served
// from the cache; each of its misses is explained, and a second clean
// rebuild misses only lines that fail. kbx links both trees' vmlinux itself,
// in one link (6.12: link/v6.12.ts, where the script links three times).
// Without kallsyms (6.1 here) vmlinux, System.map and bzImage are the plain
// build's bytes. With kallsyms kbx's tables sit in room reserved with some
// slack, so the symbols from the second table on sit elsewhere than the
// script's: there vmlinux.o is the plain build's, every kbx build gives the
// cold kbx build's vmlinux, System.map and bzImage, the symbols are the
// plain build's (at its addresses up to the tables), and the tables are what
// the tree's own C scripts/kallsyms makes of kbx's System.map. Each tree is
// configured and built once, the steps share it.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBuild } from '../src/builds/archive.js';
import type { BuildRecord, LineRecord } from '../src/builds/record.js';
import type { LinkReport } from '../src/kernel/link/events.js';
import { boot, bootNeeds, initramfs } from './support/boot.js';
import { assertKallsymsInMap, assertSysrqBacktrace, BOOT_APPEND, BOOT_INIT, BOOT_OPTIONS, BOOT_OPTIONS_OFF, consoleKallsyms } from './support/boot-checks.js';
import { Kbx, plainMake, summary } from './support/kbx.js';
import { assertKallsymsAreCTools } from './support/kallsyms-in-vmlinux.js';
import { runCKallsyms } from './support/kallsyms-oracle.js';
import { cKallsyms, kernelTree, REPRODUCIBLE_KBUILD, type LinuxSeries } from './support/kernel-tree.js';
import { readSystemMap, type MapLine } from './support/link-tree.js';
import { linuxSource, program, unlessMissing, type Need } from './support/tools.js';

const REPRODUCIBLE = REPRODUCIBLE_KBUILD;
// Its own directory, apart from kernel.test.ts's (a developer may point it elsewhere).
const WORK = process.env.KBX_TEST_KERNEL_WORK ?? '/var/tmp/kbx-kernel-612-llvm';
// A developer may run one story (a part of its name): a name pattern would still run the others' builds.
const ONLY = process.env.KBX_TEST_KERNEL_STORY;
const ARTIFACTS = ['vmlinux', 'System.map', 'arch/x86/boot/bzImage'];

interface Story {
  name: string;
  series: LinuxSeries;
  /** make arguments of every build of the tree, tinyconfig and clean included. */
  makeArgs: string[];
  needs: Need[];
  /** How kbx links vmlinux in this tree: in one step, or with the tree's script (no link report). */
  link: 'single' | 'stock';
  /** Enabled on top of tinyconfig (scripts/config, then olddefconfig). */
  options: string[];
  /** Disabled on top of tinyconfig (a choice's value the options replace). */
  off?: string[];
  /** The kbx kernel is booted in QEMU (BOOT_OPTIONS among the options). */
  boot?: boolean;
}

const STORIES: Story[] = [
  // kbx make sends a 6.12 link to kbx only with kallsyms: without it the script links once too.
  // x86_64 with a serial console, so that the kbx kernel boots (SMP: absolute per-CPU kallsyms).
  {
    name: 'Linux 6.12 x86_64 tinyconfig with KALLSYMS_ALL and a serial console',
    series: '6.12',
    makeArgs: [],
    needs: bootNeeds(),
    link: 'single',
    options: ['KALLSYMS', 'KALLSYMS_ALL', ...BOOT_OPTIONS],
    off: BOOT_OPTIONS_OFF,
    boot: true,
  },
  {
    name: 'Linux 6.1 tinyconfig with LLVM=1',
    series: '6.1',
    makeArgs: ['LLVM=1'],
    // Debian 12's clang, lld and llvm are 14: both trees accept it (6.1 wants 11, 6.12 13.0.1).
    needs: [program('clang', 'clang'), program('ld.lld', 'lld'), program('llvm-objcopy', 'llvm')],
    link: 'single',
    options: [],
  },
];

function artifacts(out: string): Map<string, Buffer> {
  return new Map(ARTIFACTS.map((a) => [a, readFileSync(join(out, a))]));
}

function assertSameArtifacts(actual: Map<string, Buffer>, expected: Map<string, Buffer>, what: string, than = 'the plain build'): void {
  for (const [a, bytes] of expected) assert.ok(actual.get(a)!.equals(bytes), `${a} of the ${what} build differs from ${than}`);
}

/** tinyconfig and the story's options, as a user would set them. */
function configure(story: Story, tree: string, out: string, tinyconfig: () => number | null): void {
  assert.equal(tinyconfig(), 0);
  const off = story.off ?? [];
  if (story.options.length === 0 && off.length === 0) return;
  const conf = join(out, '.config');
  execFileSync(join(tree, 'scripts/config'), ['--file', conf, ...story.options.flatMap((o) => ['-e', o]), ...off.flatMap((o) => ['-d', o])]);
  assert.equal(plainMake(tree, [`O=${out}`, ...story.makeArgs, 'olddefconfig'], REPRODUCIBLE).status, 0);
  const text = readFileSync(conf, 'utf8');
  assert.deepEqual(story.options.filter((o) => !text.includes(`\nCONFIG_${o}=y\n`)), [], 'options olddefconfig did not keep');
  assert.deepEqual(off.filter((o) => !text.includes(`\n# CONFIG_${o} is not set\n`)), [], 'options olddefconfig did not leave off');
}

/**
 * kbx's kallsyms link against the plain build's: the same symbols, at the
 * same addresses up to the first table (kbx's room has slack after each
 * table), tables that are the C tool's of kbx's System.map, and as many
 * symbols in them as the C tool keeps of the script's.
 */
function assertKallsymsLink(t: { diagnostic(msg: string): void }, tree: string, kbxOut: string, plainOut: string): void {
  const mine = readSystemMap(join(kbxOut, 'System.map'));
  const stock = readSystemMap(join(plainOut, 'System.map'));
  const key = (l: MapLine): string => `${l.type} ${l.name}`;
  assert.deepEqual(mine.map(key).sort(), stock.map(key).sort());
  const first = stock.find((l) => l.name === 'kallsyms_num_syms')!.addr;
  const before = (m: MapLine[]): string[] => m.filter((l) => l.addr <= first).map((l) => `${l.addr.toString(16)} ${key(l)}`);
  assert.deepEqual(before(mine), before(stock));
  const line = (l: MapLine): string => `${l.addr.toString(16)} ${key(l)}`;
  const theirs = new Set(stock.map(line));
  const moved = mine.filter((l) => !theirs.has(line(l))).map((l) => l.name);
  t.diagnostic(`symbols not at the script's address: ${moved.length} (${moved.slice(0, 10).join(' ')})`);
  const kept = assertKallsymsAreCTools(kbxOut, tree);
  assert.equal(kept, assertKallsymsAreCTools(plainOut, tree));
  t.diagnostic(`kallsyms: ${kept} symbols, the C tool's tables of kbx's System.map`);
}

/** The summary line of a build, for the test log: the warm hit count is reported with every run. */
function report(t: { diagnostic(msg: string): void }, r: { stderr: string }): void {
  t.diagnostic(/^kbx: \d+ lines.*$/m.exec(r.stderr)?.[0] ?? 'no summary line');
}

/** A missed line in one line of text: its command's start and why it missed. */
function describeMiss(l: LineRecord): string {
  const why = !l.why ? 'no reason recorded' : l.why.kind === 'inputs' ? `inputs: ${l.why.changes.map((c) => `${c.path} ${c.change}`).join(', ')}` : l.why.kind;
  return `exit ${l.exit}, ${why}${l.reason ? ` (${l.reason})` : ''}: ${l.command.slice(0, 160)}`;
}

// kbuild exports these from include/config/kernel.release, which `make
// clean` keeps but which a cold build's first lines run before.
const RELEASE_VARIABLES = /^(KERNELRELEASE|MODLIB|INSTALL_DTBS_PATH)=/;

/**
 * Why the first warm rebuild after a cold build may miss a line, and nothing
 * else: the line failed before (failures are never stored) or fails now; it
 * only ran without the cache before;
 * the earlier runs of its command had an environment that differs only in
 * the kernel release (see above); or its inputs differ only by files and
 * directory listings of the build tree that the cold build had not made yet
 * when it ran the line and that `make clean` keeps (generated headers), or
 * by directories a sibling line had made (siblingMadeDir).
 */
function firstRebuildMiss(l: LineRecord, warm: BuildRecord, earlier: BuildRecord[], out: string): boolean {
  if (l.exit !== 0) return true;
  const before = earlier.flatMap((b) => b.lines.filter((x) => x.command === l.command && x.cwd === l.cwd).map((x) => ({ x, b })));
  if (before.some(({ x }) => x.exit !== 0)) return true;
  // Run only without the cache before: under `make tinyconfig` (kbx passes config targets through).
  if (before.length > 0 && before.every(({ x }) => x.kind === 'pass')) return true;
  // Not stored before: an input changed while it ran (under -j2 another line
  // wrote into a directory it listed, as MKCAP's listing of the build tree).
  if (before.length > 0 && before.every(({ x }) => x.reason?.startsWith('input-changed:'))) return true;
  if (l.why?.kind === 'new-command') {
    const env = (b: BuildRecord, i: number | undefined, drop: RegExp) => (i === undefined ? '?' : b.envs[i]!.filter((e) => !drop.test(e)).join('\n'));
    const same = (drop: RegExp) => before.some(({ x, b }) => env(b, x.env, drop) === env(warm, l.env, drop));
    return !same(/^$/) && same(RELEASE_VARIABLES);
  }
  if (l.why?.kind === 'inputs') {
    const inTree = (p: string) => p === out || p.startsWith(`${out}/`);
    return siblingMadeDir(l, out) || l.why.changes.every((c) => inTree(c.path) && (c.change === 'appeared' || (c.change === 'content' && c.was.startsWith('dir:'))));
  }
  return false;
}

/**
 * A line whose inputs differ only by build-tree directories it found made
 * by a sibling line in an earlier build and absent now (`make clean` removes
 * them). On x86_64, objtool's libsubcmd headers: several lines under -j2
 * install into one directory, each making it if absent, and which of them
 * comes first varies from build to build, so any rebuild may miss some.
 */
function siblingMadeDir(l: LineRecord, out: string): boolean {
  if (l.why?.kind !== 'inputs' || l.why.changes.length === 0) return false;
  return l.why.changes.every((c) => c.path.startsWith(`${out}/`) && c.path.endsWith('/') && c.change === 'disappeared');
}

for (const story of STORIES) {
  const tree = kernelTree(story.series);
  const other = ONLY !== undefined && !story.name.includes(ONLY) ? `KBX_TEST_KERNEL_STORY=${ONLY}` : false;
  describe(story.name, { skip: other || unlessMissing(linuxSource(tree, story.series), ...story.needs) }, () => {
    const dir = join(WORK, story.series + story.makeArgs.join('').replace(/\W/g, '-'));
    const plainOut = join(dir, 'plain');
    const kbxOut = join(dir, 'kbx');
    const linkReport = join(dir, 'link-report.json');
    const kbx = new Kbx(`kernel-${story.series}`, { ...REPRODUCIBLE, KBX_LINK_REPORT: linkReport });
    // kbx's kallsyms room makes its vmlinux its own (see the top): what the kbx builds are compared with.
    const roomy = story.link === 'single' && story.options.includes('KALLSYMS');
    let expected: Map<string, Buffer>;
    let than = 'the plain build';

    before(() => {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(plainOut, { recursive: true });
      mkdirSync(kbxOut, { recursive: true });
      configure(story, tree!, plainOut, () => plainMake(tree!, [`O=${plainOut}`, ...story.makeArgs, 'tinyconfig'], REPRODUCIBLE).status);
      const r = plainMake(tree!, [`O=${plainOut}`, ...story.makeArgs, '-j2'], REPRODUCIBLE);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      expected = roomy ? new Map([['vmlinux.o', readFileSync(join(plainOut, 'vmlinux.o'))]]) : artifacts(plainOut);
    });

    /** The build's artifacts are the expected ones (roomy: after the cold kbx build, its own too). */
    function assertArtifacts(what: string): void {
      const now = artifacts(kbxOut);
      now.set('vmlinux.o', readFileSync(join(kbxOut, 'vmlinux.o')));
      assertSameArtifacts(now, expected, what, than);
      if (roomy && than === 'the plain build') {
        expected = now;
        than = 'the cold kbx build';
      }
    }

    /** The tree's link as kbx ran it: the report of its single link, or the tree's script. */
    function assertLink(stderr: string): void {
      if (story.link === 'stock') {
        assert.ok(!existsSync(linkReport), 'kbx link-vmlinux ran on a tree whose script kbx does not link in one step');
        return;
      }
      // Neither `kbx make` nor `kbx link-vmlinux` says the tree's script ran.
      assert.doesNotMatch(stderr, /own scripts\/link-vmlinux\.sh|running scripts\/link-vmlinux\.sh instead/);
      const rep = JSON.parse(readFileSync(linkReport, 'utf8')) as LinkReport & { status: number };
      assert.equal(rep.mode, 'single', rep.reason);
      assert.equal(rep.links, 1);
      rmSync(linkReport);
    }

    const coldGives = roomy ? "the plain build's vmlinux.o and symbols, and the C tool's tables" : "the plain build's vmlinux, System.map and bzImage";
    test(`a cold kbx build gives ${coldGives}`, (t) => {
      configure(story, tree!, kbxOut, () => kbx.make(tree!, [`O=${kbxOut}`, ...story.makeArgs, 'tinyconfig']).status);
      const r = kbx.make(tree!, [`O=${kbxOut}`, ...story.makeArgs, '-j2']);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      report(t, r);
      const s = summary(r.stderr);
      assert.ok(s.misses > 400, r.stderr.slice(-500));
      assert.equal(s.fallback, 0, r.stderr.slice(-500));
      assertArtifacts('cold kbx');
      if (roomy) assertKallsymsLink(t, tree!, kbxOut, plainOut);
      assertLink(r.stderr);
    });

    test('after make clean, the warm build is served from the cache and is byte-identical; each miss is explained', (t) => {
      assert.equal(plainMake(tree!, [`O=${kbxOut}`, ...story.makeArgs, 'clean'], REPRODUCIBLE).status, 0);
      const r = kbx.make(tree!, [`O=${kbxOut}`, ...story.makeArgs, '-j2']);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      report(t, r);
      const s = summary(r.stderr);
      assert.equal(s.fallback, 0, r.stderr.slice(-500));
      // Nearly every line the cache sees is a hit (6.12 tinyconfig has about 1,400 such lines, 6.1 with clang 1,800).
      assert.ok(s.hits > 1000 && s.hits >= 0.95 * (s.hits + s.misses), r.stderr.slice(-500));
      assert.equal(kbx.run(['builds']).status, 0); // waits for the record
      const [warm, ...earlier] = [1, 2, 3].map((n) => loadBuild(kbx.dir, String(n))); // warm, cold, tinyconfig
      const missed = warm!.lines.filter((l) => l.kind === 'miss');
      const unexplained = missed.filter((l) => !firstRebuildMiss(l, warm!, earlier, kbxOut));
      t.diagnostic(`${missed.length} misses, ${unexplained.length} unexplained`);
      assert.deepEqual(unexplained.map(describeMiss), [], 'warm misses that the first rebuild after a cold build does not explain');
      assert.ok(s.misses < s.lines / 50, r.stderr.slice(-500));
      assertArtifacts('warm kbx');
      assertLink(r.stderr);
    });

    test('a second clean rebuild misses nothing but lines that fail', (t) => {
      assert.equal(plainMake(tree!, [`O=${kbxOut}`, ...story.makeArgs, 'clean'], REPRODUCIBLE).status, 0);
      const r = kbx.make(tree!, [`O=${kbxOut}`, ...story.makeArgs, '-j2']);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      report(t, r);
      assert.equal(kbx.run(['builds']).status, 0);
      // A line that failed is never stored (its failure may come from what no key
      // holds), so it runs every time: kbuild's `$(shell [ … -ge … ] && echo y)`
      // version tests, one with gcc 12 on 6.12, three with clang 14 on 6.1.
      // And the -j2 race of siblingMadeDir, which no number of builds settles.
      const missed = loadBuild(kbx.dir).lines.filter((l) => l.kind === 'miss');
      for (const l of missed) t.diagnostic(`missed: ${describeMiss(l)}`);
      assert.deepEqual(missed.filter((l) => l.exit === 0 && !siblingMadeDir(l, kbxOut)).map(describeMiss), [], 'lines that succeeded missed');
      assert.equal(summary(r.stderr).misses, missed.length, r.stderr.slice(-500));
      assertArtifacts('second warm kbx');
      assertLink(r.stderr);
      kbx.stop();
    });

    // The kernel of the builds above (all the same bytes), booted: its symbol table where it counts.
    if (story.boot) {
      test('the kbx kernel boots: /proc/kallsyms is its System.map, as much as the C tool keeps, and a sysrq backtrace names the write path', async (t) => {
        const mapPath = join(kbxOut, 'System.map');
        const map = readSystemMap(mapPath);
        const initrd = join(dir, 'initrd.cpio');
        writeFileSync(initrd, initramfs(BOOT_INIT));
        const b = await boot({ kernel: join(kbxOut, 'arch/x86/boot/bzImage'), initrd, append: BOOT_APPEND });
        writeFileSync(join(dir, 'console.log'), b.console);
        assert.equal(b.killed, false, `QEMU was killed; console:\n${b.console.slice(-3000)}`);
        const ks = consoleKallsyms(b.console);
        const percpu = assertKallsymsInMap(ks, map);
        // x86_64 SMP: 6.12 still marks per-CPU symbols absolute (VERSIONS.md).
        const config = readFileSync(join(kbxOut, '.config'), 'utf8');
        assert.match(config, /^CONFIG_KALLSYMS_ABSOLUTE_PERCPU=y$/m);
        assert.ok(percpu > 0, 'no per-CPU symbols listed');
        // And it lists all of them: as many as 6.12's own scripts/kallsyms keeps of that System.map.
        const c = runCKallsyms(cKallsyms(tree!), mapPath, { allSymbols: true, absolutePercpu: true });
        assert.equal(c.status, 0, c.stderr);
        const n = /kallsyms_num_syms:\s*\n\s*\.long\s+(\d+)/.exec(c.asm);
        assert.ok(n, 'no kallsyms_num_syms in the C tool output');
        assert.equal(ks.length, Number(n[1]));
        assertSysrqBacktrace(b.console, map);
        t.diagnostic(`/proc/kallsyms: ${ks.length} symbols (${percpu} per-CPU, shown absolute), every one a System.map line`);
      });
    }
  });
}
