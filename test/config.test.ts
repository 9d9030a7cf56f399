// Settings: defaults, the kbx.conf file, KBX_* variables, and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeConfig, loadConfig, parseSize } from '../src/config/config.js';
import { KbxError } from '../src/util/errors.js';
import { Kbx, tempDir } from './support/kbx.js';

test('sizes take K, M, G suffixes', () => {
  assert.equal(parseSize('500M'), 500 * 2 ** 20);
  assert.equal(parseSize('5G'), 5 * 2 ** 30);
  assert.equal(parseSize('1.5K'), 1536);
  assert.equal(parseSize('lots'), undefined);
});

test('the file overrides the default and the environment overrides the file; kbx config says which', () => {
  const dir = tempDir('config');
  writeFileSync(join(dir, 'kbx.conf'), '# comment\nmax_size = 2G\nidle_timeout = 60\n');
  const cfg = loadConfig({ KBX_DIR: dir, KBX_IDLE_TIMEOUT: '5', HOME: dir });
  assert.equal(cfg.maxSize, 2 * 2 ** 30);
  assert.equal(cfg.idleTimeoutSec, 5);
  const text = describeConfig(cfg);
  assert.match(text, /max_size = 2G {2}\(file\)/);
  assert.match(text, /idle_timeout = 5 {2}\(KBX_IDLE_TIMEOUT\)/);
  assert.match(text, /compression_level = 1 {2}\(default\)/);
});

test('a bad value is an error naming the key, where it came from, and what is valid', () => {
  const dir = tempDir('config-bad');
  assert.throws(
    () => loadConfig({ KBX_DIR: dir, KBX_MAX_SIZE: 'huge' }),
    (e: unknown) => e instanceof KbxError && e.code === 'KBX_BAD_CONFIG' && /KBX_MAX_SIZE: max_size = 'huge' is not a size/.test(e.message),
  );
  writeFileSync(join(dir, 'kbx.conf'), 'max_size = 1G\nmax_sise = 2G\n');
  assert.throws(
    () => loadConfig({ KBX_DIR: dir }),
    (e: unknown) => e instanceof KbxError && /kbx.conf:2: unknown key 'max_sise'/.test(e.message) && /known keys/.test(e.hint ?? ''),
  );
});

test('the CLI reports a bad setting with its code and exits 2 without running make', () => {
  const kbx = new Kbx('badcfg', { KBX_SHIM_TIMEOUT_MS: 'soon' });
  const proj = tempDir('badcfg-proj');
  mkdirSync(proj, { recursive: true });
  writeFileSync(join(proj, 'Makefile'), 'all:\n\ttouch made\n');
  const r = kbx.make(proj);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /kbx: error \[KBX_BAD_CONFIG\]: KBX_SHIM_TIMEOUT_MS: shim_timeout_ms = 'soon' is not a whole number/);
});

test('an unsupported make is refused with a clear error', () => {
  const kbx = new Kbx('oldmake');
  const bin = tempDir('fake-make');
  writeFileSync(join(bin, 'make'), '#!/bin/sh\necho "GNU Make 3.81"\n', { mode: 0o755 });
  const r = kbx.run(['make'], { env: { PATH: `${bin}:${process.env.PATH}` } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /KBX_UNSUPPORTED_MAKE/);
  assert.match(r.stderr, /needs GNU make 4.0 or newer/);
});

test('a changed setting reaches the daemon at the next build; a setting only the CLI reads does not restart it', () => {
  const kbx = new Kbx('cfgchange');
  const proj = tempDir('cfgchange-proj');
  writeFileSync(join(proj, 'Makefile'), 'out: src\n\tcat src > out\n');
  writeFileSync(join(proj, 'src'), 'a\n');
  const pid = () => /pid (\d+)/.exec(kbx.run(['daemon', 'status']).stdout)?.[1];
  try {
    assert.equal(kbx.make(proj).status, 0);
    const first = pid();
    assert.ok(first, 'a daemon runs');
    assert.equal(kbx.make(proj, [], { KBX_PROGRESS: 'off' }).status, 0);
    assert.equal(pid(), first, 'progress is the CLI’s: the daemon stays');
    writeFileSync(join(kbx.dir, 'kbx.conf'), 'compression_level = 0\n');
    assert.equal(kbx.make(proj).status, 0);
    const second = pid();
    assert.ok(second && second !== first, 'the daemon that read the old kbx.conf was replaced');
    assert.equal(kbx.make(proj, [], { KBX_ENV_IGNORE: 'FOO' }).status, 0);
    assert.notEqual(pid(), second, 'a KBX_ variable that changes a daemon setting replaces it too');
  } finally {
    kbx.stop();
  }
});

test('real_shell must name an executable by its absolute path', () => {
  const dir = tempDir('config-shell');
  for (const bad of ['bash', '/nonexistent/sh', dir]) {
    assert.throws(
      () => loadConfig({ KBX_DIR: dir, KBX_REAL_SHELL: bad }),
      (e: unknown) => e instanceof KbxError && /real_shell = .* is not the absolute path of an executable shell/.test(e.message),
      bad,
    );
  }
  assert.equal(loadConfig({ KBX_DIR: dir, KBX_REAL_SHELL: '/bin/bash' }).realShell, '/bin/bash');
});
