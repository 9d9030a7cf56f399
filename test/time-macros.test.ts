// Compiles whose output depends on the time: __DATE__, __TIME__ and
// __TIMESTAMP__, with real make and gcc, and the day change with the line
// cache's clock moved (DESIGN.md §5).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { LineCache } from '../src/daemon/line-cache.js';
import { LocalStore } from '../src/store/local/local-store.js';
import { scanTimeMacros, FOUND_DATE, FOUND_TIME, FOUND_TIMESTAMP } from '../src/observe/time-macros.js';
import { Kbx, plainMake, summary, tempDir, writeTree } from './support/kbx.js';

const MAKEFILE = 'x.o: x.c\n\tgcc -c x.c -o x.o\n';

/** A project compiling `source` as x.c, with x.c's mtime set to `mtimeSec`. */
function project(tag: string, source: string, mtimeSec: number, files: Record<string, string> = {}): string {
  const dir = join(tempDir(tag), 'proj');
  writeTree(dir, { Makefile: MAKEFILE, 'x.c': source, ...files });
  utimesSync(join(dir, 'x.c'), mtimeSec, mtimeSec);
  return dir;
}

/** x.o as plain make builds it from the same source with the same mtime. */
function plainObject(source: string, mtimeSec: number, env: Record<string, string> = {}): Buffer {
  const ref = project('time-ref', source, mtimeSec);
  const r = plainMake(ref, [], env);
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(join(ref, 'x.o'));
}

function build(kbx: Kbx, dir: string, env: Record<string, string> = {}) {
  rmSync(join(dir, 'x.o'), { force: true });
  const r = kbx.make(dir, [], env);
  assert.equal(r.status, 0, r.stderr);
  return { ...summary(r.stderr), object: readFileSync(join(dir, 'x.o')) };
}

const Y2001 = 978_350_400;
const Y2002 = 1_009_886_400;

describe('time macros in a real compile', () => {
  const kbx = new Kbx('time-macros');
  after(() => kbx.stop());

  test("__TIMESTAMP__: the source's mtime is in the key; the same mtime hits, a touch misses and equals plain make", () => {
    const src = 'const char *stamp = __TIMESTAMP__;\n';
    const dir = project('timestamp', src, Y2001);
    assert.deepEqual([build(kbx, dir).stored, build(kbx, dir).hits], [1, 1]);
    utimesSync(join(dir, 'x.c'), Y2002, Y2002); // same content, another mtime
    const b = build(kbx, dir);
    assert.equal(b.misses, 1);
    assert.ok(b.object.equals(plainObject(src, Y2002)), 'x.o differs from the plain build');
  });

  test('__TIMESTAMP__ in a macro from a header names the mtime of the file that expands it', () => {
    const src = '#include "ts.h"\nconst char *stamp = TS;\n';
    const dir = project('timestamp-header', src, Y2001, { 'ts.h': '#define TS __TIMESTAMP__\n' });
    assert.equal(build(kbx, dir).stored, 1);
    utimesSync(join(dir, 'x.c'), Y2002, Y2002);
    const b = build(kbx, dir);
    assert.equal(b.misses, 1);
    const ref = project('time-ref', src, Y2002, { 'ts.h': '#define TS __TIMESTAMP__\n' });
    assert.equal(plainMake(ref).status, 0);
    assert.ok(b.object.equals(readFileSync(join(ref, 'x.o'))), 'x.o differs from the plain build');
  });

  test('__TIME__: never stored (reason time-macros), so a warm build runs it again', () => {
    const dir = project('time', 'const char *t = __TIME__;\n', Y2001);
    const before = kbx.stats()['not-stored:time-macros'] ?? 0;
    const first = build(kbx, dir);
    assert.deepEqual([first.misses, first.stored], [1, 0]);
    const second = build(kbx, dir);
    assert.deepEqual([second.hits, second.misses, second.stored], [0, 1, 0]);
    assert.equal(kbx.stats()['not-stored:time-macros'], before + 2);
  });

  test('__DATE__: stored, and the same day hits with the object plain make gives', () => {
    const src = 'const char *d = __DATE__;\n';
    const dir = project('date', src, Y2001);
    assert.equal(build(kbx, dir).stored, 1);
    const b = build(kbx, dir);
    assert.equal(b.hits, 1);
    assert.ok(b.object.equals(plainObject(src, Y2001)), 'x.o differs from the plain build');
    // Read back from the store by a new daemon, the date input still decodes.
    kbx.stop();
    assert.equal(build(kbx, dir).hits, 1);
    assert.equal(kbx.stats()['corrupt-entry'] ?? 0, 0);
  });

  test('SOURCE_DATE_EPOCH fixes __DATE__ and __TIME__ but not __TIMESTAMP__: stored, hits, and a touch misses', () => {
    const env = { SOURCE_DATE_EPOCH: '1000000000' };
    const src = 'const char *a = __DATE__, *b = __TIME__, *c = __TIMESTAMP__;\n';
    const dir = project('epoch', src, Y2001);
    assert.equal(build(kbx, dir, env).stored, 1);
    const hit = build(kbx, dir, env);
    assert.equal(hit.hits, 1);
    assert.ok(hit.object.equals(plainObject(src, Y2001, env)), 'x.o differs from the plain build');
    utimesSync(join(dir, 'x.c'), Y2002, Y2002);
    const b = build(kbx, dir, env);
    assert.equal(b.misses, 1);
    assert.ok(b.object.equals(plainObject(src, Y2002, env)), 'x.o differs from the plain build');
  });
});

describe('__DATE__ and the day', () => {
  const gccProper = (): string => {
    const r = spawnSync('gcc', ['-print-prog-name=cc1'], { encoding: 'utf8' });
    assert.equal(r.status, 0, 'gcc is needed (Debian package gcc)');
    return r.stdout.trim();
  };

  test('a header that only mentions __DATE__ in a comment counts as a use: the date is keyed, another day misses', async () => {
    const kbxDir = tempDir('time-day');
    const tree = tempDir('time-day-tree');
    const tmp = join(kbxDir, 'tmp');
    mkdirSync(tmp);
    const cfg = loadConfig({ KBX_DIR: kbxDir });
    const cache = new LineCache(new LocalStore(kbxDir, cfg.maxSize, cfg.compressionLevel), cfg, tmp);
    writeFileSync(join(tree, 'x.c'), '#include "v.h"\n');
    writeFileSync(join(tree, 'v.h'), '/* replaced by __DATE__ at build time */\n');
    writeFileSync(join(tree, 'x.o'), 'object');
    const req = { cwd: tree, command: 'gcc -c x.c', tty: '', envDigest: 'e', timeEnv: { TZ: 'UTC' } };
    const log = `e ${gccProper()}\nr ${tree}/x.c\nr ${tree}/v.h\nw 0 0 0 ${tree}/x.o\n`;
    const lookup = () => cache.lookupLocal(req, [tree], 'b1').kind;

    const res = cache.lookupLocal(req, [tree], 'b1');
    assert.equal(res.kind, 'miss');
    if (res.kind !== 'miss') return;
    writeFileSync(res.action.traceLog, log);
    const rec = cache.record(res.action, { status: '0', stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), elapsedUs: 10 });
    await rec.persist;
    assert.equal(rec.outcome, 'stored');
    assert.equal(lookup(), 'hit');
    const today = Date.now();
    cache.pathSets.now = () => today + 86_400_000;
    assert.equal(lookup(), 'miss');
    cache.pathSets.now = () => today;
    assert.equal(lookup(), 'hit');
  });
});

describe('the scan', () => {
  test('finds the macros as whole identifiers only, as ccache does', () => {
    const scan = (s: string) => scanTimeMacros(Buffer.from(s));
    assert.equal(scan('__DATE__'), FOUND_DATE);
    assert.equal(scan('x(__TIME__);'), FOUND_TIME);
    assert.equal(scan('"__TIMESTAMP__"'), FOUND_TIMESTAMP);
    assert.equal(scan('// __DATE__ __TIME__\n'), FOUND_DATE | FOUND_TIME);
    assert.equal(scan('___DATE__ __DATE___ X__TIME__ __TIME__1 __TIMESTAMP'), 0);
    assert.equal(scan('___DATE__ then __DATE__'), FOUND_DATE);
  });
});
