// Replay before make (ARCHITECTURE.md, Replay): kbx make restores the last
// build's outputs whose inputs still hold before make runs, and only while
// make's own inputs (makefiles, $(wildcard) results, arguments, environment)
// are the ones recorded. Real make and gcc; every result is compared with
// plain make's in a copy of the same tree.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadBuild } from '../src/builds/archive.js';
import { changedSince, fsNow } from '../src/replay/unchanged.js';
import { computeBasis } from '../src/replay/basis.js';
import { FileState } from '../src/fingerprint/file-state.js';
import type { BuildRecord } from '../src/builds/record.js';
import { assertSameTree, Kbx, kbxMain, ok, plainMake, summary, tempDir, writeTree, type RunResult } from './support/kbx.js';

// A makefile that does not record commands: objects depend on their source
// only, so plain make after a flags change keeps old objects unless cleaned.
const PROJECT: Record<string, string> = {
  Makefile: `CFLAGS := -O1
SRCS := $(wildcard *.c)
all: prog tool
prog: $(SRCS:.c=.o)
\tgcc -o $@ $^
%.o: %.c common.h
\tgcc $(CFLAGS) $(EXTRA) -c -o $@ $<
tool: tool.in
\tcp tool.in tool
clean:
\trm -f *.o prog tool
`,
  'common.h': '#define SCALE 3\nint util(int);\n',
  'main.c': '#include "common.h"\nint main(void) { return util(SCALE) - 9; }\n',
  'util.c': '#include "common.h"\nint util(int x) { return x * SCALE; }\n',
  'tool.in': 'a tool\n',
};

// test/support/kbx.ts turns replay off for the other suites.
const ON = { KBX_REPLAY: 'true' };

function project(tag: string): string {
  const dir = join(tempDir(tag), 'proj');
  writeTree(dir, PROJECT);
  return dir;
}

function replayed(r: RunResult): number {
  return Number(/replayed (\d+) lines/.exec(r.stderr)?.[1] ?? 0);
}


/** Plain make in a copy of `dir` after `change`, from a clean tree: what kbx must equal. */
function plainAfter(dir: string, tag: string, change: (d: string) => void): string {
  const ref = join(tempDir(tag), 'proj');
  cpSync(dir, ref, { recursive: true });
  change(ref);
  ok(plainMake(ref));
  return ref;
}

const clean = (d: string) => ok(plainMake(d, ['clean']));

describe('replay before make', () => {
  test('after make clean, every line is replayed before make, which then runs none; the tree equals plain make', () => {
    const kbx = new Kbx('replay-clean', ON);
    const dir = project('replay-clean');
    try {
      ok(kbx.make(dir));
      clean(dir);
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 4, r.stderr);
      assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 0, r.stderr);
      assertSameTree(dir, plainAfter(dir, 'replay-clean-ref', clean));
      assert.ok((kbx.stats()['replayed-lines'] ?? 0) >= 4);
      // The build that replayed is replayed in turn.
      clean(dir);
      assert.equal(replayed(ok(kbx.make(dir))), 4);
    } finally {
      kbx.stop();
    }
  });

  test('CFLAGS changed in the Makefile after make clean: no object of the old flags is restored', () => {
    const kbx = new Kbx('replay-cflags', ON);
    const dir = project('replay-cflags');
    const edit = (d: string) => writeFileSync(join(d, 'Makefile'), PROJECT.Makefile!.replace('-O1', '-O0'));
    try {
      ok(kbx.make(dir));
      clean(dir);
      edit(dir);
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 0, r.stderr);
      assertSameTree(dir, plainAfter(dir, 'replay-cflags-ref', () => {}));
    } finally {
      kbx.stop();
    }
  });

  test('a variable changed in the environment: nothing is replayed', () => {
    const kbx = new Kbx('replay-env', ON);
    const dir = project('replay-env');
    try {
      ok(kbx.make(dir));
      clean(dir);
      const r = ok(kbx.make(dir, [], { EXTRA: '-DSCALE2' }));
      assert.equal(replayed(r), 0, r.stderr);
      assertSameTree(dir, plainAfter(dir, 'replay-env-ref', () => {}));
      clean(dir);
      // EXTRA enters the command: the plain reference uses it too.
      const ref = join(tempDir('replay-env-ref2'), 'proj');
      cpSync(dir, ref, { recursive: true });
      ok(plainMake(ref, [], { EXTRA: '-DSCALE2' }));
      ok(kbx.make(dir, [], { EXTRA: '-DSCALE2' }));
      assertSameTree(dir, ref);
    } finally {
      kbx.stop();
    }
  });

  test('a makefile edit that drops a target: its output is not restored', () => {
    const kbx = new Kbx('replay-drop', ON);
    const dir = project('replay-drop');
    const edit = (d: string) => writeFileSync(join(d, 'Makefile'), PROJECT.Makefile!.replace('all: prog tool', 'all: prog').replace(/tool: tool\.in\n\tcp tool\.in tool\n/, ''));
    try {
      ok(kbx.make(dir));
      clean(dir);
      edit(dir);
      ok(kbx.make(dir));
      assert.equal(existsSync(join(dir, 'tool')), false);
      assertSameTree(dir, plainAfter(dir, 'replay-drop-ref', () => {}));
    } finally {
      kbx.stop();
    }
  });

  test('a new source that $(wildcard) finds: the program is linked with it', () => {
    const kbx = new Kbx('replay-wildcard', ON);
    const dir = project('replay-wildcard');
    const add = (d: string) => {
      writeFileSync(join(d, 'extra.c'), 'int extra(void) { return 0; }\n');
    };
    try {
      ok(kbx.make(dir));
      clean(dir);
      add(dir);
      ok(kbx.make(dir));
      assertSameTree(dir, plainAfter(dir, 'replay-wildcard-ref', () => {}));
    } finally {
      kbx.stop();
    }
  });

  test('an output edited by hand is left as plain make leaves it', () => {
    const kbx = new Kbx('replay-hand', ON);
    const dir = project('replay-hand');
    try {
      ok(kbx.make(dir));
      const ref = join(tempDir('replay-hand-ref'), 'proj');
      cpSync(dir, ref, { recursive: true, preserveTimestamps: true });
      // gcc's probe of its own object is no input: only the object's content tells.
      for (const d of [dir, ref]) appendFileSync(join(d, 'main.o'), 'edited\n');
      ok(plainMake(ref));
      ok(kbx.make(dir));
      assert.ok(readFileSync(join(dir, 'main.o')).toString('latin1').endsWith('edited\n'));
      assertSameTree(dir, ref);
    } finally {
      kbx.stop();
    }
  });

  test('a touched header, content unchanged: outputs get fresh dates and make runs no line', () => {
    const kbx = new Kbx('replay-touch', ON);
    const dir = project('replay-touch');
    try {
      ok(kbx.make(dir));
      const now = Date.now() / 1000;
      utimesSync(join(dir, 'common.h'), now, now);
      const r = ok(kbx.make(dir));
      assert.match(r.stderr, /refreshed 3\b/); // main.o and util.o read the header; prog reads them
      assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 0, r.stderr);
      assert.match(ok(plainMake(dir)).stdout, /Nothing to be done/);
    } finally {
      kbx.stop();
    }
  });

  test('a $(wildcard) with wildcards in a directory component (kbuild: every defconfig under arch/x86/configs) holds, and a new match stops replay', () => {
    const kbx = new Kbx('replay-deepglob', ON);
    const dir = join(tempDir('replay-deepglob'), 'proj');
    writeTree(dir, {
      Makefile: 'BOARDS := $(wildcard cfg/*/*_defconfig)\nall: out\nout: in\n\tcp in out\nclean:\n\trm -f out\n',
      in: 'x\n',
      'cfg/a/one_defconfig': '',
    });
    try {
      ok(kbx.make(dir));
      clean(dir);
      assert.equal(replayed(ok(kbx.make(dir))), 1);
      clean(dir);
      writeTree(dir, { 'cfg/b/two_defconfig': '' });
      assert.equal(replayed(ok(kbx.make(dir))), 0);
    } finally {
      kbx.stop();
    }
  });

  test('a $(shell …) result that changed after make clean: the outputs of commands built from it are not restored', () => {
    const kbx = new Kbx('replay-shell', ON);
    const dir = join(tempDir('replay-shell'), 'proj');
    const files = {
      Makefile: 'VER := $(shell cat ver.txt)\nall: prog\nprog: main.c\n\tgcc -DVER=$(VER) -o $@ main.c\nclean:\n\trm -f prog\n',
      'main.c': 'int main(void) { return VER; }\n',
      'ver.txt': '1\n',
    };
    writeTree(dir, files);
    try {
      ok(kbx.make(dir));
      clean(dir);
      writeFileSync(join(dir, 'ver.txt'), '2\n');
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 0, r.stderr);
      assert.equal(spawnSync(join(dir, 'prog')).status, 2);
    } finally {
      kbx.stop();
    }
  });

  // kbuild's shape: make includes the .cmd file of each target that exists,
  // and the final link runs make again, so the shim passes it through.
  const KBUILD_LIKE: Record<string, string> = {
    Makefile: `targets := lib.o prog
-include $(foreach f,$(wildcard $(targets)),$(dir $(f)).$(notdir $(f)).cmd)
all: prog
lib.o: lib.c lib.h
\tgcc -c -o $@ $< && echo 'cmd_lib.o := gcc' > .lib.o.cmd
prog: lib.o
\t$(MAKE) --version >/dev/null && gcc -o $@ lib.o && echo 'cmd_prog := link' > .prog.cmd
clean:
\trm -f lib.o prog .lib.o.cmd .prog.cmd
`,
    'lib.h': '#define RET 0\n',
    'lib.c': '#include "lib.h"\nint main(void) { return RET; }\n',
  };

  test('a kbuild-like tree: a target no cached line wrote (the link) existing now but not when make looked does not stop replay', () => {
    const kbx = new Kbx('replay-kbuild', ON);
    const dir = join(tempDir('replay-kbuild'), 'proj');
    writeTree(dir, KBUILD_LIKE);
    try {
      ok(kbx.make(dir));
      clean(dir);
      assert.equal(replayed(ok(kbx.make(dir))), 1); // recorded with prog absent when make looked
      const now = Date.now() / 1000;
      utimesSync(join(dir, 'lib.h'), now, now);
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 1, r.stderr);
      assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 0, r.stderr);
      assert.match(ok(plainMake(dir)).stdout, /Nothing to be done/);
      const ref = join(tempDir('replay-kbuild-ref'), 'proj');
      writeTree(ref, KBUILD_LIKE);
      ok(plainMake(ref));
      assertSameTree(dir, ref);
    } finally {
      kbx.stop();
    }
  });

  // A line whose key holds its own output's existence (the shell tests it:
  // kbuild's `ar` lines): the run recorded last, made over the old output,
  // does not hold after make clean, and the one made in a clean tree does.
  const PROBES_OUTPUT: Record<string, string> = {
    Makefile: `out: in
\tif [ -e $@ ]; then echo again; fi; cp in $@
clean:
\trm -f out
`,
    in: 'data\n',
  };

  test('a line whose recorded run no longer holds is replayed from another stored run that does (its output probed, then make clean)', () => {
    const kbx = new Kbx('replay-otherset', ON);
    const dir = join(tempDir('replay-otherset'), 'proj');
    writeTree(dir, PROBES_OUTPUT);
    try {
      ok(kbx.make(dir)); // stored with out absent
      const now = Date.now() / 1000;
      utimesSync(join(dir, 'in'), now, now);
      const again = ok(kbx.make(dir)); // out present: a run of its own, recorded last
      assert.equal(summary(again.stderr).misses, 1, again.stderr);
      clean(dir);
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 1, r.stderr);
      assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 0, r.stderr);
      const ref = join(tempDir('replay-otherset-ref'), 'proj');
      writeTree(ref, PROBES_OUTPUT);
      ok(plainMake(ref));
      assertSameTree(dir, ref);
    } finally {
      kbx.stop();
    }
  });

  // kbuild's filechk: a generated header rewritten only when its text
  // changes, by a line that tests the header first; make clean keeps it.
  const FILECHK: Record<string, string> = {
    'scripts/Kbuild.include': '# kbuild\n',
    Makefile: `include scripts/Kbuild.include
targets := lib.o
-include $(foreach f,$(wildcard $(targets)),$(dir $(f)).$(notdir $(f)).cmd)
all: lib.o
gen.h: FORCE
\tcat ret.txt > .gen.h.tmp; if [ ! -r $@ ] || ! cmp -s $@ .gen.h.tmp; then mv .gen.h.tmp $@; else rm -f .gen.h.tmp; fi
lib.o: lib.c gen.h
\tgcc -c -o $@ $< && echo 'cmd_lib.o := gcc' > .lib.o.cmd
clean:
\trm -f lib.o .lib.o.cmd
FORCE:
`,
    'ret.txt': '#define RET 0\n',
    'lib.c': '#include "gen.h"\nint lib(void) { return RET; }\n',
  };

  test('kbuild: a generated header as the build left it (its line tests it, so no run holds) does not stop the lines that read it; one that make rewrites has them rebuilt', () => {
    const kbx = new Kbx('replay-filechk', ON);
    const dir = join(tempDir('replay-filechk'), 'proj');
    writeTree(dir, FILECHK);
    try {
      ok(kbx.make(dir)); // gen.h absent when its line ran
      clean(dir);
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 1, r.stderr); // lib.o; make reruns gen.h's line (FORCE), which keeps it
      assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 1, r.stderr);
      const ref = join(tempDir('replay-filechk-ref'), 'proj');
      writeTree(ref, FILECHK);
      ok(plainMake(ref));
      assertSameTree(dir, ref);
      // The header's text changes after make clean: replay may restore the
      // old lib.o, but make rewrites gen.h after it and rebuilds lib.o.
      clean(dir);
      const edit = (d: string) => writeFileSync(join(d, 'ret.txt'), '#define RET 7\n');
      edit(dir);
      ok(kbx.make(dir));
      assertSameTree(dir, plainAfter(dir, 'replay-filechk-ref2', (d) => (clean(d), edit(d))));
    } finally {
      kbx.stop();
    }
  });

  test('a line that deletes a file it made (kbuild removes each compile\'s .d file) is replayed after make clean', () => {
    const files = {
      Makefile: `lib.o: lib.c
\tgcc -MD -MF .lib.d -c -o $@ $< && rm -f .lib.d
clean:
\trm -f lib.o
`,
      'lib.c': 'int lib(void) { return 1; }\n',
    };
    const kbx = new Kbx('replay-deletes', ON);
    const dir = join(tempDir('replay-deletes'), 'proj');
    writeTree(dir, files);
    try {
      ok(kbx.make(dir));
      clean(dir);
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 1, r.stderr);
      assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 0, r.stderr);
      const ref = join(tempDir('replay-deletes-ref'), 'proj');
      writeTree(ref, files);
      ok(plainMake(ref));
      assertSameTree(dir, ref);
    } finally {
      kbx.stop();
    }
  });

  test('replay is off by default; --no-replay and replay = false leave every line to make', () => {
    const kbx = new Kbx('replay-off', ON);
    const dir = project('replay-off');
    try {
      // Neither the environment nor a config file says: the default holds.
      const byDefault = () => spawnSync(process.execPath, [kbxMain, 'make'], { cwd: dir, env: { ...kbx.env(), KBX_REPLAY: undefined }, encoding: 'utf8' });
      ok(kbx.make(dir));
      clean(dir);
      const first = byDefault();
      assert.equal(first.status, 0, first.stderr);
      assert.equal(replayed({ status: first.status ?? -1, stdout: first.stdout, stderr: first.stderr }), 0, first.stderr);
      assert.equal(summary(first.stderr).hits, 4, first.stderr);
      clean(dir);
      assert.equal(replayed(ok(kbx.make(dir))), 4, 'replay = true replays');
      clean(dir);
      const r = ok(kbx.make(dir, ['--no-replay']));
      assert.equal(replayed(r), 0);
      assert.equal(summary(r.stderr).hits, 4, r.stderr);
      clean(dir);
      const off = ok(kbx.make(dir, [], { KBX_REPLAY: 'false' }));
      assert.equal(replayed(off), 0);
      assert.equal(summary(off.stderr).hits, 4, off.stderr);
    } finally {
      kbx.stop();
    }
  });
  test('a no-op keeps the record the size of the build: a line make runs anyway (FORCE) is recorded once, not once more per build', () => {
    const kbx = new Kbx('replay-force', ON);
    const dir = join(tempDir('replay-force'), 'proj');
    writeTree(dir, {
      Makefile: 'all: out stamp\nout: in\n\tcp in out\nstamp: FORCE\n\techo x > stamp\nFORCE:\n.PHONY: FORCE\n',
      in: 'x\n',
    });
    try {
      ok(kbx.make(dir));
      const sizes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = ok(kbx.make(dir));
        assert.equal(summary(r.stderr).hits, 1, r.stderr); // make reran the FORCE line
        sizes.push(loadBuild(kbx.dir).lines.length);
      }
      assert.deepEqual(sizes, [2, 2, 2]);
    } finally {
      kbx.stop();
    }
  });

  test('a no-op in a tree as the last build left it stats the record\'s paths and hashes nothing, even in a new daemon; make clean after it replays every line', () => {
    const kbx = new Kbx('replay-noop', ON);
    const dir = project('replay-noop');
    try {
      ok(kbx.make(dir));
      kbx.stop(); // a new daemon knows no digest: a plan would hash every input and output
      for (let i = 0; i < 2; i++) {
        const r = ok(kbx.make(dir));
        assert.match(r.stderr, /replayed 4 lines: nothing changed \(\d+ paths checked, hashed 0\)/, r.stderr);
        assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 0, r.stderr);
      }
      assert.equal(kbx.stats()['replay-hashed'], 0);
      assert.equal(kbx.stats()['replay-unchanged'], 2);
      // The no-op records carried every line: make clean after them replays all four.
      clean(dir);
      const r = ok(kbx.make(dir));
      assert.equal(replayed(r), 4, r.stderr);
      assert.equal(summary(r.stderr).hits + summary(r.stderr).misses, 0, r.stderr);
      // Touched, not changed: the stats differ, so replay plans and dates.
      const now = Date.now() / 1000;
      utimesSync(join(dir, 'common.h'), now, now);
      const touched = ok(kbx.make(dir));
      assert.match(touched.stderr, /refreshed 3\b/, touched.stderr);
      assert.doesNotMatch(touched.stderr, /nothing changed/);
      assertSameTree(dir, plainAfter(dir, 'replay-noop-ref', clean));
    } finally {
      kbx.stop();
    }
  });
});

// A build's record is valued after kbx make returned; a tree the user changed
// by then (make clean, a makefile edited) must not be taken for the build's end.
test('changes after the build ended are seen by the record: fsNow and changedSince', () => {
  const dir = tempDir('replay-ended');
  writeTree(dir, { 'before.c': 'int a;\n', 'out/x.o': 'obj', Makefile: 'all:\n' });
  const ended = fsNow(dir);
  assert.ok(ended > 0n);
  const paths = [join(dir, 'before.c'), join(dir, 'out'), join(dir, 'Makefile')];
  assert.equal(changedSince(paths, ended), undefined, 'nothing changed since');
  // The coarse clock ticks every few ms: a change in the same tick is not seen (unchanged.ts).
  const tick = Date.now();
  while (Date.now() - tick < 15);
  writeFileSync(join(dir, 'Makefile'), 'all: x\n');
  assert.equal(changedSince(paths, ended), join(dir, 'Makefile'));
  rmSync(join(dir, 'out/x.o'));
  assert.equal(changedSince(paths.slice(0, 2), ended), join(dir, 'out'), 'a removal dates its directory');

  // The record of a build whose one line read before.c and wrote out/y.o, make having read the Makefile.
  writeFileSync(join(dir, 'out/y.o'), 'obj');
  const rec = { paths: [join(dir, 'out/y.o'), join(dir, 'before.c')], lines: [{ kind: 'miss', outputs: [0], inputs: [1] }] } as unknown as BuildRecord;
  const makeLog = Buffer.from(`r ${join(dir, 'Makefile')}\n`);
  const now = fsNow(dir);
  const kept = computeBasis(rec, makeLog, 'env', new FileState(), now);
  assert.equal(kept.unknown, undefined);
  assert.ok(kept.makeInputs && kept.stats);
  const tick2 = Date.now();
  while (Date.now() - tick2 < 15);
  writeFileSync(join(dir, 'Makefile'), 'all: y\n');
  const late = computeBasis(rec, makeLog, 'env', new FileState(), now);
  assert.match(late.unknown ?? '', /Makefile changed after the build ended/);
  assert.equal(late.makeInputs, undefined, 'no basis: the next build is not replayed');
});
