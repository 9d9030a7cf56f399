// The cache key and the shim protocol as golden bytes: if one of these
// changes, KEY_FORMAT or the protocol version must change with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnvDigests, KEY_FORMAT, envDigest, keyEnvironment, normalizeMakeflags, strongFingerprint, weakFingerprint } from '../src/fingerprint/key.js';
import { FrameReader, decodeBody, encodeFrame, ProtocolError } from '../src/daemon/protocol.js';
import { RootNames } from '../src/fingerprint/root-names.js';

const env = ['PATH=/usr/bin:/bin', 'KBX_BUILD_ID=abc', 'MAKEFLAGS=rRj -j8 --jobserver-auth=3,4 -- O=/out', 'PWD=/src/linux', 'ARCH=x86'];
// Roots that are nowhere on this machine: resolved, they stay as spelled.
const names = new RootNames(['/src/linux', '/out']);
const line = (e: string[], ignore: string[] = [], tty = 'e') =>
  weakFingerprint({ cwd: '/src/linux', command: 'set -e; gcc -c -o init/main.o init/main.c', tty, envDigest: envDigest(e, ignore, names) }, names);

test('the weak fingerprint is stable (golden value for KEY_FORMAT kbx-key-10)', () => {
  assert.equal(KEY_FORMAT, 'kbx-key-10');
  // Golden: computed once and written down; a change here changes every key.
  assert.equal(line(env), GOLDEN_WEAK);
});

test('the jobserver, -j, kbx variables, PWD and MAKE_RESTARTS do not enter the key; everything else does', () => {
  assert.deepEqual(keyEnvironment(env, []), ['ARCH=x86', 'MAKEFLAGS=rR -- O=/out', 'PATH=/usr/bin:/bin']);
  assert.equal(normalizeMakeflags('j --jobserver-fds=5,6 -j'), '');
  // make -C turns on -w (print the directory); kbuild's sub-makes pass --no-print-directory.
  assert.equal(normalizeMakeflags('w -- O=/out'), normalizeMakeflags(' -- O=/out'));
  assert.equal(normalizeMakeflags('rRw -j2 --jobserver-auth=3,4 --no-print-directory -- O=/out'), normalizeMakeflags('rR -- O=/out'));
  // MFLAGS, the same flags with a dash: -w alone, -rw.
  assert.equal(normalizeMakeflags('-w'), normalizeMakeflags(''));
  assert.equal(normalizeMakeflags('-rw -j2 --jobserver-auth=3,4'), normalizeMakeflags('-r'));
  // make 4.4's named pipe, whose name changes from build to build (make 4.3 hands `+` lines the same numbers).
  assert.equal(normalizeMakeflags('rR -j4 --jobserver-auth=fifo:/tmp/GMfifo12345 -- O=/out'), 'rR -- O=/out');
  // kbx make's link routing (one make argument, escaped as make writes it) is not part of any key.
  const routed = ` -j2 --jobserver-auth=3,4 -- FOO=1 cmd_link_vmlinux=MAKE='$$(MAKE)'\\ '/usr/bin/node'\\ 'a\\ b/link.js'\\ "$$(LD)";\\ true O=out`;
  assert.equal(normalizeMakeflags(routed), normalizeMakeflags(' -j2 --jobserver-auth=3,4 -- FOO=1 O=out'));
  const other = [...env.filter((e) => !e.startsWith('MAKEFLAGS')), 'MAKEFLAGS=rR -j2 --jobserver-auth=7,8 -- O=/out'];
  assert.equal(line(other), line(env));
  assert.notEqual(line([...env, 'CFLAGS=-O3']), line(env));
  assert.notEqual(line(env, [], ''), line(env));
  assert.equal(line([...env, 'CFLAGS=-O3'], ['CFLAGS']), line(env));
  assert.equal(line([...env, 'MAKE_RESTARTS=1']), line(env), "make's restart count");
});

test("where kbx is installed does not enter the key: kbx make's SHELL=<install>/build/native/kbx-shell/sh in MAKEFLAGS", () => {
  const at = (dir: string, shim = 'kbx-shell/sh') => [...env.filter((e) => !e.startsWith('MAKEFLAGS')), `MAKEFLAGS=rR -- O=/out SHELL=${dir}/build/native/${shim}`];
  assert.equal(line(at('/usr/lib/node_modules/kbx')), line(at('/home/me/src/kbx')));
  assert.equal(normalizeMakeflags(' -- SHELL=/opt/kbx/build/native/kbx-shell/sh'), ' -- SHELL=kbx-shim');
  // The shim's earlier name keys the same: entries stored before the rename still hit.
  assert.equal(line(at('/opt/kbx', 'kbx-shim')), line(at('/home/me/src/kbx')));
  // Any other shell a user gives make stays in the key.
  assert.notEqual(line([...env.filter((e) => !e.startsWith('MAKEFLAGS')), 'MAKEFLAGS=rR -- O=/out SHELL=/bin/bash']), line(at('/opt/kbx')));
});

test('the daemon\'s memoised environment digest equals the plain one, taken without wrappers; what they add is a digest of its own', () => {
  const memo = new EnvDigests([]);
  const raw = env.map((e) => Buffer.from(e));
  assert.deepEqual(memo.of(raw), { envDigest: envDigest(env, [], undefined, true), wrapperEnv: '' });
  assert.deepEqual(memo.of(raw), { envDigest: envDigest(env, [], undefined, true), wrapperEnv: '' });
  assert.notEqual(memo.of([...raw, Buffer.from('X=1')]).envDigest, envDigest(env, []));
  const under = (...more: string[]) => memo.of([...raw, ...more.map((m) => Buffer.from(m))]);
  // distcc's words and variables leave the digest, and make the wrappers' own.
  const local = under('CC=gcc');
  const farm = under('CC=distcc gcc', 'DISTCC_HOSTS=127.0.0.1:3632/4');
  const noRewrite = under('CC=gcc', 'DISTCC_NO_REWRITE_CROSS=1');
  assert.equal(local.wrapperEnv, '');
  assert.deepEqual([farm.envDigest, noRewrite.envDigest], [local.envDigest, local.envDigest]);
  assert.notEqual(farm.wrapperEnv, '');
  assert.notEqual(noRewrite.wrapperEnv, '');
  assert.notEqual(farm.wrapperEnv, noRewrite.wrapperEnv);
  // The hosts alone steer distcc, never what it makes: in neither digest.
  assert.deepEqual(under('CC=distcc gcc', 'DISTCC_HOSTS=10.0.0.1/8'), farm);
});

test('the strong fingerprint covers every entry of the path set, absent paths included', () => {
  const set = [
    { k: 'c' as const, p: '/src/linux/init/main.c', v: 'aa'.repeat(32) },
    { k: 'e' as const, p: '/src/linux/include/shadow.h', v: 'absent' },
  ];
  const s = strongFingerprint('00'.repeat(32), set);
  assert.notEqual(strongFingerprint('00'.repeat(32), [set[0]!, { ...set[1]!, v: 'file' }]), s);
  assert.notEqual(strongFingerprint('00'.repeat(32), [set[0]!]), s);
});

test('frames: golden bytes, split delivery, and hostile lengths', () => {
  const f = encodeFrame(2, ['0', Buffer.from([0, 1]), '']);
  assert.equal(f.toString('hex'), '1000000002' + '01000000' + '30' + '02000000' + '0001' + '00000000');
  const reader = new FrameReader();
  assert.deepEqual(reader.push(f.subarray(0, 3)), []);
  const frames = reader.push(f.subarray(3));
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.type, 2);
  assert.deepEqual(frames[0]!.fields.map((b) => b.toString('hex')), ['30', '0001', '']);
  assert.throws(() => decodeBody(Buffer.from('0205000000', 'hex')), ProtocolError);
  assert.throws(() => decodeBody(Buffer.from('02ffffffff00', 'hex')), ProtocolError);
  assert.throws(() => new FrameReader().push(Buffer.from('ffffffff', 'hex')), ProtocolError);
});

const GOLDEN_WEAK = 'af85a502b37a99269059dcf9bba0aac36487b385b8698a28fb72337272aed977';

test('two checkouts at different paths make the same weak key; a path that only starts like a root does not', () => {
  const at = (src: string, out: string, cmd: (s: string, o: string) => string, e: string[] = []) => {
    const n = new RootNames([src, out]);
    return weakFingerprint({ cwd: out, command: cmd(src, out), tty: '', envDigest: envDigest(e, [], n) }, n);
  };
  const gcc = (s: string, o: string) => `gcc -I${s}/include -Wp,-MMD,${o}/.a.o.d -fmacro-prefix-map=${s}/= -c -o ${o}/a.o ${s}/a.c`;
  const env1 = ['abs_srctree=/home/u/linux', 'PATH=/home/u/linux/tools:/usr/bin'];
  const env2 = ['abs_srctree=/ci/w/linux', 'PATH=/ci/w/linux/tools:/usr/bin'];
  assert.equal(at('/home/u/linux', '/home/u/linux/build', gcc, env1), at('/ci/w/linux', '/ci/w/linux/build', gcc, env2));
  // A sibling of the root (linux2), a path that merely ends like it, and a root not in the roots are not renamed.
  for (const cmd of [(s: string) => `cat ${s}2/a`, (s: string) => `cat /x${s}/a`, () => 'cat /home/u/linux/a']) {
    assert.notEqual(at('/home/u/linux', '/home/u/linux/build', cmd), at('/ci/w/linux', '/ci/w/linux/build', cmd));
  }
  // Roles differ: the make directory of one is not the output directory of the other.
  assert.notEqual(at('/a/src', '/a/out', () => 'cat /a/src/x'), at('/a/out', '/a/src', () => 'cat /a/src/x'));
});

test("kbx's cmd_link_vmlinux override, which holds its install path, is no part of a line's environment", () => {
  const env = (install: string) => [`cmd_link_vmlinux=${install}/node ${install}/dist/src/cli/link-vmlinux.js "ld"`, 'ARCH=x86'];
  assert.equal(envDigest(env('/opt/a'), []), envDigest(env('/home/u/kbx'), []));
  assert.equal(envDigest(env('/opt/a'), []), envDigest(['ARCH=x86'], []));
});
