// `remote_storage` as ccache writes it: space-separated items, each
// `url|attr|attr=value…`. Parsing is pure apart from reading a password-file;
// every mistake is a KbxError naming the item and what to write instead, and
// no message, display string or log ever holds a password.
import { readFileSync } from 'node:fs';
import { KbxError } from '../../util/errors.js';
import type { RemoteSpec } from './backend.js';
import { redisTarget } from './redis-target.js';

// ccache waits 100 ms for a connect, but only one compile pays when it gives
// up; here the first timeout takes the store out for the whole build, so a
// slow link gets longer.
export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;

/** Attributes every backend knows, and what each takes. */
const ATTRS: Record<string, { value: 'none' | 'bool' | 'ms' | 'list' | 'file'; schemes?: string[] }> = {
  'read-only': { value: 'bool' },
  'connect-timeout': { value: 'ms' },
  'operation-timeout': { value: 'ms' },
  shards: { value: 'list' },
  'password-file': { value: 'file' },
  cluster: { value: 'bool', schemes: ['redis', 'rediss'] },
};

const SCHEMES = ['http', 'https', 'redis', 'rediss'];

const HINT = "write remote_storage = URL|attr|attr=value …, e.g. 'http://cache:8080/kbx|read-only|operation-timeout=5000'";

function bad(item: string, why: string, hint = HINT): KbxError {
  return new KbxError('KBX_BAD_REMOTE', `remote_storage item '${maskSecrets(item)}': ${why}`, hint);
}

/** The text with every URL password replaced by `***` (for `kbx config`, logs and errors). */
export function maskSecrets(text: string): string {
  // Up to the last '@' of the authority, as URL parsers read it: a password may hold an unencoded '@'.
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/@|:]*:)[^\s/|]*@/gi, '$1***@');
}

function readPassword(item: string, file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw bad(item, `cannot read password-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return text.replace(/\r?\n$/, '');
}

function parseItem(item: string): RemoteSpec {
  const [urlText, ...attrTexts] = item.split('|');
  const attrs = new Map<string, string>();
  for (const a of attrTexts) {
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    const value = eq < 0 ? '' : a.slice(eq + 1);
    const def = ATTRS[name];
    if (!def) throw bad(item, `unknown attribute '${name}'`, `known attributes: ${Object.keys(ATTRS).join(', ')}`);
    if (attrs.has(name)) throw bad(item, `attribute '${name}' given twice`);
    if (def.value === 'bool' && !/^(|true|false)$/.test(value)) throw bad(item, `${name}=${value}: write '${name}' or '${name}=false'`);
    if (def.value === 'ms' && !/^[1-9]\d{0,6}$/.test(value)) throw bad(item, `${name}=${value}: write a number of milliseconds, e.g. ${name}=500`);
    if (def.value === 'list' && !/^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$/.test(value)) throw bad(item, `${name}=${value}: write names separated by commas, e.g. shards=a,b,c`);
    if (def.value === 'file' && !value.startsWith('/')) throw bad(item, `${name}=${value}: write the absolute path of a file holding the password`);
    attrs.set(name, value);
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(urlText ?? '')?.[1]?.toLowerCase();
  if (!scheme) throw bad(item, 'not a URL (no scheme://)');
  if (!SCHEMES.includes(scheme)) throw bad(item, `unknown scheme '${scheme}:'`, `use one of ${SCHEMES.map((s) => s + '://').join(', ')}`);
  for (const [name] of attrs) {
    const only = ATTRS[name]!.schemes;
    if (only && !only.includes(scheme)) throw bad(item, `attribute '${name}' is for ${only.join('/')} URLs only`);
  }
  const shards = attrs.has('shards') ? attrs.get('shards')!.split(',') : [];
  const star = urlText!.includes('*');
  if (star && !shards.length) throw bad(item, "'*' in the URL needs shards=a,b,… naming what replaces it");
  if (!star && shards.length) throw bad(item, "shards= needs a '*' in the URL where each shard's name goes");
  let url: URL;
  try {
    // Checked with the first shard's name in place of '*': the template itself is kept.
    new URL(urlText!.replaceAll('*', shards[0] ?? ''));
    url = new URL(urlText!);
  } catch {
    throw bad(item, 'not a valid URL');
  }
  if (url.search || url.hash) throw bad(item, 'a URL with ?query or #fragment is not supported');
  if (attrs.has('password-file')) {
    if (url.password) throw bad(item, 'a password in the URL and a password-file: give one');
    if (!url.username) url.username = 'kbx';
    url.password = encodeURIComponent(readPassword(item, attrs.get('password-file')!));
  }
  const display = url.password ? maskSecrets(url.href) : url.href;
  const flag = (name: string) => attrs.has(name) && attrs.get(name) !== 'false';
  const ms = (name: string, dflt: number) => (attrs.has(name) ? Number(attrs.get(name)) : dflt);
  const spec: RemoteSpec = {
    url,
    display: display.replace(/\/$/, ''),
    readOnly: flag('read-only'),
    connectTimeoutMs: ms('connect-timeout', DEFAULT_CONNECT_TIMEOUT_MS),
    operationTimeoutMs: ms('operation-timeout', DEFAULT_OPERATION_TIMEOUT_MS),
    shards,
    attrs,
  };
  if (scheme === 'redis' || scheme === 'rediss') for (const s of shards.length ? shards : ['']) redisTarget(shardSpec(spec, s));
  return spec;
}

/** Parses the whole setting; throws KbxError (code KBX_BAD_REMOTE) naming the first bad item. */
export function parseRemoteStorage(text: string): RemoteSpec[] {
  const specs = text.split(/\s+/).filter(Boolean).map(parseItem);
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.display)) throw bad(s.display, 'listed twice');
    seen.add(s.display);
  }
  return specs;
}

/** The spec of one shard: '*' replaced by its name. */
export function shardSpec(spec: RemoteSpec, shard: string): RemoteSpec {
  const url = new URL(spec.url.href.replaceAll('*', shard).replaceAll('%2A', shard));
  return { ...spec, url, display: spec.display.replaceAll('*', shard), shards: [] };
}
