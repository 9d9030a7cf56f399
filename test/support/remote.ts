// Helpers for the shared-store stories: "machines" (a store directory and a
// tree each) that share one remote.
import assert from 'node:assert/strict';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, copyFixture, plainMake, repoRoot, type RunResult } from './kbx.js';

/**
 * The tree the second machine builds, an unbuilt copy of the fixture. Until
 * keys are relative to the build roots it must be at the first machine's
 * path: the first tree is removed and the fixture copied there. Once they
 * are, this returns a copy at a path of its own.
 */
export function secondMachineTree(fixture: string, firstTree: string): string {
  rmSync(firstTree, { recursive: true, force: true });
  cpSync(join(repoRoot, 'test', 'fixtures', fixture), firstTree, { recursive: true });
  return firstTree;
}

/** A plain build of the fixture, the reference every kbx build must equal. */
export function reference(fixture: string): string {
  const dir = copyFixture(fixture, `${fixture}-reference`);
  assert.equal(plainMake(dir).status, 0);
  return dir;
}

/** Counters of one shared store in `kbx stats --json`, by their short names (hit, miss, error, …). */
export function remoteCounts(kbx: Kbx, display: string): Record<string, number> {
  const out: Record<string, number> = {};
  const prefix = `remote ${display} `;
  for (const [k, v] of Object.entries(kbx.stats())) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

export function assertBuilt(r: RunResult): void {
  assert.equal(r.status, 0, `build failed:\n${r.stderr}`);
}
