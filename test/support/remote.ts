// Helpers for the shared-store stories: "machines" (a store directory and a
// tree each) that share one remote.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBundle, encodeBundle, type Bundle } from '../../src/store/remote/wire.js';
import { Kbx, copyFixture, plainMake, type RunResult } from './kbx.js';

/**
 * The tree the second machine builds: an unbuilt copy of the fixture at a
 * path of its own (keys name files by their build root, so another checkout
 * shares the first machine's entries). The first tree is removed, as on
 * another machine.
 */
export function secondMachineTree(fixture: string, firstTree: string): string {
  rmSync(firstTree, { recursive: true, force: true });
  return copyFixture(fixture, `${fixture}-second`);
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

/** Rewrites each bundle (a command's path sets, wire.ts) among the files in dir (nginx's <data>/kbx/ac) with fn; returns how many. */
export function rewriteBundles(dir: string, fn: (b: Bundle) => void): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const data = readFileSync(join(dir, name));
    let b: Bundle;
    try {
      b = decodeBundle(data);
    } catch {
      continue; // an entry, or a list of lines
    }
    fn(b);
    writeFileSync(join(dir, name), encodeBundle(b));
    n++;
  }
  return n;
}

/** Drops what the bundles in dir carry inline: readers then fetch each entry and blob under its own key, as they do for large outputs. */
export function stripInline(dir: string): void {
  assert.ok(
    rewriteBundles(dir, (b) => {
      b.entries.clear();
      b.blobs.clear();
    }) > 0,
  );
}
