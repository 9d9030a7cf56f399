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

test('kbx make without shared stores or replay loads neither the HTTP nor the Redis client nor the replay code', () => {
  const kbx = new Kbx('cli-start');
  try {
    const proj = join(tempDir('cli-start'), 'proj');
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
    assert.deepEqual(loaded.filter((u) => /\/node_modules\/(undici|ioredis)\/|\/cli\/replay\.js$|\/src\/replay\//.test(u)), []);
  } finally {
    kbx.stop();
  }
});

test("kbx make loads neither the store's code (the daemon's business) nor the stats formatter before make starts", () => {
  const kbx = new Kbx('cli-start-store');
  try {
    const proj = join(tempDir('cli-start-store'), 'proj');
    writeTree(proj, { Makefile: 'all: out\nout: in\n\tcp in out\n', in: 'x\n' });
    const log = join(proj, '..', 'modules.log');
    const r = spawnSync(process.execPath, ['--import', MODULE_LOG, kbxMain, 'make'], {
      cwd: proj,
      env: kbx.env({ KBX_TEST_MODULE_LOG: log }),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const loaded = readFileSync(log, 'utf8').split('\n');
    assert.ok(loaded.some((u) => u.endsWith('/cli/make.js')), 'the log names the modules kbx make loaded');
    assert.deepEqual(loaded.filter((u) => /\/src\/store\/local\/|\/cli\/stats\.js$/.test(u)), []);
  } finally {
    kbx.stop();
  }
});
