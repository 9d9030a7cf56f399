// The line cache on its own, with a real store and real files, fed trace logs
// as the tracer writes them (docs/PROTOCOL.md section 3): what a miss stores
// when the files the line wrote are, or are no longer, there.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { LineCache } from '../src/daemon/line-cache.js';
import { LocalStore } from '../src/store/local/local-store.js';
import { tempDir } from './support/kbx.js';

function setup(tag: string) {
  const kbxDir = tempDir(`linecache-${tag}`);
  const tree = tempDir(`linecache-tree-${tag}`); // not under KBX_DIR, whose paths are never part of a key
  const tmp = join(kbxDir, 'tmp');
  mkdirSync(tmp);
  const cfg = loadConfig({ KBX_DIR: kbxDir });
  const store = new LocalStore(kbxDir, cfg.maxSize, cfg.compressionLevel);
  const cache = new LineCache(store, cfg, tmp);
  const req = { cwd: tree, command: `make-output ${tag}`, tty: '', envDigest: 'e' };
  /** One run of the line: LOOKUP, then the trace `log` and DONE. */
  const run = async (log: string) => {
    const res = cache.lookup(req, [tree], 'b1');
    if (res.kind !== 'miss') return res.kind;
    writeFileSync(res.action.traceLog, log);
    const rec = cache.record(res.action, { status: '0', stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), elapsedUs: 10 });
    await rec.persist;
    return `${rec.outcome}${rec.reason ? ` ${rec.reason}` : ''}`;
  };
  return { tree, run };
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
