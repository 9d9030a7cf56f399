// Turns a recipe line's trace events into what the cache needs: the inputs it
// depended on (read before written), the outputs it left, the files it
// deleted, or the reason it cannot be cached. Pure: no file system access.
import { basename, dirname, resolve } from 'node:path';
import { absentBefore, type PreStat, type TraceEvent } from './trace-log.js';
import { blindUntil } from './replacers.js';
import { wrapperName } from '../fingerprint/wrappers.js';

/** c: the content matters; e: only whether it exists (and as what). */
export type InputKind = 'c' | 'e';

export interface InputSpec {
  kind: InputKind;
  path: string;
  /**
   * Set when the line changed, replaced or removed the file after reading it:
   * its stat before that first change (the version whose content the line read).
   */
  pre?: PreStat;
  /** The line's first access found the path absent. */
  startAbsent?: true;
  /**
   * An existence probe of a path the line then replaced whole: keyed as
   * "absent or a file" (line-cache.ts), not as what the probe saw. Set only
   * for lines that replacers.ts judges blind to what was there.
   */
  replaced?: true;
  /**
   * The line's first access to the path created it: an open with O_CREAT and
   * without O_TRUNC (`touch`, `>>`), the one `m` that succeeds on an absent
   * path. Such an open finds an empty file as it finds none, so the input is
   * keyed as "absent or empty" (key.ts), not as absent.
   */
  createdEmpty?: true;
}

export interface Accesses {
  inputs: InputSpec[];
  /** Paths the line wrote (files, directories, symlinks); the daemon keeps those that exist at the end. */
  written: string[];
  /** Paths whose last access removed or renamed them away. */
  deleted: string[];
  /**
   * Paths the line wrote and then itself removed or renamed away (later
   * accesses, such as `rm -f` probing the path, may follow). A written path
   * missing at the end and not here was removed by something else.
   */
  gone: string[];
  /** Programs handed to exec*: checked for static binaries, which the tracer cannot see into. */
  execed: string[];
  /**
   * Paths whose execute permission the line asked about without running them
   * (`X`: `[ -x f ]`, a PATH search candidate it could not run): keyed, as
   * programs it ran are, with their execute bits (exec-inputs.ts).
   */
  execProbed: string[];
  /** Programs (executables' names) that asked uname or gethostname for the machine's identity (`q host`). */
  askedHost?: string[];
  /** Why this line must not be cached; undefined when it may be. */
  uncacheable?: string;
}

export interface ClassifyOptions {
  /** Prefixes whose accesses are no part of any key (ccache's own cache, for example). */
  ignorePrefixes: string[];
  uncacheablePrograms: string[];
  /** The file name of the make that runs the build (KBX_MAKE), besides make and gmake. */
  makeName?: string;
  /** The line's command text; without it no probe is ever keyed as replaced. */
  command?: string;
}

// GNU make under its usual names: make, gmake, make-4.4, gmake-4.3.
const MAKE_PROGRAM = /^g?make(-[\d.]+)?$/;

const READS = new Set(['r', 'x', 'm', 'n']);
const PROBES = new Set(['s', 'a', 'X']);
const WRITES = new Set(['w', 'm', 'N', 'k', 'l']);

// Kernel-provided files every process may touch without making its output depend on the machine.
const HARMLESS = [
  // Not /dev/urandom: a line that reads it (a randstruct seed) must run every time.
  /^\/dev\/(null|zero|full|fd\/.*|std(in|out|err))$/,
  /^\/proc\/(self|thread-self|\d+)\//,
  /^\/sys\/devices\/system\/cpu\/(online|possible|present)$/,
  /^\/proc\/sys\/(kernel\/ngroups_max|vm\/overcommit_memory)$/,
  /^\/proc\/filesystems$/,
];

type Verdict = 'ignore' | 'track' | string;

function judgePath(p: string, op: string, opts: ClassifyOptions): Verdict {
  if (opts.ignorePrefixes.some((pre) => p === pre || p.startsWith(pre.endsWith('/') ? pre : pre + '/'))) return 'ignore';
  if (p.startsWith('/dev/') || p.startsWith('/proc/') || p.startsWith('/sys/')) {
    if (HARMLESS.some((re) => re.test(p))) return 'ignore';
    // Probing whether such a path exists (gcc looks for /dev/null.gch) is an
    // ordinary existence input; reading or writing one is not.
    if (PROBES.has(op)) return 'track';
    return p === '/dev/tty' ? 'uses-terminal' : `reads-${p}`;
  }
  return 'track';
}

interface PathHistory {
  first: TraceEvent;
  /** The stat carried by the first change to the path: the version the line had read. */
  pre?: PreStat;
  /** The first change to the path (w m n N d k l), and its index in the trace. */
  firstChange?: TraceEvent;
  firstChangeAt: number;
  /** The line made a directory or symlink there. */
  madeDirOrLink: boolean;
  readBeforeWrite: boolean;
  wrote: boolean;
  /** Removed or renamed away since its last write. */
  goneAfterWrite: boolean;
  changedAfterRead: boolean;
  lastOp: string;
}

export function classifyAccesses(events: TraceEvent[], bad: string[], opts: ClassifyOptions): Accesses {
  const result: Accesses = { inputs: [], written: [], deleted: [], gone: [], execed: [], execProbed: [] };
  if (bad.length) return { ...result, uncacheable: 'trace-corrupt' };
  const paths = new Map<string, PathHistory>();
  const execed = new Set<string>();
  const execProbed = new Set<string>();

  for (const [i, ev] of events.entries()) {
    if (ev.op === 'i') return { ...result, uncacheable: 'reads-stdin' };
    if (ev.op === '!') return { ...result, uncacheable: `untraceable: ${ev.path}` };
    if (ev.op === 'f') continue; // looked at by unkeyedFailure only
    if (ev.op === 'q') {
      const net = networkUser(ev.path);
      if (net !== undefined) return { ...result, uncacheable: `network: ${net}` };
      if (ev.path.startsWith('host ')) (result.askedHost ??= []).push(ev.path.slice(5));
      continue;
    }
    const p = ev.path;
    const verdict = judgePath(resolve(p), ev.op, opts);
    if (verdict === 'ignore') continue;
    if (verdict !== 'track') return { ...result, uncacheable: verdict };
    if (ev.op === 'e') {
      execed.add(p);
      continue;
    }
    if (ev.op === 'X') execProbed.add(p); // and a probe of its existence, below
    if (ev.op === 'x') {
      const base = p.slice(p.lastIndexOf('/') + 1);
      // A line that ran make (a script running $MAKE, on a `+` line the shim
      // sent to the daemon) made whatever its sub-make decided, from files
      // and timestamps no key holds: it runs every time, jobserver and all.
      if (MAKE_PROGRAM.test(base) || base === opts.makeName) return { ...result, uncacheable: 'runs-make' };
      if (opts.uncacheablePrograms.includes(base)) return { ...result, uncacheable: `runs-${base}` };
    }
    let h = paths.get(p);
    if (!h) {
      h = { first: ev, readBeforeWrite: false, wrote: false, goneAfterWrite: false, changedAfterRead: false, madeDirOrLink: false, firstChangeAt: -1, lastOp: ev.op };
      paths.set(p, h);
    }
    if (READS.has(ev.op) && !h.wrote) h.readBeforeWrite = true;
    if ((WRITES.has(ev.op) || ev.op === 'd' || ev.op === 'n') && !h.wrote && !h.changedAfterRead && h.pre === undefined) {
      // The first change to the path (m n N w d carry a stat; k and l, which
      // only succeed on an absent path, do not). If the line had read the file,
      // the content it depended on is gone and is known only through this stat.
      // The stat alone makes no input: a path first written is an output only.
      if (ev.pre) h.pre = ev.pre;
      else if (h.readBeforeWrite) h.changedAfterRead = true;
    }
    if ((WRITES.has(ev.op) || ev.op === 'd' || ev.op === 'n') && !h.firstChange) {
      h.firstChange = ev;
      h.firstChangeAt = i;
    }
    if (ev.op === 'k' || ev.op === 'l') h.madeDirOrLink = true;
    if (WRITES.has(ev.op)) {
      h.wrote = true;
      h.goneAfterWrite = false;
    }
    if ((ev.op === 'd' || ev.op === 'n') && h.wrote) h.goneAfterWrite = true;
    h.lastOp = ev.op;
  }

  let blind: number | undefined; // judged once, only if some probe needs it
  for (const [p, h] of paths) {
    const firstOp = h.first.op;
    if (h.readBeforeWrite || PROBES.has(firstOp)) {
      if (h.changedAfterRead) return { ...result, uncacheable: `modifies-input: ${p}` };
      const spec: InputSpec = { kind: h.readBeforeWrite ? 'c' : 'e', path: p };
      if (h.pre && h.readBeforeWrite) spec.pre = h.pre; // a probe's key is existence only
      if (firstOp === 'm' && h.first.pre && absentBefore(h.first.pre)) spec.createdEmpty = true;
      if (firstOp === 'a') spec.startAbsent = true;
      if (!h.readBeforeWrite && replacedWhole(h) && h.firstChangeAt < (blind ??= opts.command === undefined ? -1 : blindUntil(events, opts.command))) {
        spec.replaced = true;
      }
      result.inputs.push(spec);
    }
    if (h.wrote) result.written.push(p);
    if (h.goneAfterWrite) result.gone.push(p);
    if (h.lastOp === 'd' || h.lastOp === 'n') result.deleted.push(p);
  }
  result.execed = [...execed];
  result.execProbed = [...execProbed];
  result.inputs.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return result;
}

/**
 * The program of a `q net <program>` event whose connection makes the line
 * uncacheable: what a server answers is no input kbx can key. Not a compiler
 * wrapper's (distcc, icecc, ccache, sccache): it talks to its farm or its
 * cache and leaves the output a local compile makes.
 */
function networkUser(what: string): string | undefined {
  if (!what.startsWith('net ')) return undefined;
  const program = what.slice(4);
  return wrapperName(program) === undefined ? program : undefined;
}

/**
 * For a line that exited non-zero: what in its trace may have made it fail
 * that no key holds, or undefined. A change to any path but /dev/null, even
 * one no key looks at (a temporary, ccache's cache): a full disk or a
 * read-only file system fails a write. Any access to a path no key holds
 * (an ignored prefix, /proc/self, /sys) but /dev/null: what made the line
 * fail may be there. An `f` event: a call that failed with EACCES, EMFILE,
 * EIO..., a failed fork, a child killed by a signal.
 */
export function unkeyedFailure(events: readonly TraceEvent[], opts: ClassifyOptions): string | undefined {
  for (const ev of events) {
    if (ev.op === 'f') return ev.path;
    if (ev.op === 'q') {
      if (ev.path.startsWith('net ')) return `talked to the network (${ev.path.slice(4)})`;
      continue;
    }
    if (ev.op === 'i' || ev.op === '!' || ev.op === 'e') continue; // `i` and `!` make the line uncacheable anyway
    const p = resolve(ev.path);
    if (p === '/dev/null') continue;
    if (WRITES.has(ev.op) || ev.op === 'd' || ev.op === 'n') return `changed ${p}`;
    if (judgePath(p, ev.op, opts) !== 'track') return `read ${p}, which no key holds`;
  }
  return undefined;
}

/**
 * The line removed or renamed over what was at the path, or created it where
 * nothing was, then left a file there of its own making: the old file's bytes,
 * mode and links are gone whatever they were. Not a truncating open of an
 * existing file (`w` with a stat: cp, `>`), which keeps its inode, mode and
 * links and writes through a symlink; not a directory (k) or symlink (l).
 */
function replacedWhole(h: PathHistory): boolean {
  const c = h.firstChange;
  if (!c || !h.wrote || h.goneAfterWrite || h.madeDirOrLink || h.lastOp === 'd' || h.lastOp === 'n') return false;
  const created = c.op === 'w' && c.pre !== undefined && absentBefore(c.pre);
  return created || c.op === 'd' || c.op === 'N';
}

/**
 * Paths whose last change by the line was a rename (or link) onto them: a
 * directory among them came with everything in it, written under other names.
 */
export function renameDestinations(events: TraceEvent[]): Set<string> {
  const last = new Map<string, string>();
  for (const ev of events) if (WRITES.has(ev.op) || ev.op === 'd' || ev.op === 'n') last.set(ev.path, ev.op);
  return new Set([...last].filter(([, op]) => op === 'N').map(([p]) => p));
}

/**
 * The entries the line created, removed or replaced, by directory (resolved)
 * and name, each with whether it existed before the line: its first event
 * says so. With them, a listing read after the line changed it is valued as
 * it was when the line started.
 */
export function entriesChanged(events: TraceEvent[]): Map<string, Map<string, boolean>> {
  const first = new Map<string, TraceEvent>();
  const changed = new Set<string>();
  for (const ev of events) {
    if (ev.op === 'i' || ev.op === '!' || ev.op === 'f' || ev.op === 'q' || ev.op === 'e') continue; // e: logged before an exec that may fail
    if (!first.has(ev.path)) first.set(ev.path, ev);
    if (WRITES.has(ev.op) || ev.op === 'd' || ev.op === 'n') changed.add(ev.path);
  }
  const byDir = new Map<string, Map<string, boolean>>();
  for (const p of changed) {
    const ev = first.get(p)!;
    const abs = resolve(p);
    const existed = ev.op === 'a' || ev.op === 'k' || ev.op === 'l' ? false : ev.pre ? !absentBefore(ev.pre) : true;
    let names = byDir.get(dirname(abs));
    if (!names) byDir.set(dirname(abs), (names = new Map()));
    names.set(basename(abs), existed);
  }
  return byDir;
}
