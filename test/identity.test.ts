// Lines whose output is who or where they run, or what a server said: no file
// holds that, so the key must (identity-inputs.ts) or the line is not stored
// (accesses.ts, `network`). kbuild's scripts/mkcompile_h writes `uname -n` and
// `whoami` into compile.h unless KBUILD_BUILD_HOST/USER are set: without a
// `who` input, a machine sharing a store would restore another's names.
// Real make, real programs; other host names through `unshare --uts`, another
// user through setpriv sharing a real nginx store with root.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { identitiesUsed } from '../src/fingerprint/identity-inputs.js';
import { Kbx, ok, projectDir, summary, tempDir, writeTree } from './support/kbx.js';
import { Nginx } from './support/nginx.js';
import { program, unlessMissing } from './support/tools.js';

// A program that asks uname(2) itself, as a perl or python script may.
const ASK_UNAME = '#include <stdio.h>\n#include <sys/utsname.h>\nint main(void) { struct utsname u; uname(&u); puts(u.nodename); return 0; }\n';

const HOST_MAKEFILE = `all: host-n asked same
host-n:
\tuname -n > host-n
asked: ask
\t./ask > asked
ask: ask.c
\tgcc -o ask ask.c
same:
\tbash -c 'echo same' > same
`;

/** kbx make run with the host name `name` (a UTS namespace of its own). */
function makeAs(kbx: Kbx, dir: string, name: string) {
  kbx.launcher = ['unshare', '--uts', 'sh', '-c', `hostname ${name} && exec "$@"`, 'sh'];
  const r = ok(kbx.make(dir, ['-B']));
  return { ...summary(r.stderr), host: readFileSync(join(dir, 'host-n'), 'utf8').trim(), asked: readFileSync(join(dir, 'asked'), 'utf8').trim() };
}

describe('the host name', { skip: unlessMissing(program('unshare', 'util-linux'), program('gcc', 'gcc')) }, () => {
  test('a line that prints it (uname -n, or a program calling uname) is keyed on it: another host misses, its own host hits; bash alone is not', () => {
    const kbx = new Kbx('identity-host');
    const dir = projectDir('identity-host', { Makefile: HOST_MAKEFILE, 'ask.c': ASK_UNAME });
    try {
      const a = makeAs(kbx, dir, 'kbx-host-a');
      assert.deepEqual([a.host, a.asked], ['kbx-host-a', 'kbx-host-a']);
      const b = makeAs(kbx, dir, 'kbx-host-b');
      // Without the key, both lines hit and print kbx-host-a.
      assert.deepEqual([b.host, b.asked], ['kbx-host-b', 'kbx-host-b']);
      assert.equal(b.misses, 2, 'uname -n and ./ask run again');
      assert.equal(b.hits, 2, 'gcc and the bash line (bash reads the host name for $HOSTNAME) hit');
      const again = makeAs(kbx, dir, 'kbx-host-a');
      assert.deepEqual([again.host, again.asked, again.misses], ['kbx-host-a', 'kbx-host-a', 0]);
    } finally {
      kbx.stop();
    }
  });
});

describe('the user', { skip: unlessMissing(program('nginx', 'nginx'), program('setpriv', 'util-linux')) }, () => {
  const nginx = new Nginx();
  before(() => nginx.start());
  after(() => nginx.stop());

  test("two users sharing a store: a line that prints who runs it is keyed on the user; the others are shared", () => {
    const files = { Makefile: 'all:\n\twhoami > me\n\techo same > same\n' };
    // One HOME for both: the environment is part of every key.
    const root = new Kbx('identity-root', { KBX_REMOTE_STORAGE: nginx.url, HOME: '/' });
    const treeA = projectDir('identity-a', files);
    try {
      ok(root.make(treeA));
      assert.equal(readFileSync(join(treeA, 'me'), 'utf8'), 'root\n');
    } finally {
      root.stop(); // uploads finished
    }
    // nobody: a store directory and a tree of its own, the same nginx.
    const home = tempDir('identity-nobody');
    chownSync(home, 65534, 65534);
    const nobody = new Kbx('identity-nobody', { KBX_REMOTE_STORAGE: nginx.url, KBX_DIR: join(home, 'kbx'), HOME: '/' });
    nobody.launcher = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    const treeB = join(home, 'tree');
    writeTree(treeB, files);
    execFileSync('chown', ['-R', '65534:65534', treeB]);
    chmodSync(home, 0o755);
    try {
      const r = ok(nobody.make(treeB));
      // Without the key, `whoami` hits root's entry and writes root.
      assert.equal(readFileSync(join(treeB, 'me'), 'utf8'), 'nobody\n');
      const s = summary(r.stderr);
      assert.deepEqual([s.hits, s.misses], [1, 1], r.stderr);
    } finally {
      nobody.stop();
    }
  });
});

describe('the network', () => {
  // A server in a process of its own: this one waits in spawnSync while make runs.
  let server: ChildProcess;
  let port = 0;
  before(async () => {
    const code = "let n=0; const s=require('net').createServer((c)=>c.end('reply '+(++n)+'\\n')).listen(0,'127.0.0.1',()=>console.log(s.address().port))";
    server = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    port = await new Promise<number>((r) => server.stdout!.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
  });
  after(() => server.kill());

  test("a line that reads from a server runs every time, and one that fails to reach it is never stored as failing", () => {
    const kbx = new Kbx('identity-net');
    const dir = projectDir('identity-net', {
      Makefile: `all:\n\tbash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}; cat <&3' > got\n\tbash -c 'echo > /dev/tcp/127.0.0.1/1' 2>/dev/null\n`,
    });
    try {
      for (const n of [1, 2]) {
        const r = kbx.make(dir, ['-B']);
        assert.notEqual(r.status, 0, 'the second line fails: nothing listens on port 1');
        // Without the rule the first line hits on the second build and keeps `reply 1`,
        // and the failure is stored and replayed.
        assert.equal(readFileSync(join(dir, 'got'), 'utf8'), `reply ${n}\n`);
        const s = summary(r.stderr);
        assert.equal(s.hits, 0, r.stderr);
      }
    } finally {
      kbx.stop();
    }
  });
});

test('which identities a run depends on, by the programs it ran and those that asked', () => {
  assert.deepEqual(identitiesUsed(['/usr/bin/uname', '/usr/bin/sed'], []), ['host']);
  assert.deepEqual(identitiesUsed(['/usr/bin/whoami'], []), ['user']);
  assert.deepEqual(identitiesUsed(['/bin/sh', '/usr/bin/gcc'], []), []);
  assert.deepEqual(identitiesUsed(['/usr/bin/python3'], ['python3.11']), ['host']);
  // bash asks for $HOSTNAME, find for the kernel's version: neither prints it.
  assert.deepEqual(identitiesUsed(['/bin/bash', '/usr/bin/find'], ['bash', 'find']), []);
});
