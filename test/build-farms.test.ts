// Build farms: misses compiled by distcc on two real distccd (loopback), and
// entries shared with local builds both ways. The project saves each command
// in a kbuild-style .cmd file, as the kernel does, so a hit must write the
// command the current build runs, wrapper and all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadBuild } from '../src/builds/archive.js';
import { Kbx, ok, plainMake, summary, tempDir, writeTree } from './support/kbx.js';
import { Distccd, distccNeeds } from './support/distcc.js';
import { IcecreamFarm, icecreamNeeds } from './support/icecream.js';
import { program, unlessMissing } from './support/tools.js';

// A recipe line shaped as kbuild's: the compile, then the command saved in `.<target>.cmd`.
const MAKEFILE = `SRCS := $(sort $(wildcard *.c))
all: $(SRCS:.c=.o)
%.o: %.c h.h
\t$(CC) -g -fdebug-prefix-map=$(CURDIR)=. -c $< -o $@; printf '%s\\n' 'cmd_$@ := $(CC) -g -fdebug-prefix-map=$(CURDIR)=. -c $< -o $@' > .$@.cmd
clean:
\trm -f *.o .*.cmd
`;

function project(tag: string, files = 6): string {
  const dir = join(tempDir(tag), 'proj');
  const tree: Record<string, string> = { Makefile: MAKEFILE, 'h.h': '#define H 3\n' };
  for (let i = 0; i < files; i++) tree[`f${i}.c`] = `#include "h.h"\nint f${i}(int x) { return x * H + ${i}; }\n`;
  writeTree(dir, tree);
  return dir;
}

/** The objects and .cmd files a build left, by name; the .cmd files with the project's path as DIR. */
function outputs(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith('.o')) out.set(name, readFileSync(join(dir, name)));
    if (name.endsWith('.cmd')) out.set(name, Buffer.from(readFileSync(join(dir, name), 'utf8').replaceAll(dir, 'DIR')));
  }
  return out;
}

/** What plain make (no kbx) leaves for this project with this CC, built in a copy. */
function plainOutputs(dir: string, cc: string, env: Record<string, string>, launcher: string[] = []): Map<string, Buffer> {
  const ref = join(tempDir('farm-ref'), 'proj');
  mkdirSync(ref, { recursive: true });
  assert.equal(spawnSync('cp', ['-a', `${dir}/.`, ref]).status, 0);
  // The project's own makefile, less any line that waits for the test (the dying host's).
  writeTree(ref, { Makefile: readFileSync(join(dir, 'Makefile'), 'utf8').includes('down.flag') ? MAKEFILE : readFileSync(join(dir, 'Makefile'), 'utf8') });
  assert.equal(plainMake(ref, ['clean']).status, 0);
  const r = plainMake(ref, [`CC=${cc}`], env, launcher);
  assert.equal(r.status, 0, r.stderr);
  return outputs(ref);
}

function assertSame(got: Map<string, Buffer>, want: Map<string, Buffer>): void {
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [name, bytes] of want) assert.ok(got.get(name)!.equals(bytes), `${name} differs from plain make's`);
}


describe('build farms: distcc', { skip: unlessMissing(...distccNeeds, program('ccache', 'ccache')) }, () => {
  let farm: Distccd[] = [];
  let env: Record<string, string> = {};
  const stores: Kbx[] = [];
  const kbx = (name: string) => {
    const k = new Kbx(name);
    stores.push(k);
    return k;
  };

  before(async () => {
    farm = [await Distccd.start(2), await Distccd.start(2)];
    const ddir = tempDir('distcc-dir');
    env = { DISTCC_HOSTS: farm.map((d) => d.host()).join(' '), DISTCC_DIR: ddir };
  });
  after(async () => {
    for (const k of stores) k.stop();
    for (const d of farm) await d.stop();
  });

  test('misses compiled on the farm are hits for CC=gcc after make clean, with the .cmd files plain make writes', () => {
    const k = kbx('farm-to-local');
    const dir = project('farm-to-local');
    const served = farm.reduce((n, d) => n + d.compilesServed(), 0);
    const r0 = ok(k.make(dir, ['-j4', 'CC=distcc gcc'], env));
    let s = summary(r0.stderr);
    assert.equal(s.misses, 6);
    assert.equal(s.stored, 6);
    assert.equal(farm.reduce((n, d) => n + d.compilesServed(), 0) - served, 6, 'every compile ran on a distccd');
    assertSame(outputs(dir), plainOutputs(dir, 'distcc gcc', env));
    assert.equal(k.stats()['miss-via:distcc'], 6);
    assert.match(r0.stderr, /6 misses \(6 via distcc\)/);
    assert.equal(k.run(['builds']).status, 0); // waits for the build record
    assert.deepEqual(loadBuild(k.dir).missesVia, { distcc: 6 }, 'the build record (and its report) counts misses by wrapper');

    ok(k.make(dir, ['clean']));
    const r = ok(k.make(dir, ['-j4', 'CC=gcc']));
    s = summary(r.stderr);
    assert.equal(s.hits, 6, r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assertSame(outputs(dir), plainOutputs(dir, 'gcc', {}));
    // make finds nothing to do: the saved commands are the ones CC=gcc runs.
    assert.match(plainMake(dir, ['CC=gcc']).stdout, /Nothing to be done|is up to date/);
  });

  test('entries made with CC=gcc are hits under distcc, which compiles nothing', () => {
    const k = kbx('local-to-farm');
    const dir = project('local-to-farm');
    assert.equal(summary(ok(k.make(dir, ['CC=gcc'])).stderr).stored, 6);
    ok(k.make(dir, ['clean']));
    const served = farm.reduce((n, d) => n + d.compilesServed(), 0);
    const s = summary(ok(k.make(dir, ['-j4', 'CC=distcc gcc'], env)).stderr);
    assert.equal(s.hits, 6);
    assert.equal(farm.reduce((n, d) => n + d.compilesServed(), 0), served, 'a hit never reaches the farm');
    assertSame(outputs(dir), plainOutputs(dir, 'distcc gcc', env));
  });

  test('a touched header reruns the compiles: entries distcc made in a clean tree hit, as gcc\'s do', () => {
    // distcc unlinks the old object before writing the one it gets back (as BFD does):
    // its probe of the -o file is no input (replacers.ts), or every touch would miss.
    const k = kbx('farm-touch');
    const dir = project('farm-touch');
    assert.equal(summary(ok(k.make(dir, ['-j4', 'CC=distcc gcc'], env)).stderr).stored, 6);
    const at = new Date(Date.now() + 2000);
    utimesSync(join(dir, 'h.h'), at, at);
    const served = farm.reduce((n, d) => n + d.compilesServed(), 0);
    const r = ok(k.make(dir, ['-j4', 'CC=distcc gcc'], env));
    const s = summary(r.stderr);
    assert.deepEqual([s.hits, s.misses], [6, 0], r.stderr);
    assert.equal(farm.reduce((n, d) => n + d.compilesServed(), 0), served, 'a hit never reaches the farm');
    assertSame(outputs(dir), plainOutputs(dir, 'distcc gcc', env));
  });

  test('ccache inside kbx shares entries with gcc and distcc', () => {
    const k = kbx('ccache-share');
    const dir = project('ccache-share', 3);
    const cenv = { CCACHE_DIR: tempDir('ccache-share-dir') };
    assert.equal(summary(ok(k.make(dir, ['CC=ccache gcc'], cenv)).stderr).stored, 3);
    assert.equal(k.stats()['miss-via:ccache'], 3);
    ok(k.make(dir, ['clean']));
    assert.equal(summary(ok(k.make(dir, ['CC=gcc'])).stderr).hits, 3);
    ok(k.make(dir, ['clean']));
    assert.equal(summary(ok(k.make(dir, ['CC=ccache distcc gcc'], { ...cenv, ...env })).stderr).hits, 3);
    assertSame(outputs(dir), plainOutputs(dir, 'ccache distcc gcc', { ...cenv, ...env }));
  });

  test('a distcc host that dies mid-build: the build succeeds, and what is stored is what plain gcc makes', async () => {
    const lone = await Distccd.start(2);
    try {
      const lenv = { DISTCC_HOSTS: lone.host(), DISTCC_DIR: tempDir('distcc-dies') };
      const k = new Kbx('host-dies', lenv);
      stores.push(k);
      const dir = project('host-dies', 4);
      // f0 and f1 compile on the host; then a line says so and waits (at most 60 s) while the test stops the host.
      const wait = 'echo > down.flag; i=0; while [ ! -e resume.flag ] && [ $$i -lt 600 ]; do sleep 0.1; i=$$((i+1)); done';
      writeTree(dir, { Makefile: MAKEFILE.replace('all: $(SRCS:.c=.o)', () => `all: f2.o f3.o\nf2.o f3.o: down.flag\ndown.flag: f0.o f1.o\n\t${wait}`) });
      const build = k.makeAsync(dir, ['-j1', 'CC=distcc gcc']);
      for (let i = 0; i < 600 && !existsSync(join(dir, 'down.flag')); i++) await sleep(100);
      await lone.stop();
      writeTree(dir, { 'resume.flag': '' });
      const r = ok(await build);
      assert.equal(lone.compilesServed(), 2, 'f0 and f1 compiled on the host');
      assert.match(r.stderr, /distcc\[\d+\].*(failed to distribute|running locally)/, 'distcc fell back for f2 and f3');
      // The compiles that fell back are stored as compiled here, without what distcc said about it.
      assert.equal(summary(r.stderr).stored, 4 + 1, r.stderr);
      const plainObjects = [...plainOutputs(dir, 'gcc', {})].filter(([name]) => name.endsWith('.o'));
      assert.equal(plainObjects.length, 4);
      for (const [name, bytes] of plainObjects) assert.ok(readFileSync(join(dir, name)).equals(bytes), `${name} differs from plain gcc's`);
      // What was stored restores the objects plain gcc makes.
      ok(k.make(dir, ['clean']));
      rmSync(join(dir, 'down.flag'));
      const r2 = ok(k.make(dir, ['-j1', 'CC=gcc']));
      assert.equal(summary(r2.stderr).hits, 4, 'f0 to f3 hit');
      assert.doesNotMatch(r2.stderr, /distcc/, 'a hit for CC=gcc replays what distcc said');
      for (const [name, bytes] of plainObjects) assert.ok(readFileSync(join(dir, name)).equals(bytes), `${name} differs from plain gcc's`);
    } finally {
      await lone.stop();
    }
  });

  test("a compile line that also writes $CC's text is not stored when CC names a wrapper: a CC=gcc build would get it", () => {
    const k = kbx('cc-text');
    const dir = join(tempDir('cc-text'), 'proj');
    writeTree(dir, { 'a.c': 'int a;\n', Makefile: 'export CC\ncc.txt: a.c\n\t$(CC) -c a.c -o a.o && echo "$$CC" > cc.txt\n' });
    ok(k.make(dir, ['CC=distcc gcc'], env));
    assert.equal(readFileSync(join(dir, 'cc.txt'), 'utf8'), 'distcc gcc\n');
    assert.equal(k.stats()['not-stored:wrapper-in-output'], 1);
    rmSync(join(dir, 'cc.txt'));
    ok(k.make(dir, ['CC=gcc']));
    assert.equal(readFileSync(join(dir, 'cc.txt'), 'utf8'), 'gcc\n');
  });

  test("a line that runs no wrapped compile keys $CC's wrapper: `distcc gcc --version` is not gcc's", () => {
    const k = kbx('cc-version');
    const dir = join(tempDir('cc-version'), 'proj');
    // What kbuild's CC_VERSION_TEXT runs: distcc runs it locally as x86_64-linux-gnu-gcc, which says so.
    writeTree(dir, { Makefile: 'export CC\nV := $(shell LC_ALL=C $(CC) --version | head -n 1)\nv.txt:\n\techo "$(V)" > v.txt; echo "$$CC" >> v.txt\n' });
    const version = (cc: string) => plainMake(dir, [`CC=${cc}`, '-s', '--eval', 'print: ; @echo "$(V)"', 'print'], env).stdout;
    ok(k.make(dir, ['CC=distcc gcc'], env));
    const distcc = readFileSync(join(dir, 'v.txt'), 'utf8');
    assert.equal(distcc, `${version('distcc gcc').trim()}\ndistcc gcc\n`);
    assert.equal(k.stats()['not-stored:wrapper-in-output'] ?? 0, 0, 'keyed with its wrapper, the line is stored as it ran');
    rmSync(join(dir, 'v.txt'));
    const r = ok(k.make(dir, ['CC=gcc']));
    assert.equal(readFileSync(join(dir, 'v.txt'), 'utf8'), `${version('gcc').trim()}\ngcc\n`);
    assert.equal(summary(r.stderr).hits, 0, r.stderr);
  });

  test('lines that run no compiler and read no $CC share entries across CC="distcc gcc" and CC=gcc; a line or script that reads $CC does not', () => {
    const k = kbx('cc-share');
    const dir = join(tempDir('cc-share'), 'proj');
    writeTree(dir, {
      'a.c': 'int a;\n',
      'ver.sh': 'LC_ALL=C $CC --version | head -n 1\n',
      Makefile: 'export CC\nall: lib.a cc.txt v.txt\nlib.a: a.o\n\tar rcsD lib.a a.o\na.o: a.c\n\t$(CC) -c a.c -o a.o\ncc.txt:\n\techo "$$CC" > cc.txt\nv.txt:\n\tsh ./ver.sh > v.txt\n',
    });
    const build = (cc: string, e: Record<string, string> = {}) => {
      for (const f of ['a.o', 'lib.a', 'cc.txt', 'v.txt']) rmSync(join(dir, f), { force: true }); // as make clean
      const r = ok(k.make(dir, [`CC=${cc}`], e));
      return { ...summary(r.stderr), cc: readFileSync(join(dir, 'cc.txt'), 'utf8'), v: readFileSync(join(dir, 'v.txt'), 'utf8') };
    };
    const version = (cc: string) => spawnSync('sh', ['./ver.sh'], { cwd: dir, env: { ...process.env, ...env, CC: cc }, encoding: 'utf8' }).stdout;
    const farm = build('distcc gcc', env);
    assert.deepEqual([farm.cc, farm.v], ['distcc gcc\n', version('distcc gcc')]);
    const local = build('gcc');
    // The compile and ar hit (before: ar ran again, its environment held CC); echo "$CC" and the script run.
    assert.deepEqual([local.cc, local.v], ['gcc\n', version('gcc')]);
    assert.deepEqual([local.hits, local.misses], [2, 2]);
    const again = build('distcc gcc', env);
    assert.deepEqual([again.cc, again.v, again.misses], ['distcc gcc\n', version('distcc gcc'), 0]);
  });

  test('-j16 over distcc: every line stored, no trace log or temporary file left behind', () => {
    const k = kbx('wide');
    const dir = project('wide', 48);
    const tmp = tempDir('wide-tmp');
    const wenv = { ...env, DISTCC_HOSTS: farm.map((d) => d.host(8)).join(' '), TMPDIR: tmp };
    const r = ok(k.make(dir, ['-j16', 'CC=distcc gcc'], wenv));
    const s = summary(r.stderr);
    assert.equal(s.misses, 48, r.stderr);
    assert.equal(s.stored, 48, r.stderr);
    assert.equal(s.fallback, 0, 'a line ran without the daemon');
    ok(k.run(['stats'])); // waits for the stores
    assert.deepEqual(readdirSync(tmp), [], 'distcc left temporary files');
    assertSame(outputs(dir), plainOutputs(dir, 'distcc gcc', wenv));
    const traces = join(k.dir, 'traces');
    assert.deepEqual(existsSync(traces) ? readdirSync(traces) : [], [], 'trace logs left behind');
    rmSync(tmp, { recursive: true, force: true });
  });
});

describe('build farms: icecream', { skip: unlessMissing(...icecreamNeeds) }, () => {
  let farm: IcecreamFarm | undefined;
  const k = new Kbx('icecream');
  after(async () => {
    k.stop();
    await farm?.stop();
  });

  test('misses compiled by a remote iceccd are hits for CC=gcc after make clean', async () => {
    farm = await IcecreamFarm.start();
    const dir = project('icecream', 3);
    // Without -g: with it, a remote icecc object records icecream's own options (wrappers.ts).
    writeTree(dir, { Makefile: MAKEFILE.replaceAll(' -g ', ' -O2 ') });
    const env = farm.clientEnv();
    k.launcher = farm.launcher();
    let r = ok(k.make(dir, ['-j2', 'CC=icecc gcc'], env));
    let s = summary(r.stderr);
    assert.equal(s.stored, 3, r.stderr);
    assert.equal(k.stats()['miss-via:icecc'], 3);
    assert.equal(farm.remoteJobs(), 3, 'the scheduler sent every compile to the remote iceccd');
    // plain make with icecc sends its three compiles to the farm too
    assertSame(outputs(dir), plainOutputs(dir, 'icecc gcc', env, farm.launcher()));

    k.launcher = [];
    ok(k.make(dir, ['clean']));
    r = ok(k.make(dir, ['-j2', 'CC=gcc']));
    s = summary(r.stderr);
    assert.equal(s.hits, 3, r.stderr);
    assert.equal(s.misses, 0, r.stderr);
    assertSame(outputs(dir), plainOutputs(dir, 'gcc', {}));
    assert.equal(farm.remoteJobs(), 3 + 3, 'only plain make (icecc gcc) reached the farm');
  });
});

describe('sccache inside kbx', { skip: unlessMissing(program('sccache', 'sccache')) }, () => {
  // sccache's client hands each compile to its server, a process started once and
  // never traced again: what the compiler read is in no line's trace.
  const port = String(20_000 + Math.floor(Math.random() * 20_000));
  const env = { SCCACHE_DIR: tempDir('sccache-dir'), SCCACHE_SERVER_PORT: port, SCCACHE_IDLE_TIMEOUT: '120' };
  const k = new Kbx('sccache');
  after(() => {
    k.stop();
    spawnSync('sccache', ['--stop-server'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  });

  test('a compile through sccache is never stored, and does not stop CC=gcc builds of the same line from being stored and hit', () => {
    const dir = project('sccache', 3);
    let s = summary(ok(k.make(dir, ['CC=sccache gcc'], env)).stderr);
    assert.deepEqual([s.misses, s.stored], [3, 0]);
    assert.equal(k.stats()['not-stored:sccache-server'], 3);
    // The line keys as `gcc -c …`: a verdict learned from the sccache run would make it pass through here.
    ok(k.make(dir, ['clean']));
    s = summary(ok(k.make(dir, ['CC=gcc'])).stderr);
    assert.deepEqual([s.misses, s.stored], [3, 3]);
    ok(k.make(dir, ['clean']));
    s = summary(ok(k.make(dir, ['CC=sccache gcc'], env)).stderr);
    assert.deepEqual([s.hits, s.misses], [3, 0]);
    assertSame(outputs(dir), plainOutputs(dir, 'sccache gcc', env));
  });
});
