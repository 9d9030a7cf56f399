// The end-to-end story on a real kernel (Linux 6.1 tinyconfig, x86_64):
// plain make, kbx cold, then `make clean` and kbx warm give byte-identical
// vmlinux and bzImage, and the warm build is served from the cache; the
// build's record shows each object's whole pipeline.
// The heaviest test of the suite: three kernel builds, run once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadBuild } from '../src/builds/archive.js';
import { Kbx, plainMake, repoRoot, summary } from './support/kbx.js';
import { withPage } from './support/report-browser.js';
import { kernelTree } from './support/kernel-tree.js';
import { Nginx } from './support/nginx.js';
import { linuxSource, program, unlessMissing } from './support/tools.js';

// Fixed so that two builds of the same tree produce the same bytes (`make
// clean` keeps .version, so the build number would otherwise move).
const REPRODUCIBLE = {
  KBUILD_BUILD_TIMESTAMP: 'Thu Jan  1 00:00:00 UTC 2026',
  KBUILD_BUILD_USER: 'kbx',
  KBUILD_BUILD_HOST: 'kbx',
  KBUILD_BUILD_VERSION: '1',
};
// Settable so that two checkouts can run it side by side on one machine.
const WORK = process.env.KBX_TEST_KERNEL_E2E_WORK ?? '/var/tmp/kbx-kernel-e2e';
const ARTIFACTS = ['vmlinux', 'arch/x86/boot/bzImage'];

function artifacts(out: string): Map<string, Buffer> {
  return new Map(ARTIFACTS.map((a) => [a, readFileSync(join(out, a))]));
}

function assertSameArtifacts(actual: Map<string, Buffer>, expected: Map<string, Buffer>, what: string): void {
  for (const a of ARTIFACTS) assert.ok(actual.get(a)!.equals(expected.get(a)!), `${a} of the ${what} build differs from the plain build`);
}

describe('Linux 6.1 tinyconfig', { skip: unlessMissing(linuxSource(kernelTree())) }, () => {
  const tree = kernelTree()!;
  const kbx = new Kbx('kernel', REPRODUCIBLE);
  let plain: Map<string, Buffer>;
  const plainOut = join(WORK, 'plain');
  const kbxOut = join(WORK, 'kbx');

  before(() => {
    rmSync(WORK, { recursive: true, force: true });
    mkdirSync(plainOut, { recursive: true });
    mkdirSync(kbxOut, { recursive: true });
    assert.equal(plainMake(tree, [`O=${plainOut}`, 'tinyconfig'], REPRODUCIBLE).status, 0);
    const r = plainMake(tree, [`O=${plainOut}`, '-j2'], REPRODUCIBLE);
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    plain = artifacts(plainOut);
  });

  // The summary line of each build, in the test log: the warm hit count is reported with every run.
  const report = (t: { diagnostic(msg: string): void }, r: { stderr: string }) => t.diagnostic(/^kbx: \d+ lines.*$/m.exec(r.stderr)?.[0] ?? 'no summary line');

  test('a cold kbx build gives the plain build\'s vmlinux and bzImage', (t) => {
    assert.equal(kbx.make(tree, [`O=${kbxOut}`, 'tinyconfig']).status, 0);
    const r = kbx.make(tree, [`O=${kbxOut}`, '-j2']);
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    report(t, r);
    const s = summary(r.stderr);
    assert.ok(s.misses > 400, r.stderr.slice(-500));
    assert.equal(s.fallback, 0, r.stderr.slice(-500));
    assertSameArtifacts(artifacts(kbxOut), plain, 'cold kbx');
  });

  test('after make clean, the warm build is served from the cache and is byte-identical', (t) => {
    assert.equal(plainMake(tree, [`O=${kbxOut}`, 'clean'], REPRODUCIBLE).status, 0);
    const logBefore = daemonLog().length;
    const r = kbx.make(tree, [`O=${kbxOut}`, '-j2']);
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    report(t, r);
    const s = summary(r.stderr);
    assert.ok(s.hits > 1500, r.stderr.slice(-500));
    // The first clean rebuild after a cold one may miss lines that probe a
    // file `make clean` keeps but the cold build had not made yet (generated
    // headers, host programs): a new input set. No object compile may miss.
    const misses = daemonLog().slice(logBefore).split('\n').filter((l) => / miss \(/.test(l));
    assert.ok(s.misses < s.lines / 50, r.stderr.slice(-500));
    // kbuild's quiet echo names each compile ("  CC      init/main.o") at the start of its line.
    const compiles = misses.filter((l) => /'\s+CC\s+\S+\.o'/.test(l));
    assert.deepEqual(compiles, [], 'object compiles missed on a warm build');
    assertSameArtifacts(artifacts(kbxOut), plain, 'warm kbx');
  });

  test('a second clean rebuild misses nothing but lines that fail', (t) => {
    assert.equal(plainMake(tree, [`O=${kbxOut}`, 'clean'], REPRODUCIBLE).status, 0);
    const r = kbx.make(tree, [`O=${kbxOut}`, '-j2']);
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    report(t, r);
    // A line that failed is never stored (its failure may come from what no key
    // holds), so it runs every time: kbuild's `$(shell [ … ] && echo y)` tests.
    assert.equal(kbx.run(['builds']).status, 0); // waits for the record
    const missed = loadBuild(kbx.dir).lines.filter((l) => l.kind === 'miss');
    assert.deepEqual(missed.filter((l) => l.exit === 0).map((l) => l.command), [], 'lines that succeeded missed');
    assert.ok(missed.length <= 2, r.stderr.slice(-500));
    assert.equal(summary(r.stderr).misses, missed.length, r.stderr.slice(-500));
    assertSameArtifacts(artifacts(kbxOut), plain, 'second warm kbx');
    const st = spawnSync('cmp', [join(kbxOut, 'vmlinux'), join(plainOut, 'vmlinux')]);
    assert.equal(st.status, 0);
    kbx.stop();
  });

  test('kbx steps shows the whole pipeline of one object, not just the compiler call', () => {
    const r = kbx.run(['steps', 'init/main.o'], { cwd: kbxOut });
    assert.equal(r.status, 0, r.stderr);
    const steps = r.stdout.split('\n#').slice(1);
    const at = (re: RegExp) => steps.findIndex((s) => re.test(s));
    const compile = at(/-c -o init\/main\.o \S*init\/main\.c\s*; scripts\/basic\/fixdep init\/\.main\.o\.d init\/main\.o/);
    const check = at(/scripts\/check-local-export init\/main\.o/);
    const archive = at(/init\/built-in\.a/);
    assert.ok(compile >= 0 && check > compile && archive > check, r.stdout.slice(0, 4000));
    assert.match(steps[compile]!, /wrote it/);
    assert.match(steps[check]!, /read it/);
  });

  test('the report of the kernel rebuild opens in Chromium with its lanes and numbers', async () => {
    const here = mkdtempSync(join(tmpdir(), 'kbx-kernel-report-'));
    const r = kbx.run(['report', '-o', join(here, 'report.html')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(kbx.run(['builds']).status, 0);
    const rec = loadBuild(kbx.dir);
    const shot = join(repoRoot, 'dist', 'test-artifacts', 'kernel-report.png');
    mkdirSync(dirname(shot), { recursive: true });
    await withPage(join(here, 'report.html'), async (page, problems) => {
      assert.equal(await page.locator('#build-id').textContent(), rec.id);
      assert.equal(Number(await page.locator('#summary-lines').getAttribute('data-value')), rec.lines.length);
      assert.equal(Number(await page.locator('#summary-hits').getAttribute('data-value')), rec.counts.hit);
      const lanes = await page.locator('[data-lane]').count();
      assert.ok(lanes >= 2 && lanes <= 4, `${lanes} work lanes for make -j2 (plus $(shell) probes)`);
      assert.equal(await page.locator('#timeline rect.line').count(), rec.lines.length);
      await page.screenshot({ path: shot });
      assert.deepEqual(problems, { errors: [], requests: [] });
    });
  });

  // A shared store (issue 11): every kbx build of this file uploads to it, the
  // cold one filling it; a second machine (its own empty KBX_DIR, another
  // O=) then builds from it. Set in the environment every Kbx here inherits,
  // so the daemon's configuration is the same from the first build to the last.
  const shared = new Nginx();
  const hasNginx = !unlessMissing(program('nginx', 'nginx'));
  before(async () => {
    if (!hasNginx) return;
    await shared.start();
    process.env.KBX_REMOTE_STORAGE = shared.url;
  });
  after(() => shared.stop());

  test('a second machine with an empty store and another O= builds from the shared store: plain\'s bytes, nearly all hits', { skip: !hasNginx }, (t) => {
    const second = new Kbx('kernel-second', REPRODUCIBLE);
    const out = join(WORK, 'second');
    mkdirSync(out, { recursive: true });
    try {
      assert.equal(second.make(tree, [`O=${out}`, 'tinyconfig']).status, 0);
      const r = second.make(tree, [`O=${out}`, '-j2']);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      report(t, r);
      const s = summary(r.stderr);
      assert.ok(s.hits > 1500, r.stderr.slice(-500));
      assert.ok(s.misses < s.lines / 50, r.stderr.slice(-500));
      const remote = Object.entries(second.stats()).filter(([k]) => k.startsWith('remote ') && / (hit|error|timeout|corrupt|blob-missing|read-ahead-used)$/.test(k));
      t.diagnostic(JSON.stringify(Object.fromEntries(remote)));
      assert.ok(remote.some(([k, v]) => k.endsWith(' hit') && v > 1500), JSON.stringify(remote));
      assert.ok(remote.every(([k, v]) => / (hit|read-ahead-used)$/.test(k) || v === 0), JSON.stringify(remote));
      assertSameArtifacts(artifacts(out), plain, 'second machine\'s');
    } finally {
      second.stop();
    }
  });

  function daemonLog(): string {
    try {
      return readFileSync(join(kbx.dir, 'daemon.log'), 'utf8');
    } catch {
      return '';
    }
  }
});
