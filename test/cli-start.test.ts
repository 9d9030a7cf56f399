// What `kbx make` loads before make starts is on the critical path of every
// build, a no-op included: node's start, then every module imported. The
// shared store clients (undici, ioredis: ~0.2 s) and the replay code load only
// when a build uses them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kbx, kbxMain, tempDir, writeTree } from './support/kbx.js';

const MODULE_LOG = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'support', 'module-log.js');

/** The modules `kbx make` loaded for a one-line project, in a store of its own. */
function modulesLoaded(tag: string): string[] {
  const kbx = new Kbx(tag);
  try {
    const proj = join(tempDir(tag), 'proj');
    writeTree(proj, { Makefile: 'all: out\nout: in\n\tcp in out\n', in: 'x\n' });
    const log = join(proj, '..', 'modules.log');
    const r = spawnSync(process.execPath, ['--import', MODULE_LOG, kbxMain, 'make'], {
      cwd: proj,
      env: kbx.env({ KBX_TEST_MODULE_LOG: log }),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /kbx: 1 lines/);
    const loaded = readFileSync(log, 'utf8').split('\n');
    assert.ok(loaded.some((u) => u.endsWith('/cli/make.js')), 'the log names the modules kbx make loaded');
    return loaded;
  } finally {
    kbx.stop();
  }
}

test('kbx make without shared stores or replay loads neither the HTTP nor the Redis client nor the replay code', () => {
  assert.deepEqual(modulesLoaded('cli-start').filter((u) => /\/node_modules\/(undici|ioredis)\/|\/cli\/replay\.js$|\/src\/replay\//.test(u)), []);
});

test("kbx make loads neither the store's code (the daemon's business) nor the stats formatter before make starts", () => {
  assert.deepEqual(modulesLoaded('cli-start-store').filter((u) => /\/src\/store\/local\/|\/cli\/stats\.js$/.test(u)), []);
});
