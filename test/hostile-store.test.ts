// A store is untrusted input (DESIGN.md §5). Each test builds the pipeline
// fixture cold, rewrites every stored entry in one hostile way, cleans and
// builds again: the build succeeds, equals plain make's, nothing outside the
// tree is written or deleted, and the refusals are counted.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Kbx, assertSameTree, copyFixture, plainMake, summary, tempDir, writeTree } from './support/kbx.js';
import { refusal } from '../src/daemon/restore.js';
import type { Entry } from '../src/store/store.js';

type Json = Record<string, unknown>;
type Output = { kind: string; path: string; digest?: string; mode?: number; size?: number; target?: string };

/** Every file under dir with what it is (content, link target or 'dir'): a canary must not change at all. */
function canaryState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push(`${p} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${p}/`);
        walk(p);
      } else out.push(`${p} ${st.mode.toString(8)} ${readFileSync(p).toString('hex')}`);
    }
  };
  walk(dir);
  return out;
}

function entryFiles(storeDir: string): string[] {
  const ac = join(storeDir, 'store', 'v2', 'ac');
  return readdirSync(ac).flatMap((fan) => readdirSync(join(ac, fan)).filter((n) => n.endsWith('.e')).map((n) => join(ac, fan, n)));
}

/** Rewrites every stored entry with `change`; returns how many it changed. */
function rewriteEntries(storeDir: string, change: (e: Json, outputs: Output[]) => boolean): number {
  let n = 0;
  for (const f of entryFiles(storeDir)) {
    const e = JSON.parse(readFileSync(f, 'utf8')) as Json;
    if (!change(e, e.outputs as Output[])) continue;
    writeFileSync(f, JSON.stringify(e));
    n++;
  }
  return n;
}

const firstFile = (outputs: Output[]) => outputs.find((o) => o.kind === 'file');

describe('hostile store entries', () => {
  let reference: string;
  before(() => {
    reference = copyFixture('pipeline', 'hostile-ref');
    assert.equal(plainMake(reference).status, 0);
  });

  interface Case {
    /** Counter the refusals are counted under; none for an entry that is restored safely. */
    counter?: string;
    change(e: Json, outputs: Output[], at: { proj: string; canary: string; store: string }): boolean;
    /** Set up just before the hostile build (after make clean). */
    arrange?(at: { proj: string; canary: string; store: string }): void;
  }

  function hostileBuild(name: string, c: Case): void {
    const kbx = new Kbx(`hostile-${name}`);
    const proj = copyFixture('pipeline', `hostile-${name}`);
    const canary = tempDir(`canary-${name}`);
    writeTree(canary, { victim: 'must survive\n', 'sub/victim2': 'also\n' });
    // Where `cas/<digest>` lands for the digest `../../x`: $KBX_DIR/x.
    writeFileSync(join(kbx.dir, 'x'), 'a canary next to the store\n');
    const at = { proj, canary, store: kbx.dir };
    try {
      const cold = kbx.make(proj);
      assert.equal(cold.status, 0, cold.stderr);
      kbx.stats(); // waits until every entry is written
      const changed = rewriteEntries(kbx.dir, (e, outputs) => c.change(e, outputs, at));
      assert.ok(changed >= 3, `only ${changed} entries rewritten`);
      const before = canaryState(canary);
      const storeCanary = readFileSync(join(kbx.dir, 'x'), 'utf8');
      const counted = c.counter ? (kbx.stats()[c.counter] ?? 0) : 0;

      assert.equal(plainMake(proj, ['clean']).status, 0);
      c.arrange?.(at);
      const r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(canaryState(canary), before, 'nothing outside the tree was written or deleted');
      assert.equal(readFileSync(join(kbx.dir, 'x'), 'utf8'), storeCanary, 'the file next to the store is untouched');
      if (c.counter) {
        assert.ok(summary(r.stderr).misses >= changed, `every rewritten entry is a miss:\n${r.stderr}`);
        assert.ok((kbx.stats()[c.counter] ?? 0) - counted >= changed, `refusals counted as ${c.counter}: ${JSON.stringify(kbx.stats())}`);
      }
      for (const extra of ['evil', 'planted.o']) rmSync(join(proj, extra), { force: true });
      assertSameTree(proj, reference);
      for (const f of readdirSync(proj)) {
        const st = lstatSync(join(proj, f));
        assert.ok(!st.isSymbolicLink(), `${f} is a symlink the plain build does not make`);
        assert.equal(st.mode & 0o7000, 0, `${f} has a setuid, setgid or sticky bit`);
      }
    } finally {
      kbx.stop();
    }
  }

  test('an output outside the tree is refused, nothing is written there', () => {
    hostileBuild('out-write', {
      counter: 'miss:hostile-entry',
      change: (_e, outputs, { canary }) => {
        const f = firstFile(outputs);
        if (!f) return false;
        outputs.push({ ...f, path: join(canary, 'written') }, { ...f, path: join(canary, 'victim') });
        return true;
      },
    });
  });

  test('a deletion outside the tree is refused, nothing is deleted there', () => {
    hostileBuild('out-delete', {
      counter: 'miss:hostile-entry',
      change: (e, _outputs, { canary }) => {
        (e.deleted as string[]).push(join(canary, 'victim'), join(canary, 'sub', 'victim2'), join(canary, 'sub'));
        return true;
      },
    });
  });

  test('an output under an in-tree symlink to a directory outside is refused', () => {
    hostileBuild('via-symlink', {
      counter: 'miss:hostile-entry',
      change: (_e, outputs, { proj }) => {
        const f = firstFile(outputs);
        if (!f) return false;
        outputs.push({ ...f, path: join(proj, 'evil', 'written') }, { ...f, path: join(proj, 'evil', 'victim') });
        return true;
      },
      arrange: ({ proj, canary }) => symlinkSync(canary, join(proj, 'evil')),
    });
  });

  test('a symlink output that leads outside the tree is refused', () => {
    hostileBuild('link-out', {
      counter: 'miss:hostile-entry',
      change: (_e, outputs, { proj, canary }) => {
        const f = firstFile(outputs);
        if (!f) return false;
        // The link, then a file written through it: neither may happen.
        outputs.push({ kind: 'link', path: join(proj, 'link-out'), target: canary }, { ...f, path: join(proj, 'link-out', 'victim') });
        return true;
      },
    });
  });

  test('an output at an in-tree symlink to a file outside replaces the link, never writes through it', () => {
    hostileBuild('at-symlink', {
      change: (_e, outputs, { proj }) => {
        const f = firstFile(outputs);
        if (!f) return false;
        outputs.push({ ...f, path: join(proj, 'planted.o') });
        return true;
      },
      arrange: ({ proj, canary }) => symlinkSync(join(canary, 'victim'), join(proj, 'planted.o')),
    });
  });

  // Paths below a build root are stored by role (`@make/x.o`, root-names.ts) and put under this build's roots.
  test('a stored root-relative path that climbs out with `..` is refused by the decoder, nothing written or deleted', () => {
    hostileBuild('rel-climb', {
      counter: 'corrupt-entry',
      change: (e, outputs, { canary }) => {
        const f = firstFile(outputs);
        const up = `@make/../../${basename(canary)}`;
        if (f) outputs.push({ ...f, path: `${up}/written` });
        else (e.deleted as string[]).push(`${up}/victim`);
        return true;
      },
    });
  });

  test('a stored root-relative deletion that climbs out with `..` is refused by the decoder', () => {
    hostileBuild('rel-climb-delete', {
      counter: 'corrupt-entry',
      change: (e, _outputs, { canary }) => {
        (e.deleted as string[]).push(`@make/../../${basename(canary)}/victim`, `@make/..`);
        return true;
      },
    });
  });

  test('a root-relative output under an in-tree symlink to a directory outside is refused', () => {
    hostileBuild('rel-via-symlink', {
      counter: 'miss:hostile-entry',
      change: (_e, outputs) => {
        const f = firstFile(outputs);
        if (!f) return false;
        outputs.push({ ...f, path: '@make/evil/written' }, { ...f, path: '@make/evil/victim' });
        return true;
      },
      arrange: ({ proj, canary }) => symlinkSync(canary, join(proj, 'evil')),
    });
  });

  test('a root this build does not have (no O=) is refused', () => {
    hostileBuild('rel-no-such-root', {
      counter: 'miss:hostile-entry',
      change: (_e, outputs) => {
        const f = firstFile(outputs);
        if (!f) return false;
        outputs.push({ ...f, path: '@out/written' });
        return true;
      },
    });
  });

  test('a blob digest that climbs out of the store is refused by the decoder, and nothing is unlinked', () => {
    hostileBuild('digest-climb', {
      counter: 'corrupt-entry',
      change: (e, outputs) => {
        const f = firstFile(outputs);
        if (f) f.digest = '../../x';
        else e.stdout = '../../x';
        return true;
      },
    });
  });

  test('a setuid mode is refused by the decoder', () => {
    hostileBuild('setuid', {
      counter: 'corrupt-entry',
      change: (_e, outputs) => {
        const f = firstFile(outputs);
        if (!f) return false;
        f.mode = 0o4755;
        return true;
      },
    });
  });
});

describe('recording what a line wrote through symlinks', () => {
  const outsideCases = [
    { name: 'a write under an in-tree symlink to a directory outside is not stored, and passes through next time', tag: 'rec-via-link', makefile: () => 'all:\n\techo hi > evil/out.txt\n', linkEvil: true },
    { name: 'a symlink made to a place outside the tree is not stored, and passes through next time', tag: 'rec-link-out', makefile: (canary: string) => `all:\n\tln -sfn ${canary} out-link\n`, linkEvil: false },
  ];
  for (const c of outsideCases) {
    test(c.name, () => {
      const kbx = new Kbx(c.tag);
      const proj = tempDir(c.tag);
      const canary = tempDir(`${c.tag}-canary`);
      writeTree(proj, { Makefile: c.makefile(canary) });
      if (c.linkEvil) symlinkSync(canary, join(proj, 'evil'));
      try {
        const r = kbx.make(proj);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(summary(r.stderr).stored, 0, r.stderr);
        assert.equal(kbx.stats()['uncacheable:writes-outside-tree'], 1);
        const again = kbx.make(proj);
        assert.equal(summary(again.stderr).passthrough, 1, again.stderr);
      } finally {
        kbx.stop();
      }
    });
  }

  test('a symlink inside the tree and a file written through it are stored where they are, and restored', () => {
    const kbx = new Kbx('rec-link-in');
    const proj = tempDir('rec-link-in');
    const ref = tempDir('rec-link-in-ref');
    const files = { Makefile: 'all:\n\tmkdir -p real && ln -sfn real ln && echo hi > ln/x.txt\nclean:\n\trm -rf real ln\n' };
    writeTree(proj, files);
    writeTree(ref, files);
    assert.equal(plainMake(ref).status, 0);
    try {
      assert.equal(kbx.make(proj).status, 0);
      kbx.stats();
      assert.equal(plainMake(proj, ['clean']).status, 0);
      const r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(summary(r.stderr).hits, 1, r.stderr);
      assert.equal(readlinkSync(join(proj, 'ln')), 'real');
      assert.ok(statSync(join(proj, 'real')).isDirectory() && !lstatSync(join(proj, 'real')).isSymbolicLink());
      assert.equal(readFileSync(join(proj, 'real', 'x.txt'), 'utf8'), 'hi\n');
      assert.ok(!existsSync(join(proj, 'real', 'real')));
    } finally {
      kbx.stop();
    }
  });
});

describe('refusal: the checks restore makes before it touches anything', () => {
  const D = 'a'.repeat(64);
  const file = (path: string): Output => ({ kind: 'file', path, digest: D, mode: 0o644, size: 1 });
  const entryOf = (outputs: Output[], deleted: string[] = []) =>
    ({ outputs, deleted, stdout: '', stderr: '', exit: 0, durationUs: 1, createdMs: 1, buildId: 'b' }) as Entry;

  test('paths resolved through the links on disk and the links the entry makes', () => {
    const top = tempDir('refusal');
    const root = join(top, 'tree');
    const out = join(top, 'outside');
    writeTree(root, { 'sub/kept': 'x', 'in/kept': 'y' });
    writeTree(out, { victim: 'z' });
    symlinkSync('sub', join(root, 'to-sub'));
    symlinkSync(out, join(root, 'to-out'));
    symlinkSync(join(out, 'missing'), join(root, 'dangling-out'));
    symlinkSync('loop', join(root, 'loop'));
    const ok: Array<[string, Entry]> = [
      ['a file in a subdirectory', entryOf([file(join(root, 'sub', 'a.o'))])],
      ['a file in a directory not made yet', entryOf([{ kind: 'dir', path: join(root, 'new') }, file(join(root, 'new', 'deeper', 'a.o'))])],
      ['a file through an in-tree link to an in-tree directory', entryOf([file(join(root, 'to-sub', 'a.o'))])],
      ['a link to the root itself', entryOf([{ kind: 'link', path: join(root, 'self'), target: '.' }])],
      ['a link through another link of the entry, inside', entryOf([{ kind: 'link', path: join(root, 'l1'), target: 'sub' }, { kind: 'link', path: join(root, 'l2'), target: 'l1/kept' }])],
      ['replacing the link to the outside itself', entryOf([file(join(root, 'to-out'))], [join(root, 'dangling-out')])],
    ];
    for (const [name, e] of ok) assert.equal(refusal(e, [root]), undefined, name);
    const bad: Array<[string, Entry]> = [
      ['a file outside', entryOf([file(join(out, 'a.o'))])],
      ['the root itself as a file', entryOf([file(root)])],
      ['a deletion outside', entryOf([], [join(out, 'victim')])],
      ['a file under an in-tree link to the outside', entryOf([file(join(root, 'to-out', 'victim'))])],
      ['a deletion under an in-tree link to the outside', entryOf([], [join(root, 'to-out', 'victim')])],
      ['a file under a dangling link to the outside', entryOf([file(join(root, 'dangling-out', 'a.o'))])],
      ['a dir under a dangling link to the outside', entryOf([{ kind: 'dir', path: join(root, 'dangling-out', 'd') }])],
      ['a file under a link loop', entryOf([file(join(root, 'loop', 'a.o'))])],
      ['a link to the outside', entryOf([{ kind: 'link', path: join(root, 'l'), target: out }])],
      ['a link to the root\'s parent', entryOf([{ kind: 'link', path: join(root, 'l'), target: '..' }])],
      ['a link through an in-tree link to the outside', entryOf([{ kind: 'link', path: join(root, 'l'), target: 'to-out/victim' }])],
      ['a link leading out through a link of the same entry', entryOf([{ kind: 'link', path: join(root, 'l1'), target: '.' }, { kind: 'link', path: join(root, 'l2'), target: 'l1/..' }])],
      ['a file through a link of the same entry', entryOf([{ kind: 'link', path: join(root, 'l1'), target: 'sub' }, file(join(root, 'l1', 'a.o'))])],
      ['a link of the entry that loops', entryOf([{ kind: 'link', path: join(root, 'l1'), target: 'l2' }, { kind: 'link', path: join(root, 'l2'), target: 'l1' }])],
    ];
    for (const [name, e] of bad) assert.match(refusal(e, [root]) ?? '(accepted)', /outside the build roots|cannot resolve/, name);
  });

  test('roots reached through a symlink are the same roots', () => {
    const top = tempDir('refusal-roots');
    writeTree(join(top, 'real'), { 'a.c': '' });
    symlinkSync(join(top, 'real'), join(top, 'alias'));
    assert.equal(refusal(entryOf([file(join(top, 'real', 'a.o'))]), [join(top, 'alias')]), undefined);
    assert.equal(refusal(entryOf([file(join(top, 'alias', 'a.o'))]), [join(top, 'real')]), undefined);
    assert.match(refusal(entryOf([file(join(top, 'other', 'a.o'))]), [join(top, 'alias')]) ?? '', /outside/);
  });
});
