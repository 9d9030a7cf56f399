// Many small lines from a shared store, without a kernel (issue 11): what a
// remote hit costs against a local one. A project of N targets, each two
// lines (`mkdir -p out`, `cat src/fK.in | tr a-z A-Z > out/fK.o`), is built
// cold against nginx (filling it); then, alternating for --rounds rounds:
// `make clean` + kbx with the cold build's store (warm local), and a copy of
// the tree built by kbx with an empty store fed from nginx (a fresh runner;
// its daemon started just before, untimed).
// With --delay-ms D every answer of the server is held D ms by a proxy in a
// child process (a cache server a LAN or a zone away; loopback answers in
// well under a millisecond). --store redis uses a redis-server instead of
// nginx. The fresh runner's requests are counted by the server (nginx's
// access log, Redis's commandstats) and given per remote hit.
//
//   node dist/bench/remote-micro.js [--lines 300] [--rounds 3] [--delay-ms 0] [--store http|redis] [--work /tmp/kbx-remote-micro]
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Nginx } from '../test/support/nginx.js';
import { RedisServer } from '../test/support/redis.js';
import { cleanEnv, kbx, kbxSummary, median } from './common.js';

const { values: opt } = parseArgs({
  options: {
    lines: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '3' },
    'delay-ms': { type: 'string', default: '0' },
    work: { type: 'string', default: '/tmp/kbx-remote-micro' },
    store: { type: 'string', default: 'http' },
  },
});
const N = Number(opt.lines);
const ROUNDS = Number(opt.rounds);
const DELAY = Number(opt['delay-ms']);
const work = opt.work;

const MAKEFILE = `OUTS := $(patsubst src/%.in,out/%.o,$(wildcard src/*.in))
all: $(OUTS)
out/%.o: src/%.in
\t@mkdir -p out
\tcat $< | tr a-z A-Z > $@
clean:
\trm -rf out
`;

// Runs in a child: this process waits in spawnSync while the builds run.
const PROXY = `const net = require('node:net'); const [target, delay] = process.argv.slice(1).map(Number);
const srv = net.createServer((c) => { const u = net.connect(target, '127.0.0.1'); c.pipe(u);
  u.on('data', (d) => setTimeout(() => c.destroyed || c.write(d), delay));
  const end = () => { c.destroy(); u.destroy(); }; c.on('close', end).on('error', end);
  u.on('close', () => setTimeout(end, delay + 1)).on('error', end); });
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));`;

function startProxy(port: number): Promise<{ port: number; stop(): void }> {
  const child = spawn(process.execPath, ['-e', PROXY, String(port), String(DELAY)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => child.stdout.once('data', (d: Buffer) => resolve({ port: Number(String(d).trim()), stop: () => child.kill() })));
}

rmSync(work, { recursive: true, force: true });
const tree = join(work, 'a');
mkdirSync(join(tree, 'src'), { recursive: true });
writeFileSync(join(tree, 'Makefile'), MAKEFILE);
for (let i = 1; i <= N; i++) writeFileSync(join(tree, 'src', `f${i}.in`), `line ${i}\n${randomBytes(1500).toString('base64')}\n`);

if (opt.store !== 'http' && opt.store !== 'redis') throw new Error('--store http or --store redis');
const nginx = opt.store === 'http' ? await new Nginx().start() : undefined;
const redis = opt.store === 'redis' ? await RedisServer.start() : undefined;
const port = nginx ? nginx.port : redis!.port;
const proxy = DELAY ? await startProxy(port) : undefined;
const url = `${nginx ? 'http' : 'redis'}://127.0.0.1:${proxy ? proxy.port : port}${nginx ? '/kbx' : ''}`;

/** Requests the server has answered so far: reads (GET, HEAD, EXISTS, MGET) and writes. */
function served(): { reads: number; writes: number } {
  if (nginx) {
    const r = nginx.requests();
    return { reads: r.filter((x) => /^(GET|HEAD) /.test(x)).length, writes: r.filter((x) => /^PUT /.test(x)).length };
  }
  const calls = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(redis!.cli('info', 'commandstats'))?.[1] ?? 0);
  return { reads: calls('get') + calls('mget') + calls('exists'), writes: calls('set') };
}
const env = (dir: string) => cleanEnv({ KBX_DIR: dir, KBX_IDLE_TIMEOUT: '600', KBX_REMOTE_STORAGE: url });
const build = (cwd: string, dir: string) => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [kbx.main, 'make', '-j2'], { cwd, env: env(dir), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, line: kbxSummary(r.stderr)?.line ?? '' };
};
/** CPU seconds (user + system) the store's daemon has used so far: less moved by the machine's load than wall time. */
function daemonCpu(dir: string): number {
  const r = spawnSync(process.execPath, [kbx.main, 'daemon', 'status', '--json'], { env: env(dir), encoding: 'utf8' });
  const { pid } = JSON.parse(r.stdout) as { pid: number };
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th, in clock ticks (100 a second on Linux).
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
const stop = (dir: string) => spawnSync(process.execPath, [kbx.main, 'daemon', 'stop'], { env: env(dir) });
const say = (msg: string) => process.stdout.write(`${msg}\n`);

try {
  say(`${N} targets (${2 * N} lines), -j2, store ${url}${DELAY ? ` (answers held ${DELAY} ms)` : ''}; load ${loadavg()[0]!.toFixed(2)}`);
  const home = join(work, 'store-a');
  say(`cold     ${build(tree, home).s.toFixed(2)} s`);
  const warm: number[] = [];
  const fresh: number[] = [];
  const warmCpu: number[] = [];
  const freshCpu: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    spawnSync('make', ['-C', tree, 'clean'], { stdio: 'ignore' });
    const cpu0 = daemonCpu(home);
    const w = build(tree, home);
    warm.push(w.s);
    warmCpu.push(daemonCpu(home) - cpu0);
    const copy = join(work, `fresh-${i}`);
    cpSync(tree, copy, { recursive: true });
    rmSync(join(copy, 'out'), { recursive: true, force: true });
    // The fresh runner's daemon is started first (untimed): what is measured is the lines.
    const idle = join(work, 'idle');
    mkdirSync(idle, { recursive: true });
    writeFileSync(join(idle, 'Makefile'), 'all: ;\n');
    build(idle, join(work, `store-fresh-${i}`));
    const before = served();
    const cpu1 = daemonCpu(join(work, `store-fresh-${i}`));
    const f = build(copy, join(work, `store-fresh-${i}`));
    freshCpu.push(daemonCpu(join(work, `store-fresh-${i}`)) - cpu1);
    const after = served();
    stop(join(work, `store-fresh-${i}`));
    fresh.push(f.s);
    const hits = Number(/\((\d+) from shared stores\)/.exec(f.line)?.[1] ?? 0);
    const reads = after.reads - before.reads;
    const requests = `${reads} reads, ${after.writes - before.writes} writes: ${hits ? (reads / hits).toFixed(2) : '-'} reads a remote hit`;
    say(`round ${i}: warm ${w.s.toFixed(2)} s, fresh ${f.s.toFixed(2)} s (${requests}); daemon CPU warm ${warmCpu[i]!.toFixed(2)} s, fresh ${freshCpu[i]!.toFixed(2)} s — ${f.line}`);
  }
  stop(home);
  const [mw, mf] = [median(warm), median(fresh)];
  const [cw, cf] = [median(warmCpu), median(freshCpu)];
  say(`median daemon CPU: warm ${cw.toFixed(2)} s, fresh ${cf.toFixed(2)} s: ${(((cf - cw) / N) * 1000).toFixed(2)} ms more a remote hit`);
  say(`median: warm local ${mw.toFixed(2)} s, fresh runner ${mf.toFixed(2)} s: ${(mf / mw).toFixed(2)}×, ${(((mf - mw) / N) * 1000).toFixed(2)} ms more a remote hit; load ${loadavg()[0]!.toFixed(2)}`);
} finally {
  proxy?.stop();
  await nginx?.stop();
  await redis?.stop();
}
