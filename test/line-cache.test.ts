// The line cache on its own, with a real store and real files, fed trace logs
// as the tracer writes them (docs/PROTOCOL.md section 3): what a miss stores
// when the files the line wrote are, or are no longer, there.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { LineCache } from '../src/daemon/line-cache.js';
import { FileState } from '../src/fingerprint/file-state.js';
import { LocalStore } from '../src/store/local/local-store.js';
import { tempDir } from './support/kbx.js';

// tree: where the line runs and writes; not under KBX_DIR, whose paths are never part of a key.
function setup(tag: string, tree = tempDir(`linecache-tree-${tag}`)) {
  const kbxDir = tempDir(`linecache-${tag}`);
  const tmp = join(kbxDir, 'tmp');
  mkdirSync(tmp);
  const cfg = loadConfig({ KBX_DIR: kbxDir });
  const store = new LocalStore(kbxDir, cfg.maxSize, cfg.compressionLevel);
  const cache = new LineCache(store, cfg, tmp);
  const req = { cwd: tree, command: `make-output ${tag}`, tty: '', envDigest: 'e' };
  /** One run of the line: LOOKUP, then the trace `log` and DONE (`startUs`: the line's start, as the shim tells it). */
  const run = async (log: string, opts: { status?: string; startUs?: number } = {}) => {
    const res = cache.lookupLocal(req, [tree], 'b1');
    if (res.kind !== 'miss') return res.kind;
    if (opts.startUs !== undefined) res.action.startUs = opts.startUs;
    writeFileSync(res.action.traceLog, log);
    const done = { status: opts.status ?? '0', stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), elapsedUs: 10 };
    const rec = cache.record(res.action, done);
    await rec.persist;
    return `${rec.outcome}${rec.reason ? ` ${rec.reason}` : ''}`;
  };
  return { tree, run, cache };
}

describe('what a miss stores', () => {
  test('an output that is gone when the line has finished, though the line did not remove it, is not stored', async () => {
    const { tree, run } = setup('vanished');
    const out = join(tree, 'built-in.a');
    // The line wrote built-in.a; something else (make cleaning up after another job) removed it.
    assert.equal(await run(`w 0 0 0 ${out}\n`), `not-stored output-vanished: ${out}`);
    assert.ok(!existsSync(out));
    // Had it been stored, the next lookup would restore nothing and call that a hit.
    assert.equal(await run(`w 0 0 0 ${out}\n`), `not-stored output-vanished: ${out}`);
  });

  test('a temporary the line wrote and removed itself is no output, and the line is stored', async () => {
    const { tree, run } = setup('temporary');
    const tmp = join(tree, 'x.tmp');
    assert.equal(await run(`w 0 0 0 ${tmp}\nd 1 2 3 ${tmp}\n`), 'stored');
  });

  test("kbuild's filechk: a temporary renamed over the target, then probed by the EXIT trap's rm -f, is no output", async () => {
    const { tree, run } = setup('filechk');
    const tmp = join(tree, '.x.h.tmp');
    const target = join(tree, 'x.h');
    writeFileSync(target, '#define X 1\n');
    assert.equal(await run(`w 0 0 0 ${tmp}\na ${target}\nn 5 12 100 ${tmp}\nN 0 0 0 ${target}\na ${tmp}\na ${tmp}\n`), 'stored');
  });

  test('an output that is there is stored, and the next lookup restores it', async () => {
    const { tree, run } = setup('present');
    const out = join(tree, 'out.o');
    writeFileSync(out, 'object');
    assert.equal(await run(`w 0 0 0 ${out}\n`), 'stored');
    // Gone, as after `make clean`: only the restore can bring it back.
    rmSync(out);
    assert.equal(await run(`w 0 0 0 ${out}\n`), 'hit');
    assert.equal(readFileSync(out, 'utf8'), 'object');
  });
});

/** The later of a file's mtime and ctime, in µs since the epoch. */
function changedUs(p: string): number {
  const st = statSync(p, { bigint: true });
  return Number((st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs) / 1000n);
}

describe('directories a miss stores', () => {
  test('a directory the line made holds only what the line wrote there, not what other jobs wrote', async () => {
    const { tree, run } = setup('mkdir');
    const dir = join(tree, 'build');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.o'), 'mine');
    writeFileSync(join(dir, 'b.o'), 'written by a parallel job, perhaps half');
    const log = `k ${dir}\nw 0 0 0 ${join(dir, 'a.o')}\n`;
    assert.equal(await run(log), 'stored');
    rmSync(dir, { recursive: true });
    assert.equal(await run(log), 'hit');
    assert.equal(readFileSync(join(dir, 'a.o'), 'utf8'), 'mine');
    assert.ok(!existsSync(join(dir, 'b.o')), 'restored a file another job wrote');
  });

  test('a directory renamed into place is stored with all it holds', async () => {
    const { tree, run } = setup('renamed-dir');
    const [tmp, out] = [join(tree, 't'), join(tree, 'out')];
    mkdirSync(join(out, 'sub'), { recursive: true });
    writeFileSync(join(out, 'sub', 'x'), 'made as t/sub/x');
    const log = `k ${tmp}\nk ${tmp}/sub\nw 0 0 0 ${tmp}/sub/x\nn 1 2 3 ${tmp}\nN 0 0 0 ${out}\n`;
    assert.equal(await run(log), 'stored');
    rmSync(out, { recursive: true });
    assert.equal(await run(log), 'hit');
    assert.equal(readFileSync(join(out, 'sub', 'x'), 'utf8'), 'made as t/sub/x');
  });
});

describe('a directory listing the line changed itself', () => {
  test('is keyed as it was before the line: the line ran without its stamp, so a listing with it is a miss', async () => {
    const { tree, run } = setup('own-listing');
    const dir = join(tree, 'src');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.c'), 'int a;\n');
    const [list, stamp] = [join(tree, 'list'), join(dir, 'stamp')];
    writeFileSync(list, 'a.c\n'); // ls src > list; touch src/stamp
    writeFileSync(stamp, '');
    assert.equal(await run(`w 0 0 0 ${list}\nr ${dir}\nw 0 0 0 ${stamp}\n`), 'stored');
    // The stamp is there now: ls would list it, so the stored list is not this line's output.
    const rerun = `w 1 4 5 ${list}\nr ${dir}\nw 1 0 7 ${stamp}\n`;
    assert.notEqual(await run(rerun), 'hit');
    rmSync(stamp);
    assert.equal(await run(rerun), 'hit');
  });
});

describe('what a miss does not store', () => {
  test('a run that exited non-zero', async () => {
    const { tree, run } = setup('failed');
    const out = join(tree, 'out.o');
    writeFileSync(out, 'half an object');
    assert.equal(await run(`w 0 0 0 ${out}\n`, { status: '4' }), 'not-stored exit-nonzero');
    assert.equal(await run(`w 0 0 0 ${out}\n`, { status: '4' }), 'not-stored exit-nonzero');
  });

  test('a run whose input changed at or after its start; an input written a millisecond before the start is stored', async () => {
    const { tree, run } = setup('input-changed');
    const src = join(tree, 'x.c');
    const out = join(tree, 'x.o');
    writeFileSync(src, 'int x;\n');
    writeFileSync(out, 'object');
    const log = `r ${src}\nw 0 0 0 ${out}\n`;
    assert.equal(await run(log, { startUs: changedUs(src) }), `not-stored input-changed: ${src}`);
    assert.equal(await run(log, { startUs: changedUs(src) + 1000 }), 'stored');
  });

  test('an input the line changed in place is judged by its stat before the change', async () => {
    const early = setup('in-place');
    const late = setup('in-place-late', early.tree);
    const obj = join(early.tree, 'vmlinux.o');
    writeFileSync(obj, 'object before objcopy');
    for (const { cache } of [early, late]) cache.state.content(obj); // kbx saw this version (an earlier line wrote it)
    const before = statSync(obj, { bigint: true });
    const log = `r ${obj}\nm ${before.ino} ${before.size} ${before.mtimeNs} ${obj}\n`;
    const writtenUs = changedUs(obj);
    appendFileSync(obj, ', patched'); // the line's own edit, after its start
    assert.equal(await early.run(log, { startUs: writtenUs + 1000 }), 'stored');
    // Had the version it read been written at or after the start, someone else changed it.
    assert.equal(await late.run(log, { startUs: Number(before.mtimeNs / 1000n) }), `not-stored input-changed: ${obj}`);
  });
});

describe('the stat cache', () => {
  test('trusts a check for a second of monotonic time: a wall clock set back an hour does not keep a stale digest', (t) => {
    const p = join(tempDir('trust-clock'), 'x.h');
    writeFileSync(p, 'one\n');
    const state = new FileState();
    const before = state.content(p);
    writeFileSync(p, 'two, longer\n');
    // Two seconds pass while the wall clock is set back an hour (NTP, a manual date).
    const wall = Date.now();
    const mono = performance.now();
    t.mock.method(Date, 'now', () => wall - 3_600_000);
    t.mock.method(performance, 'now', () => mono + 2000);
    assert.notEqual(state.content(p), before, 'a digest checked "in the future" was trusted across the jump');
  });
});
