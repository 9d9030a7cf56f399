// The store decoder (src/store/decode.ts) on the bytes kbx writes, and on
// hostile and truncated ones; and the local store's handling of names.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodePathSets } from '../src/store/record-codec.js';
import { DecodeError, decodeEntry, decodePathSets, isNormalPath } from '../src/store/decode.js';
import { LocalStore } from '../src/store/local/local-store.js';
import { tempDir } from './support/kbx.js';

const D1 = 'a'.repeat(64);
const D2 = '0123456789abcdef'.repeat(4);

// An entry file as putEntry writes it (JSON.stringify of an Entry).
const ENTRY_BYTES =
  '{"outputs":[{"kind":"dir","path":"/src/out","mode":488},{"kind":"file","path":"/src/out/a.o","digest":"' + D1 + '","mode":420,"size":1234},' +
  '{"kind":"link","path":"/src/out/a.lnk","target":"a.o"}],"deleted":["/src/out/a.tmp"],"stdout":"","stderr":"' + D2 + '",' +
  '"exit":0,"durationUs":52000,"createdMs":1765000000000,"buildId":"b-1"}';

const PATH_SETS_BYTES =
  '{"command":"gcc -c a.c -o out/a.o","cwd":"/src","sets":[{"strong":"' + D2 + '","entries":[' +
  '{"k":"c","p":"/src/./a.c","v":"' + D1 + '"},{"k":"e","p":"/usr/include/nope.h","v":"absent"},' +
  '{"k":"c","p":"/src/include","v":"dir:' + D2 + '"}]}]}';

const entry = () => JSON.parse(ENTRY_BYTES) as Record<string, unknown> & { outputs: Record<string, unknown>[] };
const sets = () => JSON.parse(PATH_SETS_BYTES) as Record<string, unknown> & { sets: { entries: Record<string, unknown>[] }[] };

function refused(f: () => unknown, where: RegExp): void {
  assert.throws(f, (err: unknown) => err instanceof DecodeError && where.test(err.where), `expected a refusal at ${where}`);
}

describe('entry decoder', () => {
  test('decodes the bytes kbx writes, field by field', () => {
    assert.deepEqual(decodeEntry(JSON.parse(ENTRY_BYTES)), {
      outputs: [
        { kind: 'dir', path: '/src/out', mode: 0o750 },
        { kind: 'file', path: '/src/out/a.o', digest: D1, mode: 0o644, size: 1234 },
        { kind: 'link', path: '/src/out/a.lnk', target: 'a.o' },
      ],
      deleted: ['/src/out/a.tmp'],
      stdout: '',
      stderr: D2,
      exit: 0,
      durationUs: 52000,
      createdMs: 1765000000000,
      buildId: 'b-1',
    });
  });

  test('keeps only the known fields', () => {
    const e = entry();
    e.extra = { evil: true };
    e.outputs[1]!.setuid = true;
    const d = decodeEntry(e) as unknown as Record<string, unknown> & { outputs: Record<string, unknown>[] };
    assert.equal('extra' in d, false);
    assert.equal('setuid' in d.outputs[1]!, false);
  });

  test('keeps outputs and deletions named below a build root by role', () => {
    const e = entry();
    e.outputs[1]!.path = '@out/fs/a.o';
    (e.deleted as string[])[0] = '@make';
    const d = decodeEntry(e);
    assert.equal(d.outputs[1]!.path, '@out/fs/a.o');
    assert.deepEqual(d.deleted, ['@make']);
  });

  const hostile: Array<[string, (e: ReturnType<typeof entry>) => void, RegExp]> = [
    ['a root-relative output that climbs out with ..', (e) => (e.outputs[1]!.path = '@out/../../etc/passwd'), /path/],
    ['a root-relative output with .', (e) => (e.outputs[1]!.path = '@out/./a.o'), /path/],
    ['a root-relative output with //', (e) => (e.outputs[1]!.path = '@out//a.o'), /path/],
    ['an unknown role', (e) => (e.outputs[1]!.path = '@home/a.o'), /path/],
    ['a root-relative deletion of the root\'s parent', (e) => ((e.deleted as string[])[0] = '@make/..'), /^deleted\[0\]$/],
    ['a blob digest that climbs out of the store', (e) => (e.outputs[1]!.digest = '../../x'), /^outputs\[1\]\.digest$/],
    ['an upper-case digest', (e) => (e.outputs[1]!.digest = D1.toUpperCase()), /digest/],
    ['a digest one digit short', (e) => (e.outputs[1]!.digest = D1.slice(1)), /digest/],
    ['an empty file digest', (e) => (e.outputs[1]!.digest = ''), /digest/],
    ['a stdout digest that is a path', (e) => (e.stdout = '../../x'), /^stdout$/],
    ['a setuid mode', (e) => (e.outputs[1]!.mode = 0o4755), /mode/],
    ['a sticky mode', (e) => (e.outputs[1]!.mode = 0o1777), /mode/],
    ['a directory without its mode (stored before kbx kept it)', (e) => delete e.outputs[0]!.mode, /outputs\[0\]\.mode/],
    ['a setgid directory', (e) => (e.outputs[0]!.mode = 0o2755), /outputs\[0\]\.mode/],
    ['a negative size', (e) => (e.outputs[1]!.size = -1), /size/],
    ['a fractional size', (e) => (e.outputs[1]!.size = 1.5), /size/],
    ['exit 256', (e) => (e.exit = 256), /^exit$/],
    ['exit -1', (e) => (e.exit = -1), /^exit$/],
    ['exit as a string', (e) => (e.exit = '0'), /^exit$/],
    ['a relative output', (e) => (e.outputs[1]!.path = 'out/a.o'), /path/],
    ['an output with ..', (e) => (e.outputs[1]!.path = '/src/out/../../etc/passwd'), /path/],
    ['an output with .', (e) => (e.outputs[1]!.path = '/src/./a.o'), /path/],
    ['an output with //', (e) => (e.outputs[1]!.path = '/src//a.o'), /path/],
    ['an output with a trailing slash', (e) => (e.outputs[0]!.path = '/src/out/'), /path/],
    ['an output with a NUL', (e) => (e.outputs[1]!.path = '/src/a.o\0/etc/passwd'), /path/],
    ['a deletion with ..', (e) => ((e.deleted as string[])[0] = '/src/../etc/passwd'), /^deleted\[0\]$/],
    ['a deletion that is not a string', (e) => ((e.deleted as unknown[])[0] = { path: '/etc' }), /^deleted\[0\]$/],
    ['an empty link target', (e) => (e.outputs[2]!.target = ''), /target/],
    ['a link target with a NUL', (e) => (e.outputs[2]!.target = 'a\0b'), /target/],
    ['an unknown output kind', (e) => (e.outputs[1]!.kind = 'fifo'), /kind/],
    ['outputs that are not an array', (e) => (e.outputs = { 0: e.outputs[0] } as never), /^outputs$/],
    ['a missing deleted list', (e) => delete e.deleted, /^deleted$/],
    ['a null output', (e) => ((e.outputs as unknown[])[1] = null), /^outputs\[1\]$/],
  ];
  for (const [name, change, where] of hostile) {
    test(`refuses ${name}`, () => {
      const e = entry();
      change(e);
      refused(() => decodeEntry(e), where);
    });
  }

  test('refuses what is not an entry at all', () => {
    for (const x of [null, 0, 'entry', [], true]) refused(() => decodeEntry(x), /^entry$/);
  });
});

describe('path set decoder', () => {
  test('decodes the bytes kbx writes; input paths keep their spelling', () => {
    const d = decodePathSets(JSON.parse(PATH_SETS_BYTES));
    assert.equal(d.command, 'gcc -c a.c -o out/a.o');
    assert.equal(d.sets[0]!.strong, D2);
    assert.deepEqual(d.sets[0]!.entries[0], { k: 'c', p: '/src/./a.c', v: D1 });
    assert.equal(d.uncacheable, undefined);
  });

  test("keeps a __DATE__ compile's date (named by its zone) and a __TIMESTAMP__ source's mtime", () => {
    const r = sets();
    r.sets[0]!.entries.push({ k: 'date', p: 'Europe/Berlin', v: '2026-12-06' }, { k: 'mtime', p: '/src/a.c', v: '1765000000' });
    const d = decodePathSets(JSON.parse(JSON.stringify(r)));
    assert.deepEqual(d.sets[0]!.entries.slice(-2), [
      { k: 'date', p: 'Europe/Berlin', v: '2026-12-06' },
      { k: 'mtime', p: '/src/a.c', v: '1765000000' },
    ]);
  });

  test("keeps inputs named below a build root by role, as spelled, and the roots a line's outputs hold", () => {
    const r = sets();
    r.sets[0]!.entries.push({ k: 'c', p: '@make/./inc/a.h', v: D1 }, { k: 'e', p: '@out', v: 'dir' }, { k: 'root', p: '@make', v: '/src' });
    const d = decodePathSets(JSON.parse(JSON.stringify(r)));
    assert.deepEqual(d.sets[0]!.entries.slice(-3), r.sets[0]!.entries.slice(-3));
  });

  const hostile: Array<[string, (r: ReturnType<typeof sets>) => void, RegExp]> = [
    ['an input below an unknown role', (r) => (r.sets[0]!.entries[0]!.p = '@home/a.c'), /\.p$/],
    ['a root entry that names a path, not a role', (r) => (r.sets[0]!.entries[0]!.k = 'root', r.sets[0]!.entries[0]!.p = '@make/a'), /\.p$/],
    ['a strong fingerprint that is a path', (r) => ((r.sets[0] as Record<string, unknown>).strong = '../../x'), /strong/],
    ['an input kind other than c or e', (r) => (r.sets[0]!.entries[0]!.k = 'x'), /\.k$/],
    ['a relative input path', (r) => (r.sets[0]!.entries[0]!.p = 'a.c'), /\.p$/],
    ['an mtime input with a relative path', (r) => (r.sets[0]!.entries[0]!.k = 'mtime', r.sets[0]!.entries[0]!.p = 'a.c'), /\.p$/],
    ['an input path with a NUL', (r) => (r.sets[0]!.entries[0]!.p = '/src/a\0'), /\.p$/],
    ['a huge value', (r) => (r.sets[0]!.entries[0]!.v = 'x'.repeat(10_000)), /\.v$/],
    ['a value that is not a string', (r) => (r.sets[0]!.entries[0]!.v = 7), /\.v$/],
    ['entries that are not an array', (r) => ((r.sets[0] as Record<string, unknown>).entries = 'all'), /entries$/],
    ['a relative cwd', (r) => (r.cwd = 'src'), /^cwd$/],
    ['negative rules', (r) => (r.rules = -1), /^rules$/],
    ['a command that is not a string', (r) => (r.command = ['rm', '-rf']), /^command$/],
  ];
  for (const [name, change, where] of hostile) {
    test(`refuses ${name}`, () => {
      const r = sets();
      change(r);
      refused(() => decodePathSets(r), where);
    });
  }
});

test('normalised paths', () => {
  for (const p of ['/', '/a', '/a/b.c', '/a/.b', '/a/..b', '/a/b..']) assert.ok(isNormalPath(p), p);
  for (const p of ['', 'a', '/a/', '//a', '/a/./b', '/a/../b', '/a/.', '/a/..', '/a\0']) assert.ok(!isNormalPath(p), JSON.stringify(p));
});

describe('local store', () => {
  test('every truncation of a stored entry or path set is a miss, removed and reported, never a throw', () => {
    const corrupt: string[] = [];
    const store = new LocalStore(tempDir('decode-trunc'), 2 ** 30, 1, { onCorrupt: (p) => corrupt.push(p) });
    for (const [bytes, suffix, get] of [
      [ENTRY_BYTES, '.e', (n: string) => store.getEntry(n)],
      [encodePathSets(decodePathSets(sets())), '.pz', (n: string) => store.getPathSets(n)],
    ] as const) {
      const file = join(store.root, 'ac', D1.slice(0, 2), D1 + suffix);
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, bytes);
      assert.ok(get(D1), 'the whole record decodes');
      for (let n = 0; n < bytes.length; n++) {
        writeFileSync(file, bytes.slice(0, n));
        corrupt.length = 0;
        assert.equal(get(D1), undefined, `${suffix} cut at ${n}`);
        assert.deepEqual(corrupt, [file]);
        assert.equal(existsSync(file), false);
      }
    }
  });

  test('path sets are kept with each path and value once (format 2), a small part of their JSON; a record of format 1 is never read', () => {
    const corrupt: string[] = [];
    const store = new LocalStore(tempDir('decode-pz'), 2 ** 30, 1, { onCorrupt: (p) => corrupt.push(p) });
    // 16 runs of a compile (path_sets_per_command): hundreds of headers and probes, one header edited each time.
    const digest = (s: string) => createHash('sha256').update(s).digest('hex');
    const entries = (run: number) =>
      Array.from({ length: 400 }, (_, i) => ({
        k: i % 3 ? 'c' : 'e',
        p: i % 3 ? `@make/include/linux/header-${i}.h` : `/usr/lib/gcc/x86_64-linux-gnu/12/include/probe-${i}.h`,
        v: i % 3 ? digest(i === 1 ? `${i}.${run}` : String(i)) : 'absent',
      }));
    const rec = { command: 'gcc -c a.c -o a.o', cwd: '/src', sets: Array.from({ length: 16 }, (_, run) => ({ strong: digest(`set ${run}`), entries: entries(run) })) };
    store.putPathSets(D1, rec as never);
    const file = join(store.root, 'ac', D1.slice(0, 2), `${D1}.pz`);
    const json = JSON.stringify(rec).length;
    // gzip alone leaves a fifth: each set is longer than its window.
    assert.ok(gzipSync(JSON.stringify(rec)).length * 10 > json);
    assert.ok(statSync(file).size * 40 < json, `${statSync(file).size} bytes for ${json} of JSON`);
    assert.deepEqual(store.getPathSets(D1), rec);
    // Format 1: plain JSON under `.p`, never looked at (eviction removes it in time).
    const old = join(store.root, 'ac', D2.slice(0, 2), `${D2}.p`);
    mkdirSync(join(old, '..'), { recursive: true });
    writeFileSync(old, PATH_SETS_BYTES);
    assert.equal(store.getPathSets(D2), undefined);
    assert.ok(existsSync(old));
    // Format 1's JSON, plain or gzip'd, where format 2 is expected: refused, not misread.
    for (const bytes of [PATH_SETS_BYTES, gzipSync(PATH_SETS_BYTES)]) {
      writeFileSync(file, bytes);
      corrupt.length = 0;
      assert.equal(store.getPathSets(D1), undefined);
      assert.deepEqual(corrupt, [file]);
    }
  });

  test('a name that is not 64 hex digits never becomes a path: nothing read, written or unlinked', async () => {
    const dir = tempDir('decode-names');
    const store = new LocalStore(dir, 2 ** 30, 1, { onCorrupt: (p) => assert.fail(`reported ${p}`) });
    // Where `cas/<name>` would land for these names.
    writeFileSync(join(dir, 'x'), 'canary');
    writeFileSync(join(dir, 'store', 'x.e'), '{}');
    for (const name of ['../../x', '../x', 'A'.repeat(64), '']) {
      assert.equal(store.getBlob(name), undefined);
      assert.equal(store.getEntry(name), undefined);
      assert.equal(store.getPathSets(name), undefined);
      await store.putBlob(name, Buffer.from('evil'));
      store.putEntry(name, decodeEntry(JSON.parse(ENTRY_BYTES)));
    }
    assert.equal(readFileSync(join(dir, 'x'), 'utf8'), 'canary');
    assert.equal(readFileSync(join(dir, 'store', 'x.e'), 'utf8'), '{}');
    assert.equal(existsSync(join(dir, 'x.e')), false);
  });

  test('store directories are private to the user', async () => {
    const dir = tempDir('decode-mode');
    mkdirSync(join(dir, 'store'), { mode: 0o755 });
    const store = new LocalStore(dir, 2 ** 30, 1);
    await store.putBlob(D1, Buffer.from('x'));
    for (const d of [join(dir, 'store'), store.root, join(store.root, 'cas'), join(store.root, 'cas', D1.slice(0, 2))]) {
      assert.equal(statSync(d).mode & 0o777, 0o700, d);
    }
  });
});
