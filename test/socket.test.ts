// The daemon's socket and files cannot be turned against the user (DESIGN.md
// §5): kbx never talks to a socket another user could have bound, never
// deletes a file it did not make, keeps its directories private, and does not
// trust a file's old state after a line the daemon never saw has run.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Kbx, assertSameTree, plainMake, summary, tempDir, writeTree } from './support/kbx.js';
import { control } from '../src/daemon/client.js';
import { socketPath } from '../src/daemon/paths.js';
import { sha256 } from '../src/util/hash.js';

const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
const uid = process.getuid!();

interface Impostor {
  connections: () => number;
  close: () => Promise<void>;
}

/** A server bound where a daemon could be looked for: counts who connects, answers nothing. */
function impostor(path: string): Promise<Impostor> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () =>
      resolve({ connections: () => n, close: () => new Promise<void>((r) => server.close(() => r())) }),
    );
  });
}

const MAKEFILE = 'all: out.txt\nout.txt: in.txt\n\tcat in.txt > out.txt\n';

/** A small project and its plain-make twin. */
function projects(tag: string): { proj: string; ref: string } {
  const proj = join(tempDir(tag), 'proj');
  const ref = join(tempDir(`${tag}-ref`), 'proj');
  for (const d of [proj, ref]) writeTree(d, { Makefile: MAKEFILE, 'in.txt': 'hello\n' });
  assert.equal(plainMake(ref).status, 0);
  return { proj, ref };
}

const kbxs: Kbx[] = [];
after(() => kbxs.forEach((k) => k.stop()));

/**
 * Builds a fresh project through kbx with these settings while the impostors
 * listen: none of them may see a connection, and the build must succeed and
 * equal plain make's. Returns kbx's output.
 */
async function buildPast(fakes: Impostor[], name: string, env: Record<string, string>): Promise<{ stderr: string }> {
  const kbx = new Kbx(name, env);
  kbxs.push(kbx);
  const { proj, ref } = projects(`sock-${name}`);
  const r = await kbx.makeAsync(proj);
  for (const f of fakes) await f.close();
  assert.deepEqual(fakes.map((f) => f.connections()), fakes.map(() => 0), 'kbx talked to an impostor');
  assert.equal(r.status, 0, r.stderr);
  assertSameTree(proj, ref);
  return r;
}

/** kbx refused the directory, named it, and ran make without the cache. */
function assertRefused(stderr: string, dir: string): void {
  assert.match(stderr, /KBX_UNSAFE_DIR/);
  assert.ok(stderr.includes(dir), `the message names ${dir}: ${stderr}`);
  assert.match(stderr, /running make without the cache/);
}

describe('the socket is only ever in a private directory', () => {
  test('a long KBX_DIR: an impostor bound at the old /tmp fallback path is never contacted', async () => {
    const t = tempDir('sock-long');
    const tmp = join(t, 'tmp');
    mkdirSync(tmp);
    const dir = join(t, 'd'.repeat(120));
    // Where kbx put the socket when $KBX_DIR/daemon.sock was too long.
    const fake = await impostor(join(tmp, `kbx-${uid}-${sha256(dir).slice(0, 16)}.sock`));
    const r = await buildPast([fake], 'long', { KBX_DIR: dir, TMPDIR: tmp });
    assert.equal(summary(r.stderr).stored, 1, `kbx ran with its own daemon: ${r.stderr}`);
    const sockDir = join(tmp, `kbx-${uid}`);
    assert.equal(statSync(sockDir).mode & 0o777, 0o700);
  });

  for (const how of ['world-writable', 'owned by nobody'] as const) {
    test(`a long KBX_DIR: a socket directory in /tmp that is ${how} is never used`, async () => {
      const t = tempDir('sock-tmpdir');
      const tmp = join(t, 'tmp');
      const dir = join(t, 'd'.repeat(120));
      const sockDir = join(tmp, `kbx-${uid}`);
      mkdirSync(sockDir, { recursive: true });
      const fake = await impostor(join(sockDir, `${sha256(dir).slice(0, 16)}.sock`));
      if (how === 'world-writable') chmodSync(sockDir, 0o777);
      else chownSync(sockDir, nobody, nobody);
      assertRefused((await buildPast([fake], 'tmpdir', { KBX_DIR: dir, TMPDIR: tmp })).stderr, sockDir);
    });
  }

  for (const how of ['world-writable', 'owned by nobody'] as const) {
    test(`a KBX_DIR that is ${how}: no socket in it is trusted`, async () => {
      const dir = join(tempDir('sock-dir'), 'kbx');
      mkdirSync(join(dir, 'run'), { recursive: true });
      // Today's path and the socket directory's: nothing another user can bind is used.
      const fakes = [await impostor(join(dir, 'daemon.sock')), await impostor(join(dir, 'run', 'daemon.sock'))];
      if (how === 'world-writable') chmodSync(dir, 0o777);
      else chownSync(dir, nobody, nobody);
      assertRefused((await buildPast(fakes, 'dir', { KBX_DIR: dir })).stderr, dir);
    });
  }

  for (const how of ['world-writable', 'owned by nobody', 'a symlink'] as const) {
    test(`a socket directory $KBX_DIR/run that is ${how} is never used`, async () => {
      const dir = join(tempDir('sock-run'), 'kbx');
      const elsewhere = join(tempDir('sock-run-target'), 'run');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const run = how === 'a symlink' ? elsewhere : join(dir, 'run');
      mkdirSync(run, { mode: 0o700 });
      if (how === 'a symlink') execFileSync('ln', ['-s', elsewhere, join(dir, 'run')]);
      const fake = await impostor(join(run, 'daemon.sock'));
      if (how === 'world-writable') chmodSync(run, 0o777);
      if (how === 'owned by nobody') chownSync(run, nobody, nobody);
      assertRefused((await buildPast([fake], 'run', { KBX_DIR: dir })).stderr, join(dir, 'run'));
    });
  }
});

describe("the daemon's files", () => {
  test('build-end deletes no events file but the one kbx made for that build', async () => {
    const kbx = new Kbx('events');
    kbxs.push(kbx);
    const { proj } = projects('events');
    assert.equal(kbx.make(proj).status, 0); // a daemon is running
    const canaries = join(tempDir('canary'), 'canary');
    writeFileSync(canaries, 'keep me');
    const inStore = join(kbx.dir, 'x.events');
    writeFileSync(inStore, 'keep me');
    const sock = socketPath(kbx.dir);
    const requests: Array<[string, string]> = [
      ['b1-1', canaries],
      ['../x', join(kbx.dir, 'builds', '..', 'x.events')],
      ['b2-2', join(kbx.dir, 'builds', 'other-1.events')],
    ];
    writeFileSync(join(kbx.dir, 'builds', 'other-1.events'), '');
    for (const [build, events] of requests) {
      await control(sock, { cmd: 'build-start', build, startMs: Date.now(), record: true });
      await control(sock, { cmd: 'build-end', build, events, dir: proj, args: [], exit: 0 });
    }
    await control(sock, { cmd: 'sync' });
    assert.equal(readFileSync(canaries, 'utf8'), 'keep me');
    assert.equal(readFileSync(inStore, 'utf8'), 'keep me');
    assert.ok(existsSync(join(kbx.dir, 'builds', 'other-1.events')), "another build's events file stays");
  });

  test('KBX_DIR and builds/ are made 0700; a tmp/ that was already there is left alone', () => {
    const home = join(tempDir('home'), 'home');
    writeTree(home, { 'tmp/keep': 'mine' });
    const kbx = new Kbx('home', { KBX_DIR: home });
    kbxs.push(kbx);
    const { proj, ref } = projects('home');
    assert.equal(kbx.make(proj).status, 0);
    writeFileSync(join(proj, 'in.txt'), 'again\n');
    writeFileSync(join(ref, 'in.txt'), 'again\n');
    kbx.stop(); // the next build starts a new daemon
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(plainMake(ref).status, 0);
    assertSameTree(proj, ref);
    assert.equal(readFileSync(join(home, 'tmp', 'keep'), 'utf8'), 'mine');

    const fresh = join(tempDir('fresh'), 'a', 'kbx');
    const k2 = new Kbx('fresh', { KBX_DIR: fresh });
    kbxs.push(k2);
    assert.equal(k2.make(projects('fresh').proj).status, 0);
    assert.equal(statSync(fresh).mode & 0o777, 0o700, 'KBX_DIR');
    assert.equal(statSync(join(fresh, 'builds')).mode & 0o777, 0o700, 'builds/');
  });
});

describe('lines the daemon never sees', () => {
  // a.out reads gen.h (its stat is then trusted for a moment); `bump` runs
  // $(MAKE), so the shim passes it through, and rewrites gen.h; c.out reads
  // gen.h right after. Its entry from the first build holds the old gen.h.
  const files = {
    Makefile: [
      'all: c.out',
      'a.out: gen.h',
      '\tcat gen.h > a.out',
      'stamp: a.out',
      '\tcp next.h gen.h && $(MAKE) -s -C sub && touch stamp',
      'c.out: stamp',
      '\tcat gen.h > c.out',
      '',
    ].join('\n'),
    'sub/Makefile': 'all:\n\t@:\n',
    'gen.h': '#define V 1\n',
    'next.h': '#define V 1\n',
  };

  test('a line that reads a file a pass-through line just rewrote misses', async () => {
    const kbx = new Kbx('unseen');
    kbxs.push(kbx);
    const proj = join(tempDir('unseen'), 'proj');
    const ref = join(tempDir('unseen-ref'), 'proj');
    writeTree(proj, files);
    writeTree(ref, files);
    assert.equal(kbx.make(proj).status, 0);
    assert.equal(plainMake(ref).status, 0);
    for (const d of [proj, ref]) {
      rmSync(join(d, 'a.out'));
      rmSync(join(d, 'stamp'), { force: true });
      rmSync(join(d, 'c.out'), { force: true });
      writeFileSync(join(d, 'next.h'), '#define V 2\n');
    }
    const r = kbx.make(proj);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(plainMake(ref).status, 0);
    assert.equal(readFileSync(join(proj, 'c.out'), 'utf8'), '#define V 2\n', r.stderr);
    assertSameTree(proj, ref);
    const s = summary(r.stderr);
    assert.deepEqual([s.hits, s.misses], [1, 1], r.stderr);
  });
});
