// A daemon lives across many builds, and the build trees it serves come and
// go (a fresh checkout per CI job, a temporary directory per build). What it
// keeps in memory for a tree (the files it hashed, the paths it found absent,
// the path sets of the tree's commands) must go when no recent build uses
// them, or one daemon grows without end (seen: 3.6 GB after 35 minutes of
// busybox and git builds). Counted through `kbx daemon status --json`, not
// resident memory, which the garbage collector makes noisy.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, summary, tempDir, writeTree } from './support/kbx.js';

const BUILDS = 24;
// Builds after which the counts are read: the first, once KEEP_BUILDS (10) builds have passed, the last.
const SAMPLES = [0, 14, BUILDS - 1];
const LINES = 6;

/** A project of LINES lines in a directory of its own: every build's paths and commands are new to the daemon. */
function project(i: number): string {
  const proj = join(tempDir(`memory-${i}`), 'proj');
  const files: Record<string, string> = {};
  const outs: string[] = [];
  for (let n = 0; n < LINES; n++) {
    files[`in${n}.txt`] = `${i} ${n}\n`;
    outs.push(`out${n}.txt`);
  }
  // Each line reads its input and probes a path that is absent; its text names the build (a
  // job's own flags): stored paths are named by their root, so only a new command is a new record.
  files.Makefile = `all: ${outs.join(' ')}\nout%.txt: in%.txt\n\ttest -e opt$*.txt || cat $< > $@ # job ${i}\n`;
  writeTree(proj, files);
  return proj;
}

type Memory = Record<string, number>;

describe('a daemon across many builds of trees that come and go', () => {
  const kbx = new Kbx('memory');
  after(() => kbx.stop());

  const memory = (): Memory => {
    kbx.stats(); // waits for the daemon's work after each build
    const r = kbx.run(['daemon', 'status', '--json']);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { memory: Memory }).memory;
  };

  test('keeps files, absent paths and path sets of the last few builds only', () => {
    const seen: Memory[] = [];
    for (let i = 0; i < BUILDS; i++) {
      const r = kbx.make(project(i), ['-j2']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(summary(r.stderr).stored, LINES, r.stderr);
      if (SAMPLES.includes(i)) seen.push(memory());
    }
    const [first, mid, last] = seen as [Memory, Memory, Memory];
    for (const k of ['knownFiles', 'knownExistences', 'pathSetRecords'] as const) {
      assert.ok(mid[k]! > first[k]!, `${k} grows at first: ${JSON.stringify(seen.map((m) => m[k]))}`);
      assert.ok(last[k]! <= mid[k]!, `${k} keeps growing: ${JSON.stringify(seen.map((m) => m[k]))}`);
    }
    assert.ok(last.pathSetRecords! <= 11 * LINES, JSON.stringify(last));
    // Nothing is left of the builds that ended.
    assert.deepEqual([last.openBuilds, last.recorders, last.buildsStoring], [0, 0, 0], JSON.stringify(last));
  });
});

describe('a daemon whose store directory is deleted', () => {
  test('exits instead of living on unreachable until its idle timeout', async () => {
    const kbx = new Kbx('orphan');
    const r = kbx.make(project(100), ['-j2']);
    assert.equal(r.status, 0, r.stderr);
    const status = kbx.run(['daemon', 'status', '--json']);
    assert.equal(status.status, 0, status.stderr);
    const pid = (JSON.parse(status.stdout) as { pid: number }).pid;
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    assert.ok(alive());
    rmSync(kbx.dir, { recursive: true, force: true }); // a CI job's workspace wiped
    // Bounded: the daemon looks every 2 s once idle for 3 s; its idle timeout here is 120 s.
    for (let i = 0; i < 200 && alive(); i++) await new Promise((res) => setTimeout(res, 100));
    const left = alive();
    if (left) process.kill(pid, 'SIGKILL');
    assert.equal(left, false, 'the daemon still runs 20 s after its store directory was deleted');
  });
});
