// Nothing fixed on the critical path: `kbx make` returns when make returns.
// The daemon finishes writing the last lines' outputs to the store, and the
// build's record, after kbx make has printed its summary; the next command
// that needs them (kbx make, kbx stats, kbx steps) waits for them instead.
// The store is held back by the daemon's test gate (KBX_TEST_STORE_GATE:
// every blob write waits for a file to exist), so "still being written" is
// certain, not a race with a fast disk.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kbx, summary, tempDir, writeTree } from './support/kbx.js';

describe('the end of a build', () => {
  const holder = { kbx: undefined as Kbx | undefined };
  after(() => {
    if (holder.kbx) writeFileSync(join(holder.kbx.dir, 'gate'), '');
    holder.kbx?.stop();
  });

  test('kbx make returns while its output is still being stored, says so, and the next build waits for it and hits', async () => {
    const proj = join(tempDir('build-end'), 'proj');
    writeTree(proj, { Makefile: 'all: out.txt\nout.txt: in.txt\n\tsort -n in.txt > out.txt\n', 'in.txt': '3\n1\n2\n' });
    const kbx = (holder.kbx = new Kbx('build-end'));
    const gate = join(kbx.dir, 'gate');
    const env = { KBX_TEST_STORE_GATE: gate };

    const first = kbx.make(proj, [], env);
    assert.equal(first.status, 0, first.stderr);
    const s = summary(first.stderr);
    assert.deepEqual([s.misses, s.stored, s.writing], [1, 1, 1], first.stderr);
    assert.match(first.stderr, /\(1 stored, 1 still being written\); saved 0\.0 s of recipe time/);

    // The next build starts while the store is still held: it waits for it at
    // start-up (its counters file appears just before), then finds the entry.
    rmSync(join(proj, 'out.txt'));
    const builds = join(kbx.dir, 'builds');
    const counters = () => readdirSync(builds).filter((n) => n.endsWith('.counters')).length;
    const second = kbx.makeAsync(proj);
    for (let i = 0; i < 600 && counters() === 0; i++) await sleep(20);
    assert.equal(counters(), 1, 'the second kbx make never started');
    await sleep(300);
    assert.ok(!existsSync(join(proj, 'out.txt')), 'make ran the line before the first build had stored it');
    writeFileSync(gate, '');
    const r = await second;
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([summary(r.stderr).hits, summary(r.stderr).misses, summary(r.stderr).writing], [1, 0, 0], r.stderr);
    assert.equal(kbx.stats().stored, 1);
  });
});
