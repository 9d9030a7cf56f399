// The daemon's socket: one connection per recipe line (LOOKUP, then HIT/PASS,
// or MISS … DONE → ACK), plus JSON control requests from the CLI.
// Any exception while serving a line answers PASS (or ACK), so the shim runs
// the line itself: kbx never fails a build.
import { createServer, type Server, type Socket } from 'node:net';
import { appendFileSync } from 'node:fs';
import { wrapperStateDirs, type Config } from '../config/config.js';
import { CONTROL_REPLY, CONTROL_REQUEST, FrameReader, MsgType, PROTOCOL_VERSION, encodeFrame, type Frame } from './protocol.js';
import type { LineCache, LookupResult, PendingAction } from './line-cache.js';
import { EnvDigests, keyedWithoutWrappers, type LineRequest } from '../fingerprint/key.js';
import { Counters, PersistentCounters } from './stats.js';
import { BuildRecorder, calibrateClock, nowUs } from '../builds/recorder.js';
import type { MissWhy } from '../builds/record.js';
import { UnseenLines } from './unseen-lines.js';

export { CONTROL_REPLY, CONTROL_REQUEST } from './protocol.js';
// The last field of a LOOKUP from a shim that records its build (PROTOCOL.md §2).
const START_FIELD = Buffer.from('KBX_LINE_START_US=');

export interface ControlHandler {
  (req: { cmd: string; [k: string]: unknown }): unknown;
}

interface Pending {
  action: PendingAction;
  buildId: string;
  startUs: number;
  env: string;
  why: MissWhy;
}

export class DaemonServer {
  private server: Server;
  private builds = new Map<string, Counters>();
  private recorders = new Map<string, BuildRecorder>();
  private lastActivity = Date.now();
  private active = 0;
  private pendingPersist = new Set<Promise<void>>();
  /** Per build: its lines' stores still being written (a build absent here has none). */
  private persisting = new Map<string, number>();
  private pendingLater = new Set<Promise<void>>();
  private envDigests: EnvDigests;
  /** Lines the shims ran without asking (kbx make's build-start and build-end watch each build's counters). */
  readonly unseen = new UnseenLines();

  constructor(
    private readonly cache: LineCache,
    readonly cfg: Config,
    readonly global: PersistentCounters,
    private readonly logFile: string,
    private readonly control: ControlHandler,
  ) {
    this.server = createServer((sock) => this.serve(sock));
    this.envDigests = new EnvDigests(cfg.envIgnore);
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  idleMs(): number {
    return this.active > 0 ? 0 : Date.now() - this.lastActivity;
  }

  /** One record per line, however long: newlines in a recipe or a stack become the two characters \n. */
  log(msg: string): void {
    try {
      appendFileSync(this.logFile, `${new Date().toISOString()} ${msg.replace(/\r?\n/g, '\\n')}\n`);
    } catch {
      /* logging must never break serving */
    }
  }

  /** Starts a build's own counters (kbx make's build-start); builds that never ended are dropped, oldest first. */
  startBuild(id: string): void {
    if (!this.builds.has(id) && this.builds.size >= 16) this.builds.delete(this.builds.keys().next().value!);
    this.builds.set(id, this.builds.get(id) ?? new Counters());
  }

  /**
   * The counters of a build between build-start and build-end; undefined for
   * any other (a shim run outside kbx make, a store ending after build-end):
   * such lines count in the global counters only, so nothing is kept per id.
   */
  buildCounters(id: string): Counters | undefined {
    return this.builds.get(id);
  }

  endBuild(id: string): Counters {
    const c = this.builds.get(id) ?? new Counters();
    this.builds.delete(id);
    return c;
  }

  /** Sizes of the per-build state the server keeps (kbx daemon status --json). */
  memoryCounts(): Record<string, number> {
    return { openBuilds: this.builds.size, recorders: this.recorders.size, buildsStoring: this.persisting.size };
  }

  /** Starts recording a build's lines (kbx make's build-start). */
  startRecording(id: string, startMs: number): void {
    calibrateClock();
    // Builds that never sent build-end (kbx make killed) are dropped, oldest first.
    if (this.recorders.size >= 16) this.recorders.delete(this.recorders.keys().next().value!);
    this.recorders.set(id, new BuildRecorder(id, startMs));
  }

  recording(id: string): BuildRecorder | undefined {
    return this.recorders.get(id);
  }

  takeRecording(id: string): BuildRecorder | undefined {
    const r = this.recorders.get(id);
    this.recorders.delete(id);
    return r;
  }

  /** Runs work after the current reply has gone out; settle() waits for it. */
  later(work: () => void): void {
    const p = new Promise<void>((resolve) =>
      setImmediate(() => {
        try {
          work();
        } finally {
          resolve();
        }
      }),
    );
    this.pendingLater.add(p);
    void p.finally(() => this.pendingLater.delete(p));
  }

  /** How many of a build's stores are still being written (told at build-end, which does not wait for them). */
  storesInFlight(buildId: string): number {
    return this.persisting.get(buildId) ?? 0;
  }

  /** Waits for the stores of finished lines. */
  async drain(): Promise<void> {
    await Promise.all([...this.pendingPersist]);
  }

  /** Waits for everything, later() work included. */
  async settle(): Promise<void> {
    await Promise.all([...this.pendingPersist, ...this.pendingLater]);
  }

  private count(buildId: string, name: string): void {
    this.global.add(name);
    this.buildCounters(buildId)?.add(name);
  }

  /** Counts work that may finish after its build did (uploads): the build's counters only while it runs. */
  countLate(buildId: string, name: string, n = 1): void {
    this.global.add(name, n);
    this.builds.get(buildId)?.add(name, n);
  }

  private serve(sock: Socket): void {
    this.active++;
    this.lastActivity = Date.now();
    const reader = new FrameReader();
    let pending: Pending | undefined;
    const send = (type: number, fields: Array<Buffer | string>) => {
      if (!sock.destroyed) sock.write(encodeFrame(type, fields));
    };
    sock.on('data', (chunk) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        this.log(`bad frame from shim: ${(err as Error).message}`);
        sock.destroy();
        return;
      }
      for (const f of frames) {
        if (f.type === MsgType.Lookup) this.onLookup(f, send, (p) => (pending = p));
        else if (f.type === MsgType.Done && pending) {
          this.onDone(pending, f, send);
          pending = undefined;
        } else if (f.type === CONTROL_REQUEST) this.onControl(f, sock);
        else {
          this.log(`unexpected message type ${f.type}`);
          sock.destroy();
        }
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      this.active--;
      this.lastActivity = Date.now();
      if (pending) {
        // The shim went away between MISS and DONE (killed, timed out).
        this.count(pending.buildId, 'not-stored:shim-gone');
        this.cache.ranUnseen();
        this.recordMiss(pending, nowUs(), -1, undefined, 'shim-gone');
      }
    });
  }

  private onLookup(f: Frame, send: (t: number, fields: Array<Buffer | string>) => void, setPending: (p: Pending) => void): void {
    const lookupUs = nowUs();
    const [version, buildIdB, cwdB, cmdB, ttyB, ...envB] = f.fields;
    // The shim's own start time, for the build record: not part of the environment.
    let startUs = lookupUs;
    const last = envB[envB.length - 1];
    if (last && last.subarray(0, START_FIELD.length).equals(START_FIELD)) {
      envB.pop();
      const t = Number(last.subarray(START_FIELD.length).toString());
      // Two clocks (the shim's CLOCK_REALTIME, Node's): never after the lookup.
      if (t > lookupUs - 3_600_000_000) startUs = Math.min(t, lookupUs);
    }
    const buildId = buildIdB?.toString() ?? '';
    if (version?.toString() !== PROTOCOL_VERSION || !cwdB || !cmdB || !ttyB) {
      send(MsgType.Pass, ['protocol-mismatch']);
      this.count(buildId, 'pass:protocol-mismatch');
      return;
    }
    const getenv = (name: string) => {
      const prefix = Buffer.from(`${name}=`);
      return envB.find((b) => b.subarray(0, prefix.length).equals(prefix))?.subarray(prefix.length).toString();
    };
    const roots = getenv('KBX_ROOTS')?.split(':').filter(Boolean) ?? [cwdB.toString()];
    // A line a shim ran itself may have rewritten files checked before it.
    if (this.unseen.ranSince(buildId)) this.cache.ranUnseen();
    const failed = (err: unknown) => {
      this.log(`lookup failed for '${cmdB.toString().slice(0, 200)}' in ${cwdB.toString()}: ${(err as Error).stack}`);
      send(MsgType.Pass, ['internal-error']);
      this.count(buildId, 'pass:internal-error');
    };
    try {
      // Values naming a build root are keyed by its role (root-names.ts): another checkout shares them.
      const command = cmdB.toString();
      // Every line is keyed without wrappers (wrappers.ts); a wrapped compile's output is the
      // same through any, and any other line's run that used them holds only with the same (wrapperEnv).
      const { envDigest, wrapperEnv } = this.envDigests.of(envB, this.cache.namesFor(roots));
      const wrapped = keyedWithoutWrappers(command);
      const req = { cwd: cwdB.toString(), command, tty: ttyB.toString(), envDigest, wrapperEnv: wrapped ? '' : wrapperEnv, timeEnv: this.envDigests.timeEnv(envDigest), shell: getenv('KBX_REAL_SHELL') || '/bin/sh' };
      const answer = (res: LookupResult) => {
        try {
          const p = this.answer(res, req, buildId, startUs, send, getenv);
          if (p) setPending(p);
        } catch (err) {
          failed(err);
        }
      };
      const res = this.cache.lookup(req, roots, buildId);
      // A local miss that went to the shared stores answers when they have.
      if (res instanceof Promise) res.then(answer, failed);
      else answer(res);
    } catch (err) {
      failed(err);
    }
  }

  private answer(
    res: LookupResult,
    req: LineRequest,
    buildId: string,
    startUs: number,
    send: (t: number, fields: Array<Buffer | string>) => void,
    getenv: (name: string) => string | undefined,
  ): Pending | undefined {
    if (res.kind === 'hit') {
      const endUs = nowUs(); // before the reply: the shim may end and make start the next line at once
      send(MsgType.Hit, [String(res.exit), res.stdout, res.stderr]);
      this.recordHit(buildId, startUs, endUs, req, res);
      this.count(buildId, 'hit');
      this.global.savedUs += res.savedUs;
      const c = this.buildCounters(buildId);
      if (c) c.savedUs += res.savedUs;
      return undefined;
    }
    if (res.kind === 'pass') {
      send(MsgType.Pass, [res.reason]);
      this.count(buildId, `pass:${res.reason}`);
      return undefined;
    }
    res.action.ignore = wrapperStateDirs(getenv);
    res.action.makeName = getenv('KBX_MAKE') || undefined;
    // A wrapped compile is keyed without the wrappers its environment names too; any other line keeps what they did.
    res.action.envWrappers = keyedWithoutWrappers(req.command) ? this.envDigests.wrappers(req.envDigest) : [];
    // For the input-changed check: the shim's start (its CLOCK_REALTIME, the clock of
    // file times), never after the lookup's wall clock.
    res.action.startUs = Math.min(startUs, res.action.startUs);
    send(MsgType.Miss, [res.action.id, res.action.traceLog]);
    this.count(buildId, 'miss');
    if (res.why.kind !== 'new-command') this.log(`miss (${res.whyText}): ${res.action.req.command.slice(0, 200)}`);
    return { action: res.action, buildId, startUs, env: req.envDigest, why: res.why };
  }

  /** Adds a hit to its build's record. */
  private recordHit(buildId: string, startUs: number, endUs: number, req: LineRequest, res: Extract<LookupResult, { kind: 'hit' }>): void {
    const rec = this.recorders.get(buildId);
    if (!rec) return;
    rec.add({
      kind: 'hit',
      startUs,
      endUs,
      exit: res.exit,
      cwd: req.cwd,
      command: req.command,
      env: rec.env(req.envDigest, () => this.envDigests.variables(req.envDigest)),
      inputs: this.cache.pathSets.contentPaths(res.set, res.names).map((p) => rec.path(p)),
      outputs: res.entry.outputs.map((o) => rec.path(o.path)),
      from: res.entry.buildId,
      savedUs: res.savedUs,
      weak: res.weak,
      strong: res.set.strong,
    });
  }

  /** Adds a finished (or abandoned) miss to its build's record. */
  private recordMiss(p: Pending, endUs: number, exit: number, observed: { inputs: string[]; outputs: string[] } | undefined, reason?: string, strong?: string, wrappers?: string[]): void {
    const rec = this.recorders.get(p.buildId);
    if (!rec) return;
    const line = {
      kind: 'miss' as const,
      startUs: p.startUs,
      endUs,
      exit,
      cwd: p.action.req.cwd,
      command: p.action.req.command,
      env: rec.env(p.env, () => this.envDigests.variables(p.env)),
      inputs: (observed?.inputs ?? []).map((x) => rec.path(x)),
      outputs: (observed?.outputs ?? []).map((x) => rec.path(x)),
      why: p.why,
      ...(reason ? { reason } : {}),
      ...(strong ? { weak: p.action.weak, strong } : {}),
      ...(wrappers?.length ? { wrappers } : {}),
    };
    rec.add(line);
  }

  private onDone(
    pending: Pending,
    f: Frame,
    send: (t: number, fields: Array<Buffer | string>) => void,
  ): void {
    const [id, status, stdout, stderr, elapsed] = f.fields;
    const doneUs = nowUs(); // the line's end: before the ACK lets make go on
    const { action, buildId } = pending;
    if (id?.toString() !== action.id || !status || !stdout || !stderr || !elapsed) {
      send(MsgType.Ack, []);
      this.count(buildId, 'not-stored:protocol-mismatch');
      this.recordMiss(pending, doneUs, -1, undefined, 'protocol-mismatch');
      return;
    }
    const st = status.toString();
    const exit = /^\d+$/.test(st) ? Number(st) : st.startsWith('sig:') ? 128 + Number(st.slice(4)) : -1;
    try {
      const res = this.cache.record(action, {
        status: status.toString(),
        stdout: Buffer.from(stdout),
        stderr: Buffer.from(stderr),
        elapsedUs: Number(elapsed.toString()),
      });
      send(MsgType.Ack, []);
      this.count(buildId, res.outcome === 'stored' ? 'stored' : `${res.outcome}:${res.reason?.split(':')[0]}`);
      // Which compiler wrapper ran each miss (distcc, icecc, ccache, sccache): kbx stats and the summary say.
      for (const w of res.wrappers ?? []) this.count(buildId, `miss-via:${w}`);
      this.recordMiss(pending, doneUs, exit, res.observed, res.outcome === 'stored' ? undefined : res.reason, res.strong, res.wrappers);
      if (res.outcome === 'uncacheable') this.log(`uncacheable (${res.reason}): ${action.req.command.slice(0, 300)}`);
      const p = res.persist.catch((err) => {
        this.log(`storing failed: ${(err as Error).stack}`);
        this.count(buildId, 'store-error');
      });
      this.pendingPersist.add(p);
      this.persisting.set(buildId, this.storesInFlight(buildId) + 1);
      void p.finally(() => {
        this.pendingPersist.delete(p);
        const left = this.storesInFlight(buildId) - 1;
        if (left > 0) this.persisting.set(buildId, left);
        else this.persisting.delete(buildId);
      });
    } catch (err) {
      send(MsgType.Ack, []);
      this.log(`record failed for '${action.req.command.slice(0, 200)}': ${(err as Error).stack}`);
      this.count(buildId, 'not-stored:internal-error');
      this.recordMiss(pending, doneUs, exit, undefined, 'internal-error');
    }
  }

  private onControl(f: Frame, sock: Socket): void {
    let reply: unknown;
    try {
      const req = JSON.parse(f.fields[0]?.toString() ?? '{}') as { cmd: string };
      reply = this.control(req);
    } catch (err) {
      reply = { error: (err as Error).message };
    }
    Promise.resolve(reply).then(
      (r) => sock.end(encodeFrame(CONTROL_REPLY, [JSON.stringify(r ?? {})])),
      (err: Error) => sock.end(encodeFrame(CONTROL_REPLY, [JSON.stringify({ error: err.message })])),
    );
  }
}
