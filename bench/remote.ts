// "A fresh CI runner" (issue 11): a shared HTTP store (nginx with WebDAV,
// started here on a loopback port) is filled once by a cold build; then, with
// an empty local store, the tree is built again from it in a new checkout:
// the O= directory removed and configured again (untimed, plain make), as a
// runner does. Not `make clean`: that keeps what the cold build made before
// its first lines ran (include/config/kernel.release, generated headers), and
// some 27 lines then key apart from the cold build's (src/kernel/VERSIONS.md),
// which no fresh runner sees. Side by side in one run, each timed whole:
//   plain          a cold plain build (with plain in --only; else the builds are
//                  compared with kbx cold's artifacts)
//   kbx cold       empty local store, filling the server
//   kbx fresh      a new O=, an empty KBX_DIR, the same server
//   kbx warm       a new O=, the cold build's own KBX_DIR (the server configured; lines hit locally)
//   ccache cold    `CC="ccache gcc"`, empty cache, remote_storage on the same nginx (under /ccache)
//   ccache fresh   a new O=, an empty CCACHE_DIR, the same remote_storage
// Bytes are what nginx sent and received for each run (its access log).
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Nginx } from '../test/support/nginx.js';
import { configureKernel, type KernelConfig } from './kernel.js';
import { REPRODUCIBLE, cleanEnv, kbx, kbxSummary, must, readLog, timed, type KbxSummary } from './common.js';

export type RemoteStep = 'plain' | 'kbx-cold' | 'kbx-fresh' | 'kbx-warm' | 'ccache-cold' | 'ccache-fresh';

export interface RemoteRun {
  step: RemoteStep;
  status: number;
  seconds: number;
  load: number;
  log: string;
  kbx?: KbxSummary;
  ccache?: { hits: number; misses: number; remoteHits: number };
  /** Bytes nginx sent (GET bodies) and received (PUT bodies) during the run. */
  down: number;
  up: number;
  requests: number;
  /** Requests the server refused or failed (4xx but 404, 5xx): a store that takes no writes makes a fresh run a cold one. */
  refused: number;
}

export interface RemoteResult {
  runs: RemoteRun[];
  withPlain: boolean;
  /** vmlinux and bzImage of each kbx and ccache run equal plain's (or kbx cold's, without plain). */
  same: Partial<Record<RemoteStep, boolean>>;
}

export interface RemoteOptions {
  tree: string;
  config: KernelConfig;
  jobs: number;
  withCcache: boolean;
  /** Without plain, the builds are compared with kbx's cold build (copied aside) instead. */
  withPlain: boolean;
  /** /var/tmp/…/remote */
  work: string;
  say: (msg: string) => void;
}

/** nginx's access log with the request length: the bytes of each request and answer. */
function logBytes(nginx: Nginx): Array<{ method: string; status: number; sent: number; received: number }> {
  let text = '';
  try {
    text = readFileSync(join(nginx.dir, 'access.log'), 'utf8');
  } catch {
    /* no request yet */
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /"(\w+) \S+ [^"]*" (\d+) (\d+) (\d+)$/.exec(l);
      return { method: m?.[1] ?? '?', status: Number(m?.[2] ?? 0), sent: Number(m?.[3] ?? 0), received: Number(m?.[4] ?? 0) };
    });
}

export async function runRemote(o: RemoteOptions): Promise<RemoteResult> {
  const res: RemoteResult = { runs: [], same: {}, withPlain: o.withPlain };
  const logs = join(o.work, 'logs');
  const out = (what: 'plain' | 'kbx' | 'ccache') => join(o.work, what);
  const kbxStore = join(o.work, 'kbx-store');
  const kbxFresh = join(o.work, 'kbx-store-fresh');
  const ccacheDir = join(o.work, 'ccache-store');
  const ccacheFresh = join(o.work, 'ccache-store-fresh');

  // ccache's storage under /ccache/ needs WebDAV there too: without it every PUT was a 405 and ccache fresh was a cold build.
  const nginx = new Nginx({ logFormat: '"$request" $status $body_bytes_sent $request_length', alsoServe: ['/ccache/'] });
  await nginx.start();
  try {
    const kbxEnv = (dir: string) => cleanEnv({ ...REPRODUCIBLE, KBX_DIR: dir, KBX_IDLE_TIMEOUT: '7200', KBX_REMOTE_STORAGE: nginx.url });
    // ccache's own HTTP storage, beside kbx's on the same server.
    const ccacheEnv = (dir: string) => cleanEnv({ ...REPRODUCIBLE, CCACHE_DIR: dir, CCACHE_REMOTE_STORAGE: nginx.url.replace(/\/kbx$/, '/ccache') });
    for (const dir of [kbxStore, kbxFresh]) if (existsSync(dir)) quiet(() => must(process.execPath, [kbx.main, 'daemon', 'stop'], { env: kbxEnv(dir) }));
    rmSync(o.work, { recursive: true, force: true });
    mkdirSync(logs, { recursive: true });
    const configure = (w: 'plain' | 'kbx' | 'ccache') => {
      rmSync(out(w), { recursive: true, force: true });
      configureKernel(o.tree, out(w), o.config, w === 'ccache' ? ['CC=ccache gcc'] : [], cleanEnv(REPRODUCIBLE));
    };
    for (const w of [...(o.withPlain ? ['plain' as const] : []), 'kbx' as const, ...(o.withCcache ? ['ccache' as const] : [])]) configure(w);
    o.say(`remote: nginx on ${nginx.url}; configured ${o.config} in ${o.work}`);

    const build = (step: RemoteStep): RemoteRun => {
      const log = join(logs, `remote-${step}.log`);
      const before = logBytes(nginx).length;
      const args = (w: 'plain' | 'kbx' | 'ccache') => [`O=${out(w)}`, `-j${o.jobs}`];
      let t;
      if (step === 'plain') t = timed('make', args('plain'), { cwd: o.tree, env: cleanEnv(REPRODUCIBLE), log });
      else if (step.startsWith('kbx')) {
        const env = kbxEnv(step === 'kbx-fresh' ? kbxFresh : kbxStore);
        t = timed(process.execPath, [kbx.main, 'make', ...args('kbx')], { cwd: o.tree, env, log });
      } else {
        const env = ccacheEnv(step === 'ccache-fresh' ? ccacheFresh : ccacheDir);
        must('ccache', ['-z'], { env });
        t = timed('make', [...args('ccache'), 'CC=ccache gcc'], { cwd: o.tree, env, log });
      }
      const reqs = logBytes(nginx).slice(before);
      const run: RemoteRun = {
        step,
        ...t,
        log,
        down: reqs.filter((r) => r.method === 'GET').reduce((a, r) => a + r.sent, 0),
        up: reqs.filter((r) => r.method === 'PUT').reduce((a, r) => a + r.received, 0),
        requests: reqs.length,
        refused: reqs.filter((r) => r.status >= 400 && r.status !== 404).length,
      };
      if (step.startsWith('kbx')) run.kbx = kbxSummary(readLog(log));
      if (step.startsWith('ccache')) run.ccache = ccacheStats(must('ccache', ['--print-stats'], { env: ccacheEnv(step === 'ccache-fresh' ? ccacheFresh : ccacheDir) }));
      const tail = run.kbx ? ` — ${run.kbx.line}` : run.ccache ? ` — ccache ${run.ccache.hits} hits (${run.ccache.remoteHits} remote), ${run.ccache.misses} misses` : '';
      o.say(`remote ${step.padEnd(12)} ${run.seconds.toFixed(1).padStart(7)} s  (load ${t.load.toFixed(2)}, ${run.requests} requests, ${mib(run.down)} down, ${mib(run.up)} up${run.refused ? `, ${run.refused} REFUSED` : ''}${run.status ? `, EXIT ${run.status}, see ${log}` : ''})${tail}`);
      res.runs.push(run);
      const reference = o.withPlain ? out('plain') : join(o.work, 'kbx-cold-artifacts');
      if (step === 'kbx-cold' && !o.withPlain) {
        mkdirSync(join(reference, 'arch/x86/boot'), { recursive: true });
        for (const f of ARTIFACTS) copyFileSync(join(out('kbx'), f), join(reference, f));
      }
      if (step !== 'plain' && !(step === 'kbx-cold' && !o.withPlain)) res.same[step] = sameArtifacts(reference, out(step.startsWith('kbx') ? 'kbx' : 'ccache'));
      return run;
    };

    if (o.withPlain) build('plain');
    build('kbx-cold');
    configure('kbx');
    build('kbx-fresh');
    configure('kbx');
    build('kbx-warm');
    if (o.withCcache) {
      build('ccache-cold');
      configure('ccache');
      build('ccache-fresh');
    }
    for (const dir of [kbxStore, kbxFresh]) quiet(() => must(process.execPath, [kbx.main, 'daemon', 'stop'], { env: kbxEnv(dir) }));
  } finally {
    await nginx.stop();
  }
  return res;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

const ARTIFACTS = ['vmlinux', 'arch/x86/boot/bzImage'];

function sameArtifacts(a: string, b: string): boolean {
  return ARTIFACTS.every((f) => {
    try {
      return readFileSync(join(a, f)).equals(readFileSync(join(b, f)));
    } catch {
      return false;
    }
  });
}

function ccacheStats(text: string): { hits: number; misses: number; remoteHits: number } {
  const v = (k: string) => Number(new RegExp(`^${k}\\t(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { hits: v('direct_cache_hit') + v('preprocessed_cache_hit'), misses: v('cache_miss'), remoteHits: v('remote_storage_read_hit') };
}

function quiet(f: () => unknown): void {
  try {
    f();
  } catch {
    /* nothing to stop */
  }
}

/** The markdown of the scenario: times, ratios against the issue's goals, bytes. */
export function renderRemote(r: RemoteResult): string[] {
  const get = (s: RemoteStep) => r.runs.find((x) => x.step === s && x.status === 0);
  const t = (s: RemoteStep) => get(s)?.seconds;
  const secs = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(1));
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '—' : `${(a / b).toFixed(2)}×`);
  const out = [
    '',
    '### A fresh CI runner fed by a shared HTTP store (nginx on loopback)',
    '',
    `| run | seconds | load at start | hits / misses | requests (refused) | down | up | vmlinux, bzImage = ${r.withPlain ? 'plain' : 'kbx cold'} |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const run of r.runs) {
    const hm = run.kbx ? `${run.kbx.hits} / ${run.kbx.misses}` : run.ccache ? `${run.ccache.hits} (${run.ccache.remoteHits} remote) / ${run.ccache.misses}` : '—';
    const same = r.same[run.step] === undefined ? '—' : r.same[run.step] ? 'yes' : 'no';
    out.push(`| ${run.step} | ${run.status ? `FAILED (${run.status})` : secs(run.seconds)} | ${run.load.toFixed(2)} | ${hm} | ${run.requests} (${run.refused}) | ${mib(run.down)} | ${mib(run.up)} | ${same} |`);
  }
  const fresh = t('kbx-fresh');
  out.push(
    '',
    `kbx fresh / kbx warm: ${ratio(fresh, t('kbx-warm'))} (goal ≤ 1.5×); ccache fresh / kbx fresh: ${ratio(t('ccache-fresh'), fresh)} (goal ≥ 5×); ` +
      `kbx fresh / plain: ${ratio(fresh, t('plain'))}; kbx cold / plain: ${ratio(t('kbx-cold'), t('plain'))}.`,
  );
  return out;
}
