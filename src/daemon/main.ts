// The kbx daemon: long-lived, one per store directory. Started by the CLI
// (detached, output to $KBX_DIR/daemon.log); exits after `idle_timeout`
// seconds without a connection, or on `kbx daemon stop`.
import { connect } from 'node:net';
import { existsSync, lstatSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { configId, loadConfig, type Config } from '../config/config.js';
import { saveBuild } from '../builds/archive.js';
import type { LineRecord } from '../builds/record.js';
import { parseShimEvents } from '../builds/shim-events.js';
import { LocalStore } from '../store/local/local-store.js';
import { openBackend } from '../store/remote/open.js';
import { RemoteStore } from '../store/remote/remote-store.js';
import type { RemoteBackend } from '../store/remote/backend.js';
import { LineCache } from './line-cache.js';
import { DaemonServer } from './server.js';
import { PersistentCounters } from './stats.js';
import { computeBasis } from '../replay/basis.js';
import { fsNow } from '../replay/unchanged.js';
import { replayBuild } from '../replay/replay.js';
import type { FileState } from '../fingerprint/file-state.js';
import { TRACE_LOG_NAME, buildFile, codeId, daemonLogPath, makePrivateDir, prepareKbxDir, socketPath, tracesDir } from './paths.js';
import { KERNEL_PROJECTION_RULES } from '../kernel/btf/module-btf.js';

/**
 * The build's events file, if the request names the one kbx make created for
 * it ($KBX_DIR/builds/<id>.events, a regular file): the daemon reads and
 * deletes it, so it takes no other path from a request.
 */
function eventsFile(cfg: Config, req: { [k: string]: unknown }): string | undefined {
  const own = buildFile(cfg.dir, req.build, 'events');
  if (!own || req.events !== own) return undefined;
  try {
    return lstatSync(own).isFile() ? own : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the build's record (build-end); a failure is logged, never fatal. */
function saveRecording(server: DaemonServer, cfg: Config, req: { [k: string]: unknown }, state: FileState, endMs: number, ended: bigint): void {
  const rec = server.takeRecording(String(req.build));
  if (!rec || typeof req.dir !== 'string') return;
  const events = eventsFile(cfg, req);
  const makeLogFile = buildFile(cfg.dir, req.build, 'makelog');
  if (req.events !== undefined && !events) server.log(`build-end of ${String(req.build)}: ignored events path ${String(req.events)}`);
  try {
    let shimLines: LineRecord[] = [];
    if (events) {
      try {
        shimLines = parseShimEvents(readFileSync(events));
      } catch {
        /* no line wrote an event */
      }
    }
    const args = Array.isArray(req.args) ? req.args.map(String) : [];
    const record = rec.finish({ dir: req.dir, args, exit: Number(req.exit ?? -1), endMs, shimLines });
    if (rec.envDigest) {
      let makeLog: Buffer | undefined;
      try {
        if (makeLogFile) makeLog = readFileSync(makeLogFile);
      } catch {
        /* make never started */
      }
      try {
        record.basis = computeBasis(record, makeLog, rec.envDigest, state, ended);
      } catch (err) {
        server.log(`could not record build ${rec.id} for replay: ${(err as Error).stack}`);
      }
    }
    saveBuild(cfg.dir, record, cfg.buildsKept);
  } catch (err) {
    server.log(`could not save the record of build ${rec.id}: ${(err as Error).stack}`);
  } finally {
    if (events) rmSync(events, { force: true });
    if (makeLogFile) rmSync(makeLogFile, { force: true });
  }
}

/**
 * Removes trace logs a daemon that is gone left (killed mid-line): only files
 * named like kbx's own, and only those of a daemon process no longer running.
 * Called once this daemon holds the socket: a second daemon started at the
 * same moment exits without touching the traces of lines the first one is
 * serving (an incomplete trace would store an entry with inputs missing).
 */
function removeOldTraces(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = TRACE_LOG_NAME.exec(name);
    if (m && !processRuns(Number(m[1]))) rmSync(join(dir, name), { force: true });
  }
}

function processRuns(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * For tests only (KBX_TEST_STORE_GATE): every blob write waits until the
 * gate file exists, at most a minute: a store as slow as a test needs, with
 * the real store doing the work once the gate opens.
 */
function holdStores(store: LocalStore, gate: string): void {
  const put = store.putBlob.bind(store);
  store.putBlob = async (digest, data) => {
    for (let i = 0; i < 1200 && !existsSync(gate); i++) await new Promise((r) => setTimeout(r, 50));
    return put(digest, data);
  };
}

function alive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  const cfg = loadConfig();
  prepareKbxDir(cfg.dir);
  const tmpDir = tracesDir(cfg.dir);
  const sock = socketPath(cfg.dir);
  makePrivateDir(dirname(sock)); // never bind, or trust a listener, where another user could
  // Keep one previous log; a log grows by a line per uncacheable line or miss.
  try {
    if (statSync(daemonLogPath(cfg.dir)).size > 8 * 2 ** 20) renameSync(daemonLogPath(cfg.dir), `${daemonLogPath(cfg.dir)}.old`);
  } catch {
    /* no log yet */
  }
  const global = new PersistentCounters(join(cfg.dir, 'stats.json'));
  let server: DaemonServer;
  const store = new LocalStore(cfg.dir, cfg.maxSize, cfg.compressionLevel, {
    onCorrupt: (path, why) => {
      global.add('corrupt-entry');
      server?.log(`removed corrupt store file ${path}: ${why}`);
    },
    onWriteError: (path, err) => {
      global.add('store-write-error');
      server?.log(`could not write ${path}: ${err.message}`);
    },
  });
  const gate = process.env.KBX_TEST_STORE_GATE;
  if (gate) holdStores(store, gate);
  const backends: RemoteBackend[] = [];
  for (const spec of cfg.remotes) {
    try {
      backends.push(openBackend(spec));
    } catch (err) {
      process.stderr.write(`kbx daemon: cannot use remote ${spec.display}: ${(err as Error).message}\n`); // its output goes to the log
    }
  }
  const remote = backends.length
    ? new RemoteStore(store, backends, { count: (build, name, n) => server?.countLate(build, name, n), log: (msg) => server?.log(msg) }, cfg.pathSetsPerCommand)
    : undefined;
  const cache = new LineCache(store, cfg, tmpDir, remote, KERNEL_PROJECTION_RULES);
  // A refused entry is refused on every lookup of its line: counted each time, logged once.
  const refusals = new Set<string>();
  cache.onRefused = (buildId, why) => {
    global.add('miss:hostile-entry');
    server?.buildCounters(buildId)?.add('miss:hostile-entry');
    if (refusals.has(why)) return;
    if (refusals.size > 1000) refusals.clear();
    refusals.add(why);
    server?.log(`refused a stored entry: ${why}`);
  };
  const id = codeId();
  const started = Date.now();

  let sockIno = -1;
  const shutdown = async (code: number) => {
    // Remove the socket first, and only if it is still ours: a new daemon may
    // already listen at the same path.
    try {
      if (statSync(sock).ino === sockIno) unlinkSync(sock);
    } catch {
      /* already gone */
    }
    await server.close().catch(() => {});
    await server.settle();
    await remote?.flush();
    await remote?.close();
    global.flush();
    process.exit(code);
  };

  server = new DaemonServer(cache, cfg, global, daemonLogPath(cfg.dir), (req) => {
    switch (req.cmd) {
      case 'status':
        return {
          pid: process.pid,
          codeId: id,
          configId: configId(cfg),
          dir: cfg.dir,
          socket: sock,
          uptimeSec: Math.round((Date.now() - started) / 1000),
          rssBytes: process.memoryUsage().rss,
          knownFiles: cache.state.size,
          storeBytes: store.sizes.current(),
          memory: { ...cache.memoryCounts(), ...server.memoryCounts() },
        };
      case 'build-start':
        cache.startBuild();
        remote?.startBuild();
        server.unseen.watch(String(req.build), buildFile(cfg.dir, req.build, 'counters'));
        server.startBuild(String(req.build));
        if (req.record !== false) server.startRecording(String(req.build), Number(req.startMs) || Date.now());
        if (typeof req.envDigest === 'string') {
          const r = server.recording(String(req.build));
          if (r) r.envDigest = req.envDigest;
        }
        // The build may look up what earlier builds were still storing: answer when it is there.
        return server.settle().then(() => ({ ok: true }));
      case 'replay': {
        const build = String(req.build);
        // After the previous build's record is written; never throws into kbx make.
        return server.settle().then(async () => {
          try {
            const { span, source, indexes, strongs } = await replayBuild(
              cfg.dir,
              { dir: String(req.dir), args: Array.isArray(req.args) ? req.args.map(String) : [], envDigest: String(req.envDigest) },
              { store, pathSets: cache.pathSets, state: cache.state, roots: Array.isArray(req.roots) ? req.roots.map(String) : [String(req.dir)] },
            );
            const r = server.recording(build);
            if (r) r.replay = span;
            if (r && source && indexes) r.addReplayed(source, indexes, span.startUs, span.endUs, strongs);
            const c = server.buildCounters(build);
            const counts = [
              ['replayed-lines', span.lines],
              ['replay-restored', span.restored],
              ['replay-refreshed', span.refreshed],
              ['replay-hashed', span.hashed ?? 0],
              ['replay-unchanged', span.unchanged === undefined ? 0 : 1],
            ] as const;
            for (const [name, n] of counts) {
              global.add(name, n);
              c?.add(name, n);
            }
            if (span.why) server.log(`replay of ${build}: none (${span.why})`);
            return span;
          } catch (err) {
            server.log(`replay of ${build} failed: ${(err as Error).stack}`);
            global.add('replay:internal-error');
            return { why: 'internal-error', lines: 0, restored: 0, refreshed: 0 };
          }
        });
      }
      case 'build-end': {
        server.unseen.unwatch(String(req.build));
        // kbx make returns when make does: the reply says what is known now, and
        // the stores still being written (a big output: seconds) and the record
        // (a few hundred ms on a kernel build) finish after it. 'sync', which the
        // next kbx make and every command reading the store or the records send
        // first, waits for both.
        // make has exited: from now on the user may change the tree (replay/unchanged.ts).
        const endMs = Date.now();
        const ended = server.recording(String(req.build))?.envDigest ? fsNow(cfg.dir) : 0n;
        server.later(() => {
          saveRecording(server, cfg, req, cache.state, endMs, ended);
          cache.forgetOldBuilds();
        });
        if (!remote) {
          const c = server.endBuild(String(req.build));
          const writing = server.storesInFlight(String(req.build));
          void server.drain().then(() => global.flushInBackground());
          return { counts: c.counts, savedUs: c.savedUs, rssBytes: process.memoryUsage().rss, writing };
        }
        // With shared stores the build's uploads finish before kbx make does: a
        // CI runner that ends with it must have filled them (each request is
        // bounded by the operation timeout; a failure drops the rest).
        return server
          .drain()
          .then(() => {
            remote.endBuild(String(req.build));
            return remote.flush();
          })
          .then(() => {
            const c = server.endBuild(String(req.build));
            global.flushInBackground();
            return { counts: c.counts, savedUs: c.savedUs, rssBytes: process.memoryUsage().rss, writing: 0, remotes: remote.status() };
          });
      }
      case 'sync':
        return server.settle().then(() => ({ ok: true }));
      case 'stats':
        return server.settle().then(() => ({
          counts: global.counts,
          savedUs: global.savedUs,
          storeBytes: store.sizes.current(),
          maxSize: cfg.maxSize,
          evictedFiles: store.sizes.evictedFiles,
        }));
      case 'clear':
        return server.drain().then(() => {
          store.clear();
          cache.pathSets.forgetAll();
          global.reset();
          return { ok: true };
        });
      case 'stop':
        setImmediate(() => void shutdown(0));
        return { ok: true };
      default:
        return { error: `unknown command '${req.cmd}'` };
    }
  });

  try {
    await server.listen(sock);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (await alive(sock)) process.exit(0); // another daemon serves this store already
    unlinkSync(sock);
    await server.listen(sock);
  }
  sockIno = statSync(sock).ino;
  removeOldTraces(tmpDir);
  server.log(`daemon ${process.pid} listening on ${sock} (code ${id})`);

  const dirIno = statSync(cfg.dir).ino;
  setInterval(() => {
    global.flushInBackground();
    if (server.idleMs() > cfg.idleTimeoutSec * 1000) {
      server.log('idle timeout; exiting');
      void shutdown(0);
    } else if (server.idleMs() > ORPHAN_CHECK_IDLE_MS && orphaned(cfg.dir, dirIno, sock, sockIno)) {
      // KBX_DIR was deleted (rm -rf of a CI workspace) or another daemon took
      // the socket: no client can reach this one again, so it would live
      // until its idle timeout holding a store nobody sees.
      server.log('store directory or socket is gone; exiting');
      void shutdown(0);
    }
  }, Math.min(2000, cfg.idleTimeoutSec * 1000)).unref();
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));
}

const ORPHAN_CHECK_IDLE_MS = 3000;

/** Whether the store directory or the socket this daemon listens on was removed or replaced. */
function orphaned(dir: string, dirIno: number, sock: string, sockIno: number): boolean {
  try {
    return statSync(dir).ino !== dirIno || statSync(sock).ino !== sockIno;
  } catch {
    return true;
  }
}

main().catch((err) => {
  process.stderr.write(`kbx daemon: ${(err as Error).stack}\n`);
  process.exit(1);
});
