// Build records and the questions asked of them: every line make ran is kept
// with its kind, times and files; `kbx steps` lists the lines that touched a
// file; `kbx explain` names what changed. Real make and gcc on fixtures.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listBuilds, loadBuild } from '../src/builds/archive.js';
import { formatWordDiff, wordDiff } from '../src/builds/query.js';
import { Kbx, copyFixture, kbxMain, plainMake, summary, tempDir, writeTree } from './support/kbx.js';

const copyPipeline = (tag: string) => copyFixture('pipeline', tag);
/** The daemon writes a record just after its build: `kbx builds` waits for it. */
const synced = (k: Kbx) => assert.equal(k.run(['builds']).status, 0);

/** The lines of `kbx explain` output after the header line. */
function explainBody(out: string): string {
  return out.split('\n').slice(1).join('\n');
}

describe('build records', () => {
  const kbx = new Kbx('records');
  after(() => kbx.stop());

  test('every line is recorded with its kind, times, exit status and files', () => {
    const proj = join(tempDir('records'), 'proj');
    writeTree(proj, {
      Makefile:
        'all: sub/out.txt hello.o stamp\n\t@echo all done\n' +
        'sub/out.txt:\n\t$(MAKE) -C sub\n' +
        'hello.o: hello.c\n\tgcc -c -o $@ $<\n' +
        'stamp:\n\tdate > $@\n' +
        'clean:\n\trm -f hello.o stamp sub/out.txt\n',
      'sub/Makefile': 'out.txt:\n\tprintf "sub\\n" > $@\n',
      'hello.c': 'int hello(void) { return 1; }\n',
    });
    for (let i = 0; i < 2; i++) {
      assert.equal(plainMake(proj, ['clean']).status, 0);
      const r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
    }
    synced(kbx);
    const rec = loadBuild(kbx.dir);
    const s = summary(kbx.make(proj, ['-n']).stderr); // a dry run is recorded too, and is now the newest
    assert.equal(s.lines, 0);
    synced(kbx);
    const second = loadBuild(kbx.dir, '2');
    assert.equal(second.id, rec.id);

    const byCmd = (re: RegExp) => {
      const l = rec.lines.find((x) => re.test(x.command));
      assert.ok(l, `no recorded line matches ${re}: ${rec.lines.map((x) => x.command).join(' | ')}`);
      return l;
    };
    assert.equal(byCmd(/^echo all done$/).kind, 'trivial');
    assert.equal(byCmd(/make -C sub/).kind, 'recursive');
    const compile = byCmd(/^gcc -c/);
    assert.equal(compile.kind, 'hit');
    assert.deepEqual(compile.outputs.map((i) => rec.paths[i]), [join(proj, 'hello.o')]);
    assert.ok(compile.inputs.map((i) => rec.paths[i]).includes(join(proj, 'hello.c')));
    const date = byCmd(/^date/);
    assert.equal(date.kind, 'pass');
    assert.match(date.reason ?? '', /runs-date/);
    assert.equal(byCmd(/printf/).kind, 'hit');
    for (const l of rec.lines) {
      assert.equal(l.exit, 0, l.command);
      assert.ok(l.startUs >= rec.startMs * 1000 - 1000 && l.endUs >= l.startUs, `${l.command}: ${l.startUs}..${l.endUs}`);
      assert.ok(l.endUs <= rec.endMs * 1000 + 1000, l.command);
    }
    // The recursive make's span holds the line of the sub-make.
    const sub = byCmd(/make -C sub/);
    const inner = byCmd(/printf/);
    assert.ok(sub.startUs <= inner.startUs && inner.endUs <= sub.endUs);
    assert.equal(rec.counts.trivial + rec.counts.recursive + rec.counts.pass + rec.counts.hit + rec.counts.miss, rec.lines.length);
    assert.equal(rec.curve.length, 101);
    assert.ok(rec.curve.every((t, i) => i === 0 || t >= rec.curve[i - 1]!));
  });

  test('only the newest builds_kept builds are kept', () => {
    const k = new Kbx('kept', { KBX_BUILDS_KEPT: '2' });
    try {
      const proj = copyPipeline('kept');
      for (let i = 0; i < 3; i++) assert.equal(k.make(proj).status, 0);
      synced(k);
      assert.equal(listBuilds(k.dir).length, 2);
      const r = k.run(['builds']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, 2, r.stdout);

      // `kbx builds | head -1`: the reader closes the pipe before node has even
      // started (its stdin closed at once), so kbx's first write meets EPIPE.
      const script = `set -o pipefail; '${process.execPath}' '${kbxMain}' builds | (exec 0<&-; sleep 1)`;
      const closed = spawnSync('bash', ['-c', script], { env: k.env(), encoding: 'utf8' });
      assert.equal(closed.status, 0, closed.stderr);
      assert.equal(closed.stderr, '');
    } finally {
      k.stop();
    }
  });
});

describe('kbx steps', () => {
  const kbx = new Kbx('steps');
  after(() => kbx.stop());

  test('lists every line that read or wrote the file, in order, with the whole command', () => {
    const proj = copyPipeline('steps');
    assert.equal(kbx.make(proj).status, 0);
    const r = kbx.run(['steps', 'main.o'], { cwd: proj });
    assert.equal(r.status, 0, r.stderr);
    const steps = r.stdout.split('\n').filter((l) => /^#\d+ /.test(l));
    assert.equal(steps.length, 3, r.stdout);
    assert.match(steps[0]!, /miss .* wrote it/);
    assert.match(steps[1]!, /read and wrote it/);
    assert.match(steps[2]!, /read it/);
    assert.match(r.stdout, /objcopy --add-section \.note\.kbx=note\.txt main\.raw\.o main\.o/);
    assert.match(r.stdout, /printf 'PATCHED-IN' \| dd of=main\.o bs=1/);
    assert.match(r.stdout, /gcc -o prog main\.o util\.o/);
  });

  test('a file no line touched is a clear error', () => {
    const proj = copyPipeline('steps-none');
    assert.equal(kbx.make(proj).status, 0);
    const r = kbx.run(['steps', 'no-such-file.o'], { cwd: proj });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /KBX_FILE_NOT_IN_BUILD.*no-such-file\.o/);
    const b = kbx.run(['steps', 'main.o', '--build', 'zzz'], { cwd: proj });
    assert.equal(b.status, 2);
    assert.match(b.stderr, /KBX_BAD_BUILD/);
  });
});

describe('kbx explain', () => {
  const kbx = new Kbx('explain');
  after(() => kbx.stop());

  test('after a header edit it names that header and nothing else', () => {
    const proj = copyPipeline('explain-header');
    assert.equal(kbx.make(proj).status, 0);
    plainMake(proj, ['clean']);
    writeFileSync(join(proj, 'include', 'config.h'), '#define GREETING "bonjour"\n');
    assert.equal(kbx.make(proj).status, 0);
    const r = kbx.run(['explain', 'main.s'], { cwd: proj });
    assert.equal(r.status, 0, r.stderr);
    const changed = explainBody(r.stdout).split('\n').filter((l) => /: (content changed|appeared|disappeared)/.test(l));
    assert.equal(changed.length, 1, r.stdout);
    assert.match(changed[0]!, /^\s+include\/config\.h: content changed \(was [0-9a-f]{12}, now [0-9a-f]{12}\)$/);
    // Further down the pipeline the cause is traced back to the same header.
    const o = kbx.run(['explain', 'main.o'], { cwd: proj });
    assert.equal(o.status, 0, o.stderr);
    const roots = o.stdout.split('\n').filter((l) => /root cause:/.test(l));
    assert.ok(roots.length >= 1, o.stdout);
    for (const l of roots) assert.match(l, /root cause: include\/config\.h$/);
  });

  test('after a flag change it shows the flag as a word diff', () => {
    const proj = copyPipeline('explain-flag');
    assert.equal(kbx.make(proj).status, 0);
    plainMake(proj, ['clean']);
    const mk = join(proj, 'Makefile');
    writeFileSync(mk, readFileSync(mk, 'utf8').replace('CFLAGS ?= -O2', 'CFLAGS ?= -O1'));
    assert.equal(kbx.make(proj).status, 0);
    const r = kbx.run(['explain', 'util.s'], { cwd: proj });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /the command changed since build /);
    assert.match(r.stdout, /command: gcc \[--O2-\] \{\+-O1\+\} -Iinclude/);
    assert.doesNotMatch(r.stdout, /environment:/);
  });

  test('after an environment change it shows the changed words of the value, not the whole value', () => {
    const proj = copyPipeline('explain-env');
    const long = (mid: string) => Array.from({ length: 200 }, (_, i) => (i === 100 ? mid : `/opt/tool${i}/bin`)).join(':');
    assert.equal(kbx.make(proj, [], { TOOL_SEARCH_PATH: long('/opt/old/bin') }).status, 0);
    plainMake(proj, ['clean']);
    assert.equal(kbx.make(proj, [], { TOOL_SEARCH_PATH: long('/opt/new/bin') }).status, 0);
    const r = kbx.run(['explain', 'util.s'], { cwd: proj });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /environment: TOOL_SEARCH_PATH changed: … \/opt\/tool97\/bin \/opt\/tool98\/bin \/opt\/tool99\/bin \[-\/opt\/old\/bin-\] \{\+\/opt\/new\/bin\+\} \/opt\/tool101\/bin/);
    assert.doesNotMatch(r.stdout, /tool150/, 'the unchanged rest of the value is left out');
  });

  test('after a shadowing header appears it names the new path', () => {
    const proj = copyPipeline('explain-shadow');
    assert.equal(kbx.make(proj).status, 0);
    plainMake(proj, ['clean']);
    writeFileSync(join(proj, 'include', 'util.h'), '#ifndef UTIL_H\n#define UTIL_H\nint twice(int x); /* shadow */\n#endif\n');
    assert.equal(kbx.make(proj).status, 0);
    const r = kbx.run(['explain', 'util.s'], { cwd: proj });
    assert.equal(r.status, 0, r.stderr);
    const changed = explainBody(r.stdout).split('\n').filter((l) => /: (content changed|appeared|disappeared)/.test(l));
    assert.equal(changed.length, 1, r.stdout);
    assert.match(changed[0]!, /^\s+include\/util\.h: appeared/);
  });

  test('on a hit it says which build stored the run', () => {
    const proj = copyPipeline('explain-hit');
    assert.equal(kbx.make(proj, ['CFLAGS=-O2 -DHIT_TEST']).status, 0);
    synced(kbx);
    const first = loadBuild(kbx.dir).id;
    plainMake(proj, ['clean']);
    assert.equal(kbx.make(proj, ['CFLAGS=-O2 -DHIT_TEST']).status, 0);
    const r = kbx.run(['explain', 'main.s'], { cwd: proj });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`restored from the cache: stored by build ${first}`));
  });
});

describe('word diff', () => {
  test('marks removed and added words, git style, and shortens unchanged runs', () => {
    const d = wordDiff('gcc -O2 -Wall -c a.c -o a.o -I x -I y -I z', 'gcc -O1 -Wall -c a.c -o a.o -I x -I y -I z -DX');
    assert.equal(formatWordDiff(d), 'gcc [--O2-] {+-O1+} -Wall -c a.c … y -I z {+-DX+}');
  });
});

describe('kbx report and kbx trace without a build', () => {
  test('take the newest build of the tree they run in, not the newest on the machine', () => {
    const k = new Kbx('two-trees');
    try {
      const a = copyPipeline('tree-a');
      const b = copyPipeline('tree-b');
      assert.equal(k.make(a).status, 0);
      assert.equal(k.make(b).status, 0);
      synced(k);
      const [newest, older] = listBuilds(k.dir);
      assert.equal(newest!.dir, b);
      for (const cmd of ['report', 'trace']) {
        const r = k.run([cmd, '-o', '-'], { cwd: a });
        assert.equal(r.status, 0, r.stderr);
        assert.ok(r.stdout.includes(older!.id) && !r.stdout.includes(newest!.id), `${cmd} in tree a showed another build`);
      }
      const elsewhere = k.run(['trace', '-o', '-'], { cwd: tempDir('no-tree') });
      assert.equal(elsewhere.status, 0, elsewhere.stderr);
      assert.match(elsewhere.stderr, new RegExp(`no build was recorded in .*; using the newest, ${newest!.id}`));
    } finally {
      k.stop();
    }
  });
});
