// One registry of every setting: name, type, default, environment variable and
// documentation. Values come from (lowest to highest) the default, the file
// $KBX_DIR/kbx.conf (`key = value` lines), and KBX_<KEY> variables.
// `kbx config` shows each value and where it came from.
import { accessSync, constants, readFileSync, readlinkSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { KbxError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import type { RemoteSpec } from '../store/remote/backend.js';
import { maskSecrets, parseRemoteStorage } from '../store/remote/spec.js';

type Kind = 'size' | 'int' | 'list' | 'bool' | 'string';

interface KeyDef {
  kind: Kind;
  default: string;
  doc: string;
}

export const CONFIG_KEYS = {
  max_size: { kind: 'size', default: '5G', doc: 'Size limit of the local store; least recently used entries are evicted beyond it (suffixes K, M, G).' },
  idle_timeout: { kind: 'int', default: '900', doc: 'Seconds the daemon stays up with no build talking to it.' },
  shim_timeout_ms: { kind: 'int', default: '60000', doc: 'How long a recipe line waits for the daemon before running without the cache.' },
  compression_level: { kind: 'int', default: '1', doc: 'zlib level (0-9) for stored blobs; 1 is fast and already halves object files.' },
  ignore_paths: { kind: 'list', default: '', doc: 'Extra path prefixes whose reads and writes are not part of any key (ccache and distcc directories are always ignored).' },
  env_ignore: { kind: 'list', default: '', doc: 'Extra environment variable names left out of the key.' },
  uncacheable_programs: { kind: 'list', default: 'date', doc: 'Programs (basenames) whose output depends on more than their inputs; a line that runs one is never cached.' },
  path_sets_per_command: { kind: 'int', default: '16', doc: 'How many different input sets to remember for one command line.' },
  real_shell: { kind: 'string', default: '/bin/sh', doc: "The shell that runs recipe lines (kbx's shim takes make's SHELL, so a Makefile's own SHELL setting is not used: set this for bash-only recipes)." },
  builds_kept: { kind: 'int', default: '20', doc: 'How many recorded builds (for kbx steps, explain, trace and report) to keep; 0 records none.' },
  progress: { kind: 'string', default: 'auto', doc: "Progress display of kbx make: auto (a status line on a terminal, none otherwise), tty, plain (a line every few seconds) or off." },
  progress_interval: { kind: 'int', default: '10', doc: 'Seconds between progress lines in plain mode.' },
  remote_storage: {
    kind: 'string',
    default: '',
    doc: "Shared stores asked on a local miss and filled with new entries, as ccache writes it: space-separated 'URL|attr|attr=value', e.g. 'http://cache:8080/kbx|read-only'. Attributes: read-only, connect-timeout, operation-timeout (ms), shards=a,b (with '*' in the URL), password-file=/path.",
  },
  link_vmlinux: { kind: 'bool', default: 'true', doc: "Route Linux's scripts/link-vmlinux.sh through kbx link-vmlinux (one link instead of three); false runs the tree's script." },
  // Off by default: it saves 1-1.5 s after make clean or a touched header, but costs the
  // edit loop (touch fs/ioctl.c: 4.95 s on, 3.34 s off, plain 5.72 s) and a no-op (3.17 s on,
  // 2.56 s off) on tinyconfig: the edit loop is what users run most, and ccache's is ~0.8x plain.
  replay: { kind: 'bool', default: 'false', doc: "Before make runs, restore the outputs of the last build of the same goals whose inputs still hold (ARCHITECTURE.md, Replay); true turns it on, --no-replay turns it off for one build." },
} satisfies Record<string, KeyDef>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

export interface ConfigValue {
  raw: string;
  origin: 'default' | 'file' | 'environment';
}

export interface Config {
  dir: string;
  values: Record<ConfigKey, ConfigValue>;
  maxSize: number;
  idleTimeoutSec: number;
  shimTimeoutMs: number;
  compressionLevel: number;
  ignorePaths: string[];
  envIgnore: string[];
  uncacheablePrograms: string[];
  pathSetsPerCommand: number;
  realShell: string;
  buildsKept: number;
  progress: ProgressMode;
  progressIntervalSec: number;
  linkVmlinux: boolean;
  replay: boolean;
  /** remote_storage, parsed (secrets included: print only .display). */
  remotes: RemoteSpec[];
}

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'off';
export const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'tty', 'plain', 'off'];

export function kbxDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KBX_DIR) return resolve(env.KBX_DIR);
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cacheHome, 'kbx');
}

function envName(key: string): string {
  return `KBX_${key.toUpperCase()}`;
}

export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$/i.exec(text);
  if (!m) return undefined;
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2]!.toUpperCase()]!;
  return Math.floor(Number(m[1]) * mult);
}

function validate(key: ConfigKey, v: ConfigValue, where: string): void {
  const def: KeyDef = CONFIG_KEYS[key];
  const bad = (what: string) =>
    new KbxError('KBX_BAD_CONFIG', `${where}: ${key} = '${v.raw}' is not ${what}`, `fix or remove it; 'kbx config' lists every key`);
  if (def.kind === 'size' && parseSize(v.raw) === undefined) throw bad('a size such as 500M or 5G');
  if (def.kind === 'int' && !/^\d+$/.test(v.raw.trim())) throw bad('a whole number');
  if (def.kind === 'bool' && !/^(true|false|1|0|yes|no)$/i.test(v.raw.trim())) throw bad('true or false');
  if (key === 'progress' && !(PROGRESS_MODES as string[]).includes(v.raw.trim())) throw bad(`one of ${PROGRESS_MODES.join(', ')}`);
  if (key === 'remote_storage') {
    try {
      parseRemoteStorage(v.raw);
    } catch (err) {
      if (err instanceof KbxError) throw new KbxError(err.code, `${where}: ${err.message}`, err.hint);
      throw err;
    }
  }
  if (key === 'real_shell' && !isExecutableFile(v.raw.trim())) throw bad('the absolute path of an executable shell, such as /bin/sh or /bin/bash');
}

function isExecutableFile(p: string): boolean {
  if (!isAbsolute(p)) return false;
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function splitList(raw: string): string[] {
  return raw
    .split(/[\s,:]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Parses a kbx.conf text; throws KbxError naming the file and line for anything malformed. */
export function parseConfigFile(text: string, file: string): Map<ConfigKey, string> {
  const out = new Map<ConfigKey, string>();
  text.split('\n').forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(t);
    if (!m) throw new KbxError('KBX_BAD_CONFIG', `${file}:${i + 1}: expected 'key = value', got '${t}'`);
    if (!(m[1]! in CONFIG_KEYS))
      throw new KbxError('KBX_BAD_CONFIG', `${file}:${i + 1}: unknown key '${m[1]}'`, `known keys: ${Object.keys(CONFIG_KEYS).join(', ')}`);
    out.set(m[1] as ConfigKey, m[2]!);
  });
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dir = kbxDir(env);
  const file = join(dir, 'kbx.conf');
  let fromFile = new Map<ConfigKey, string>();
  try {
    fromFile = parseConfigFile(readFileSync(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const values = {} as Record<ConfigKey, ConfigValue>;
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    const e = env[envName(key)];
    let v: ConfigValue;
    let where: string;
    if (e !== undefined) {
      v = { raw: e, origin: 'environment' };
      where = envName(key);
    } else if (fromFile.has(key)) {
      v = { raw: fromFile.get(key)!, origin: 'file' };
      where = file;
    } else {
      v = { raw: CONFIG_KEYS[key].default, origin: 'default' };
      where = 'default';
    }
    validate(key, v, where);
    values[key] = v;
  }
  const int = (k: ConfigKey) => Number(values[k].raw.trim());
  return {
    dir,
    values,
    maxSize: parseSize(values.max_size.raw)!,
    idleTimeoutSec: int('idle_timeout'),
    shimTimeoutMs: int('shim_timeout_ms'),
    compressionLevel: Math.min(9, int('compression_level')),
    ignorePaths: splitList(values.ignore_paths.raw).map((p) => resolve(p)),
    envIgnore: splitList(values.env_ignore.raw),
    uncacheablePrograms: splitList(values.uncacheable_programs.raw),
    pathSetsPerCommand: Math.max(1, int('path_sets_per_command')),
    realShell: values.real_shell.raw.trim(),
    buildsKept: int('builds_kept'),
    progress: values.progress.raw.trim() as ProgressMode,
    progressIntervalSec: Math.max(1, int('progress_interval')),
    linkVmlinux: /^(true|1|yes)$/i.test(values.link_vmlinux.raw.trim()),
    replay: /^(true|1|yes)$/i.test(values.replay.raw.trim()),
    remotes: parseRemoteStorage(values.remote_storage.raw),
  };
}

/**
 * Where ccache, distcc and icecc keep their own state, for the environment a recipe
 * line runs in: their reads and writes there are bookkeeping, not inputs or
 * outputs of the line (the compiler's real inputs are traced as usual).
 */
export function wrapperStateDirs(getenv: (name: string) => string | undefined): string[] {
  const home = getenv('HOME') || homedir();
  return [
    getenv('CCACHE_DIR') || join(home, '.cache', 'ccache'),
    join(home, '.ccache'),
    getenv('DISTCC_DIR') || join(home, '.distcc'),
    // icecc's lock of local compile slots (and its environment cache), /tmp/.icecream-<user>.
    `/tmp/.icecream-${getenv('USER') || getenv('LOGNAME') || userInfo().username}`,
  ].map((p) => resolve(p));
}

export function describeConfig(cfg: Config): string {
  const lines = [`dir = ${cfg.dir}  (${process.env.KBX_DIR ? 'KBX_DIR' : 'default'})`];
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    const v = cfg.values[key];
    lines.push(`${key} = ${key === 'remote_storage' ? maskSecrets(v.raw) : v.raw}  (${v.origin === 'environment' ? envName(key) : v.origin})`);
  }
  return lines.join('\n');
}

// Settings only the CLI reads: changing them must not restart the daemon.
const CLI_ONLY: ReadonlySet<ConfigKey> = new Set(['progress', 'progress_interval', 'link_vmlinux', 'replay']);

/**
 * A digest of every setting the daemon acts on. The daemon reads its settings
 * once, when it starts; a CLI whose settings (kbx.conf or KBX_* variables)
 * differ from the running daemon's replaces it, so a changed ignore_paths or
 * max_size takes effect at the next build instead of at the next idle exit.
 * The daemon's namespaces are part of it: a daemon values files, programs and
 * the host's name as it sees them, so a build in another container or
 * `unshare` sharing the store directory gets a daemon of its own view.
 */
export function configId(cfg: Config): string {
  const keys = (Object.keys(cfg.values) as ConfigKey[]).filter((k) => !CLI_ONLY.has(k)).sort();
  return sha256(JSON.stringify([cfg.dir, namespaces(), ...keys.map((k) => [k, cfg.values[k].raw])])).slice(0, 16);
}

/** The mount and UTS namespaces this process is in (`mnt:[4026531841]`), or '' where /proc cannot say. */
function namespaces(): string {
  return ['mnt', 'uts'].map((ns) => {
    try {
      return readlinkSync(`/proc/self/ns/${ns}`);
    } catch {
      return '';
    }
  }).join(' ');
}
