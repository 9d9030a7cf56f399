// kbx make's progress display: a status line on a terminal (run under a real
// pseudo-terminal by util-linux's `script`) that never breaks a line of make's
// output, and plain progress lines when stdout is not a terminal.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { eta, lineLabel, statusText } from '../src/cli/progress.js';
import type { BuildMeta } from '../src/builds/record.js';
import { Kbx, copyFixture, kbxMain, plainMake, tempDir, writeTree } from './support/kbx.js';

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** Terminal output without the status lines (each drawn as \r ESC[K kbx [...], cleared by \r ESC[K). */
const withoutStatus = (tty: string) => tty.replace(/\r\x1b\[K(kbx \[[^\r\n]*?(?=\r\x1b\[K|\n|$))?/g, '');

describe('progress on a terminal', () => {
  const kbx = new Kbx('progress');
  after(() => kbx.stop());

  test('a status line counts lines against the previous build, and every line of make output arrives whole', () => {
    const proj = copyFixture('pipeline', 'progress');
    const plain = copyFixture('pipeline', 'progress-plain');
    const expected = plainMake(plain).stdout.split('\n').filter(Boolean);
    // Under a terminal (stdin one too), twice: the second build is expected to do what the first did.
    const cmd = `cd ${shq(proj)} && ${shq(process.execPath)} ${shq(kbxMain)} make --progress tty`;
    const underTerminal = () => spawnSync('script', ['-qefc', cmd, '/dev/null'], { env: kbx.env(), encoding: 'utf8' });
    assert.equal(underTerminal().status, 0);
    plainMake(proj, ['clean']);
    const r = underTerminal();
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const tty = r.stdout.replace(/\r\n/g, '\n');
    assert.match(tty, /\r\x1b\[Kkbx \[\d+\/12\] · \d+ hits · \d+ misses/);
    // Take the status lines out: what is left is exactly make's output, line for line.
    const text = withoutStatus(tty);
    const got = text.split('\n').filter((l) => l && !/^kbx: \d+ lines/.test(l));
    assert.deepEqual(got, expected, JSON.stringify(tty.slice(-600)));
    assert.match(text, /kbx: 12 lines in .*12 hits/);
  });
});

describe('a prompt on a terminal', () => {
  const kbx = new Kbx('progress-prompt');
  after(() => kbx.stop());

  // A hang guard, not a speed limit: without the fix the prompt never shows and nobody answers.
  test('a line waiting for an answer shows its question without a newline, and gets the answer', { timeout: 600_000 }, async () => {
    const proj = join(tempDir('progress-prompt'), 'proj');
    writeTree(proj, { Makefile: 'all:\n\t@printf \'Answer? \'; read x; echo "got $$x"\n' });
    const cmd = `cd ${shq(proj)} && ${shq(process.execPath)} ${shq(kbxMain)} make --progress tty`;
    const child = spawn('script', ['-qefc', cmd, '/dev/null'], { env: kbx.env(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let answered = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // The status line names the running line, whose text has the question in it: look past it.
      if (!answered && withoutStatus(out).includes('Answer? ')) {
        answered = true;
        child.stdin.write('yes\n');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, out);
    assert.match(withoutStatus(out), /Answer\? yes\r?\ngot yes/);
  });
});

describe('plain progress', () => {
  test('when stdout is not a terminal, progress comes as whole lines on stderr and stdout is make\'s alone', () => {
    const kbx = new Kbx('progress-plain', { KBX_PROGRESS_INTERVAL: '1' });
    try {
      const proj = join(tempDir('progress-plain'), 'proj');
      writeTree(proj, { Makefile: 'all: a b\na:\n\tsleep 1.6; echo a > a\nb: a\n\tsleep 1.6; echo b > b\n\t@echo done\n' });
      const r = kbx.make(proj);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^kbx \[\d+\] · \d+ hits · \d+ misses/m);
      assert.doesNotMatch(r.stdout, /kbx \[/);
      assert.deepEqual(r.stdout.split('\n').filter(Boolean), ['sleep 1.6; echo a > a', 'sleep 1.6; echo b > b', 'done']);
    } finally {
      // the Kbx instance owns its daemon
      spawnSync(process.execPath, [kbxMain, 'daemon', 'stop'], { env: kbx.env() });
    }
  });
});

describe('progress arithmetic', () => {
  const prev: BuildMeta = {
    format: 1,
    id: 'x',
    dir: '/d',
    args: [],
    startMs: 0,
    endMs: 100_000,
    exit: 0,
    counts: { trivial: 50, recursive: 0, pass: 0, fallback: 0, hit: 0, miss: 50 },
    // Linear: i % of the lines were done at i seconds.
    curve: Array.from({ length: 101 }, (_, i) => i * 1000),
  };

  test('the ETA follows the previous build, scaled by how fast this one goes', () => {
    assert.equal(eta(prev, 50, 50_000), 50_000);
    assert.equal(eta(prev, 50, 25_000), 25_000); // twice as fast so far
    assert.equal(eta(prev, 100, 90_000), undefined); // past the expected count
    assert.equal(eta(undefined, 10, 1000), undefined);
  });

  test('the status line names the line being run by its output and fits the width', () => {
    assert.equal(lineLabel("gcc -Wp,-MMD,fs/.ioctl.o.d -nostdinc -c -o fs/ioctl.o fs/ioctl.c"), 'fs/ioctl.o');
    assert.equal(lineLabel("sed -e 's/x//' main.s > main.f.s"), 'main.f.s');
    assert.equal(lineLabel("set -e;  echo '  CC      kernel/sched/build_policy.o';    trap 'rm -f kernel/sched/build_policy.o; trap - HUP; kill"), 'CC kernel/sched/build_policy.o');
    assert.equal(lineLabel("set -e;  echo '  CC [M]  drivers/foo.o'; trap"), 'CC [M] drivers/foo.o');
    assert.equal(lineLabel("set -e;     trap 'rm -f fs/stat.o; trap - HUP; kill -s HUP $$' HUP;"), 'fs/stat.o');
    const s = statusText({ countersFile: '', previous: prev, startedMs: 0 }, { done: 50, hits: 20, misses: 5, current: 'as -o a.o a.s' }, 50_000, 200);
    assert.equal(s, 'kbx [50/100] · 20 hits · 5 misses · ETA 0:50  a.o');
    assert.ok(statusText({ countersFile: '', startedMs: 0 }, { done: 1, hits: 0, misses: 0, current: 'x'.repeat(300) }, 0, 40).length <= 40);
  });
});
