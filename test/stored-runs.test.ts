// What a miss may store, end to end with real make: only a run whose outputs a
// clean rebuild can restore as plain make would make them. An input edited
// while the line ran, a directory built under another name, a failed run:
// each is a way to restore the wrong thing.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, plainMake, summary, tempDir, writeTree } from './support/kbx.js';

/** A project in its own temporary directory, with `ign/`: a directory kbx is told to leave out of every key. */
function project(tag: string, files: Record<string, string>): { proj: string; ign: string } {
  const proj = join(tempDir(tag), 'proj');
  writeTree(proj, files);
  const ign = join(proj, 'ign');
  mkdirSync(ign, { recursive: true });
  return { proj, ign };
}

/** A plain make build of a copy of proj as it is now, for comparison. */
function plainCopy(proj: string, tag: string, args: string[] = []): string {
  const ref = join(tempDir(tag), 'proj');
  cpSync(proj, ref, { recursive: true });
  const r = plainMake(ref, args);
  assert.equal(r.status, 0, r.stderr);
  return ref;
}

describe('a line that fails', () => {
  const holder = { kbx: undefined as Kbx | undefined };
  after(() => holder.kbx?.stop());

  test('is not stored: once the cause is gone, the next build runs it and succeeds', () => {
    // The exit status comes from a file kbx is told to leave out of the key, as an
    // OOM kill or a full disk is no part of it.
    const { proj, ign } = project('failing', {
      Makefile: ['out:', '\texit $$(cat ign/status)', '\techo built > out', ''].join('\n'),
    });
    const kbx = (holder.kbx = new Kbx('failing', { KBX_IGNORE_PATHS: ign }));
    writeFileSync(join(ign, 'status'), '4\n');
    const first = kbx.make(proj);
    assert.notEqual(first.status, 0, first.stderr);
    assert.equal(summary(first.stderr).stored, 0, first.stderr);

    writeFileSync(join(ign, 'status'), '0\n');
    const ref = plainCopy(proj, 'failing-plain');
    const second = kbx.make(proj);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(readFileSync(join(proj, 'out'), 'utf8'), readFileSync(join(ref, 'out'), 'utf8'));
  });
});
