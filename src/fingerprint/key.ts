// The cache key (DESIGN.md, "Cache keys: observed inputs"). Every field that
// enters a key is listed here; KEY_FORMAT changes whenever one does.
//
//   weak   = H(KEY_FORMAT, cwd, command text, tty flags and umask, H(environment that matters)),
//            each build root in them replaced by its role (root-names.ts), and
//            compiler wrappers (distcc, icecc, ccache, sccache) left out of the
//            command text and environment (wrappers.ts)
//   path set = sorted [kind, path, value] for every input the line observed
//              (a content value is the file's digest, or for an input a rule
//              values by the part its tools read, `part:…`: projection.ts),
//              a path under a build root named by its role (`@make/x.c`),
//              then the pseudo-inputs of a compile that names the time macros
//              (time-inputs.ts: the date, and mtimes), the host's or user's
//              identity for a line that prints it (identity-inputs.ts), and a
//              `root` entry for each root the line's outputs hold (line-cache.ts)
//   strong = H(weak, path set)
import { lstatSync, type Stats } from 'node:fs';
import { hashFields } from '../util/hash.js';
import type { FileState } from './file-state.js';
import type { InputKind } from '../observe/accesses.js';
import type { RootNames } from './root-names.js';
import { isWrapperVariable, stripWrapperValue, stripWrappers, stripWrappersInMakeflags, wrapperName, type WrapperName } from './wrappers.js';
import { PART_PREFIX, type LineProjections } from './projection.js';

// 3: pseudo-inputs for __DATE__/__TIMESTAMP__; entries stored by kbx-key-2
// hold none, so a compile using them must not find those. Also the shell
// that runs the line (KBX_REAL_SHELL, and its bytes as an input).
// 4: paths under a build root named by role, and `root` pseudo-inputs for a
// line whose outputs hold a root: a kbx-key-3 entry holds absolute paths only
// and was never checked for them.
// Not bumped for wrappers.ts: a text without wrapper words keys as before, and
// the key of a text with them is new (its old entries are never looked up).
// 5: MAKEFLAGS's `SHELL=<install>/kbx-shim` (kbx make's own override) keyed as
// `SHELL=kbx-shim`, so two machines with kbx installed at different paths
// share entries; a line whose outputs hold the shim's path is not stored.
// 6: kbx make's cmd_link_vmlinux override, which make also exports to every
// line, left out of the environment as it is out of MAKEFLAGS: it holds kbx's
// install path, so two installs shared no kernel line.
// 7: `who` pseudo-inputs for a line that prints the host's or the user's name
// (identity-inputs.ts): a kbx-key-6 entry of such a line holds none, and would
// restore another machine's names from a shared store. And the shim's umask
// in the tty field: a hit restores the stored run's modes. And MAKEFLAGS and
// MFLAGS without -w/--no-print-directory: `make -C dir` shares with `cd dir; make`.
// 8: `exec` pseudo-inputs, the execute bits of each program a line ran
// (exec-inputs.ts): a kbx-key-7 entry holds none, and would hit after
// `chmod -x` of a script the line runs, where plain make fails.
// 9: the same for paths whose execute permission a line asked about (`[ -x f ]`,
// access X_OK, a PATH candidate it could not run): the tracer logged no event
// at all for a denied access, so a kbx-key-8 entry may hold nothing of them.
// 10: an existence value `empty` for a regular file of size 0 (`[ -s f ]` sees
// it with a stat alone): a kbx-key-9 entry says `file` for it, and would hit
// after the file filled, where plain make takes the other branch. And
// `symlink>` before the type of what a symlink leads to (`[ -L f ]`): a
// kbx-key-9 entry said `file` for a symlink to a file and for a file.
export const KEY_FORMAT = 'kbx-key-10';

/** How the key names kbx's shim, which `kbx make` passes to make as SHELL=<install>/build/native/kbx-shell/sh. */
export const SHIM_NAME = 'kbx-shim';
// The shim's path under an install, now (kbx-shell/sh: src/native/build.ts says why) and before (kbx-shim): keyed alike.
const SHIM_PATHS = ['/kbx-shell/sh', '/kbx-shim'];

/**
 * Variables that decide how a compiler expands __DATE__, __TIME__ and
 * __TIMESTAMP__: always in the key (env_ignore cannot drop them), and handed
 * to the daemon with each line (LineRequest.timeEnv).
 */
export const TIME_VARIABLES = ['SOURCE_DATE_EPOCH', 'TZ', 'TZDIR'] as const;
export type TimeEnv = Partial<Record<(typeof TIME_VARIABLES)[number], string>>;

// Environment that differs between two runs of the same build without
// changing what a recipe line produces. KBX_* are kbx's own.
const VOLATILE_ENV = new Set([
  'MAKE_TERMOUT', 'MAKE_TERMERR', 'OLDPWD', 'PWD', 'SHLVL', '_', 'TERM', 'COLORTERM',
  'DISPLAY', 'WINDOWID', 'LS_COLORS', 'MAIL', 'TMUX', 'TMUX_PANE', 'STY', 'HISTFILE',
  'SSH_AUTH_SOCK', 'SSH_AGENT_PID', 'SSH_CLIENT', 'SSH_CONNECTION', 'SSH_TTY', 'DBUS_SESSION_BUS_ADDRESS',
  'XDG_SESSION_ID', 'XDG_RUNTIME_DIR', 'XDG_SESSION_TYPE', 'XDG_SESSION_CLASS', 'XDG_VTNR', 'XDG_SEAT',
  'GPG_AGENT_INFO', 'WINDOW', 'COLUMNS', 'LINES', 'LD_PRELOAD',
  // make's count of its re-executions after remaking an included makefile:
  // kbuild's first build after a config change restarts (auto.conf), the
  // next does not, and every `$(shell …)` parsed after the restart (make 4.3
  // hands them its environment) would miss.
  'MAKE_RESTARTS',
]);

/**
 * MAKEFLAGS without the jobserver and -j, which change from run to run but not
 * what a line makes, and without kbx's own cmd_link_vmlinux override (only the
 * vmlinux link reads it, and that line is never cached): turning the routing
 * on or off must not miss every line. Nor with -w/--print-directory (make -C
 * turns it on) or --no-print-directory: they change only what a sub-make says
 * on entering a directory, and a line that runs make is never cached; `make -C
 * linux` and `cd linux; make` share every entry.
 */
export function normalizeMakeflags(v: string): string {
  return v
    .replace(/(^| )cmd_link_vmlinux=(?:\\.|[^ \\])*/g, '')
    .split(' ')
    .filter((w) => !/^--jobserver-(auth|fds)=/.test(w) && !/^-j\d*$/.test(w) && !/^--(no-)?print-directory$/.test(w))
    // Where kbx is installed is not an input of the line (an output holding it is not stored).
    .map((w) => (w.startsWith('SHELL=') && SHIM_PATHS.some((s) => w.endsWith(s)) ? `SHELL=${SHIM_NAME}` : w))
    // The first word gathers single-letter flags ("rRj" with a bare -j, "w" under -C; in MFLAGS "-rw").
    .map((w, i) => (i === 0 && /^-?[A-Za-z]+$/.test(w) ? w.replace(/[jw]/g, '').replace(/^-$/, '') : w))
    .join(' ');
}

export interface LineRequest {
  cwd: string;
  command: string;
  tty: string;
  /** Digest of the environment that matters (envDigest). */
  envDigest: string;
  /** The line's TIME_VARIABLES; missing: none was set. */
  timeEnv?: TimeEnv;
  /** The shell the shim runs the line with (KBX_REAL_SHELL): its bytes are an input of every run. */
  shell?: string;
  /**
   * Digest of what the environment's wrapper words and variables add to the
   * key of a line that is not a wrapped compile ('' when nothing): its
   * weak key is taken without them, and a run that ran a compiler or a
   * wrapper holds only where this is the same (the `env` pseudo-input).
   */
  wrapperEnv?: string;
}

/**
 * The environment as the key holds it. `withoutWrappers`: the wrapper words
 * leave the values too (`CC=distcc gcc` keys as `CC=gcc`), and every
 * variable that steers a wrapper leaves the environment. Every line's weak key
 * is taken so (envDigest); what the wrappers change for a line that is not a
 * wrapped compile is its `env` pseudo-input (line-cache.ts).
 */
export function keyEnvironment(env: readonly string[], extraIgnore: readonly string[], withoutWrappers = false): string[] {
  const out: string[] = [];
  for (const entry of env) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    // kbx's own variables, less the shell that runs the line: /bin/sh and bash
    // give different outputs for the same line (echo '\\n', [[ ]]).
    if ((name.startsWith('KBX_') && name !== 'KBX_REAL_SHELL') || VOLATILE_ENV.has(name) || isWrapperVariable(name, withoutWrappers)) continue;
    // kbx's own link routing, exported by make as a command-line variable: see normalizeMakeflags.
    if (name === 'cmd_link_vmlinux') continue;
    if (extraIgnore.includes(name) && !(TIME_VARIABLES as readonly string[]).includes(name)) continue;
    // CC="distcc gcc" on make's command line reaches MAKEFLAGS and, exported by kbuild, CC itself.
    if (name === 'MAKEFLAGS' || name === 'MFLAGS') {
      const flags = normalizeMakeflags(entry.slice(eq + 1));
      out.push(`${name}=${withoutWrappers ? stripWrappersInMakeflags(flags) : flags}`);
    } else if (eq > 0) {
      const value = entry.slice(eq + 1);
      out.push(`${name}=${withoutWrappers ? stripWrapperValue(value) : value}`);
    }
    else out.push(entry);
  }
  return out.sort();
}

/** Whether a line is a wrapped compile (its text runs one: wrappers.ts), whose output no wrapper changes. */
export function keyedWithoutWrappers(command: string): boolean {
  return stripWrappers(command).wrappers.length > 0;
}

/** The key's digest of an environment; with `names`, each build root in a value replaced by its role. */
export function envDigest(env: readonly string[], extraIgnore: readonly string[], names?: RootNames, withoutWrappers = false): string {
  const vars = keyEnvironment(env, extraIgnore, withoutWrappers);
  return hashFields(names ? vars.map((v) => names.keyText(v)) : vars);
}

/**
 * envDigest for the daemon's hot path: thousands of lines of one build share
 * a handful of environments, so the normalised digest is remembered by a
 * digest of the raw bytes.
 */
export class EnvDigests {
  private memo = new Map<string, string>();
  private vars = new Map<string, string[]>();
  private times = new Map<string, TimeEnv>();
  private wrapperWords = new Map<string, WrapperName[]>();
  private wrapperEnvs = new Map<string, string>();

  constructor(private readonly extraIgnore: readonly string[]) {}

  /**
   * The environment's digest without wrappers (keyEnvironment), and the
   * digest of what they add ('' when nothing). `names`: the line's build
   * roots, which its raw environment names too (KBX_ROOTS), so the memo holds.
   */
  of(raw: readonly Buffer[], names?: RootNames): { envDigest: string; wrapperEnv: string } {
    const rawKey = hashFields(raw);
    let d = this.memo.get(rawKey);
    if (d === undefined) {
      const text = raw.map((b) => b.toString());
      const env = keyEnvironment(text, this.extraIgnore, true);
      d = hashFields(names ? env.map((v) => names.keyText(v)) : env);
      if (this.memo.size >= 4096) {
        this.memo.clear();
        this.vars.clear();
        this.times.clear();
        this.wrapperWords.clear();
        this.wrapperEnvs.clear();
      }
      this.memo.set(rawKey, d);
      this.vars.set(d, env);
      this.times.set(d, timeVariables(env));
      this.wrapperWords.set(d, strippedWrappers(text, env));
      // What the wrappers add: the entries keyed with them and not without.
      const without = new Set(env);
      const added = keyEnvironment(text, this.extraIgnore, false).filter((v) => !without.has(v));
      this.wrapperEnvs.set(rawKey, added.length ? hashFields(names ? added.map((v) => names.keyText(v)) : added) : '');
    }
    return { envDigest: d, wrapperEnv: this.wrapperEnvs.get(rawKey)! };
  }

  /** The variables behind a digest this object made (for build records). */
  variables(digest: string): string[] {
    return this.vars.get(digest) ?? [];
  }

  /** The wrappers whose words a digest this object made was taken without (strippedWrappers). */
  wrappers(digest: string): WrapperName[] {
    return this.wrapperWords.get(digest) ?? [];
  }

  /** The TIME_VARIABLES behind a digest this object made (every lookup asks: found once per environment). */
  timeEnv(digest: string): TimeEnv {
    return this.times.get(digest) ?? {};
  }
}

/** The wrappers whose words keyEnvironment took out of a value (`CC=distcc gcc`): the same digest holds `CC=gcc`. */
function strippedWrappers(raw: readonly string[], keyed: readonly string[]): WrapperName[] {
  const kept = new Set(keyed);
  const out = new Set<WrapperName>();
  for (const entry of raw) {
    if (kept.has(entry) || !entry.includes(' ')) continue;
    for (const word of entry.slice(entry.indexOf('=') + 1).split(/\\? /)) {
      const w = wrapperName(word);
      if (w) out.add(w);
    }
  }
  return [...out];
}

function timeVariables(env: readonly string[]): TimeEnv {
  const out: TimeEnv = {};
  for (const entry of env) {
    const eq = entry.indexOf('=');
    const name = eq > 0 ? TIME_VARIABLES.find((n) => n === entry.slice(0, eq)) : undefined;
    if (name) out[name] = entry.slice(eq + 1);
  }
  return out;
}

/** `names`: the line's build roots; without, paths count as spelled (a test's key). */
export function weakFingerprint(req: LineRequest, names?: RootNames): string {
  const text = (t: string) => (names ? names.keyText(t) : t);
  return hashFields([KEY_FORMAT, text(req.cwd), text(stripWrappers(req.command).text), req.tty, req.envDigest]);
}

/**
 * c and e: a file's content or existence (accesses.ts). Pseudo-inputs
 * (time-inputs.ts): `date`, p the time zone, v its date; `mtime`, p a file,
 * v its mtime in whole seconds. `root`: p a role (`@make`), v the root's
 * absolute path(s) (root-names.ts), for a line whose outputs hold it.
 * `who`: p `host` or `user`, v a digest of who that is (identity-inputs.ts).
 * `env`: p `wrappers`, v LineRequest.wrapperEnv, for a line that is not a
 * wrapped compile and ran a compiler or a wrapper (line-cache.ts).
 * `exec`: p a program the line executed, v whether it may be (exec-inputs.ts).
 */
export type EntryKind = InputKind | 'date' | 'mtime' | 'root' | 'who' | 'env' | 'exec';

export interface PathEntry {
  k: EntryKind;
  p: string;
  v: string;
}

export function strongFingerprint(weak: string, entries: readonly PathEntry[]): string {
  const fields: string[] = [weak];
  for (const e of entries) fields.push(e.k, e.p, e.v);
  return hashFields(fields);
}

/**
 * The value of an existence entry for a probe of a file the line then replaced
 * whole (accesses.ts, replacers.ts): it holds while the path is absent or a
 * regular file of one link, whatever its bytes, as the line's tools unlink
 * such a file before writing theirs. Not a symlink or a hard link (a truncating
 * writer would write through them), nor a directory.
 */
export const ABSENT_OR_FILE = 'absent|file';

/**
 * The path's lstat now, never cached: 'absent' when nothing is there (ENOENT,
 * ENOTDIR), undefined when it cannot be looked at (neither value then holds).
 */
export function lstatNow(path: string): Stats | 'absent' | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'absent' : undefined;
  }
}

/** Whether the path is absent or a regular file with one link: looked at now, never cached. */
export function replaceableNow(path: string): boolean {
  const st = lstatNow(path);
  return st === 'absent' || (st !== undefined && st.isFile() && st.nlink === 1);
}

/**
 * The value of a content entry for a file the line created by its first access
 * to it (an open with O_CREAT and without O_TRUNC: accesses.ts), with the
 * permission bits the line left on it: `absent|empty:644`. It holds while the
 * path is absent, or an empty regular file of one link with those bits, which
 * that open treats alike (kbuild's `touch $@` stamps, rerun over the stamp a
 * build before left). Not a symlink or a hard link (the open writes through
 * them, a restore would replace them), nor other bits (the open keeps the old
 * file's, a restore would set the line's).
 */
export const ABSENT_OR_EMPTY = 'absent|empty:';

/** The ABSENT_OR_EMPTY value for a file the line left with these permission bits. */
export function absentOrEmpty(mode: number): string {
  return `${ABSENT_OR_EMPTY}${(mode & 0o777).toString(8)}`;
}

/** Whether the path is absent, or an empty regular file of one link with the bits `stored` names: looked at now, never cached. */
function absentOrEmptyNow(path: string, stored: string): boolean {
  const st = lstatNow(path);
  return st === 'absent' || (st !== undefined && st.isFile() && st.size === 0 && st.nlink === 1 && absentOrEmpty(st.mode) === stored);
}

/**
 * The value a file entry (c or e) has now, for comparing with its stored
 * value; pseudo-inputs: time-inputs.ts. A stored `part:` value is matched by
 * the projection the line's rule names for the path (`parts`), never by one
 * the store names.
 */
export function currentValue(state: FileState, kind: InputKind, path: string, stored?: string, parts?: LineProjections): string {
  if (kind === 'e' && stored === ABSENT_OR_FILE && replaceableNow(path)) return ABSENT_OR_FILE;
  if (kind === 'c' && stored?.startsWith(ABSENT_OR_EMPTY) && absentOrEmptyNow(path, stored)) return stored;
  if (kind === 'c' && parts && stored?.startsWith(PART_PREFIX)) {
    const proj = parts.get(path);
    if (proj) return state.projected(path, proj);
  }
  return kind === 'c' ? state.content(path) : state.existence(path);
}

export interface Mismatch {
  entry: PathEntry;
  now: string;
}
