// The one decoder for what a store hands back (DESIGN.md §5: the store is
// outside kbx's trust). Every entry and path set record passes through here
// before kbx looks at a field, and every name passes isStoreName before it
// becomes a file name. Hand-written rather than a schema library: on a
// 3 × 1000-input path set zod 4 and valibot 1 each doubled the time of
// JSON.parse, and an entry is decoded on every cache hit (numbers in the
// commit that added this file).
import type { PathEntry } from '../fingerprint/key.js';
import { ROLE_TOKEN, isRootRelative } from '../fingerprint/root-names.js';
import type { Entry, PathSet, PathSets, StoredOutput } from './store.js';

/** Why a stored object was refused; `where` names the field, e.g. `outputs[2].digest`. */
export class DecodeError extends Error {
  constructor(
    readonly where: string,
    readonly why: string,
  ) {
    super(`${where}: ${why}`);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const MAX_PATH = 4096;
// A path set value is only ever compared with what a path holds now (a
// digest, `dir:<digest>`, `absent`, `other:<mode>`, an existence type); a
// wrong one is a mismatch, never an action. Its shape is left open so that a
// new kind of value does not make every record unreadable; its size is not.
const MAX_VALUE = 256;
const MAX_TEXT = 1 << 20;

/** A blob digest or fingerprint: the only names a store turns into file names. */
export function isStoreName(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}

/** Absolute, no NUL, not absurdly long (path set inputs: the tracer keeps `/./` as the line spelled it). */
export function isAbsolutePath(p: unknown): p is string {
  return typeof p === 'string' && p.length > 0 && p.length <= MAX_PATH && p.charCodeAt(0) === 47 && !p.includes('\0');
}

/** Absolute and normalised: no empty, `.` or `..` component, no trailing slash. Outputs and deletions. */
export function isNormalPath(p: unknown): p is string {
  if (!isAbsolutePath(p)) return false;
  if (p === '/') return true;
  if (p.endsWith('/') || p.includes('//')) return false;
  return !/\/\.\.?(?:\/|$)/.test(p);
}

function fail(where: string, why: string): never {
  throw new DecodeError(where, why);
}

function record(x: unknown, where: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) fail(where, 'not an object');
  return x as Record<string, unknown>;
}

function array(x: unknown, where: string): unknown[] {
  if (!Array.isArray(x)) fail(where, 'not an array');
  return x;
}

function text(x: unknown, where: string, max = MAX_TEXT): string {
  if (typeof x !== 'string' || x.length > max) fail(where, 'not a string of reasonable length');
  return x;
}

function int(x: unknown, where: string, max: number): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > max) fail(where, `not an integer in 0..${max}`);
  return x;
}

function digest(x: unknown, where: string, emptyOk = false): string {
  if (emptyOk && x === '') return '';
  if (!isStoreName(x)) fail(where, 'not 64 lowercase hex digits');
  return x;
}

// Outputs and deletions: absolute, or below a build root by role (`@out/fs/x.o`,
// root-names.ts), normalised either way: a `..` below a role would climb out
// of the root it is put under.
function normalPath(x: unknown, where: string): string {
  if (!isNormalPath(x) && !(typeof x === 'string' && x.length <= MAX_PATH && isRootRelative(x))) fail(where, 'not a normalised absolute or root-relative path');
  return x;
}

/** A path set input: absolute, or a role and what the line spelled below it (only ever read, so `/./` may stay). */
function isInputPath(p: unknown): p is string {
  if (isAbsolutePath(p)) return true;
  if (typeof p !== 'string' || p.length > MAX_PATH || p.includes('\0')) return false;
  const m = ROLE_TOKEN.exec(p);
  return m !== null && (p.length === m[0].length || p.charCodeAt(m[0].length) === 47);
}

function output(x: unknown, where: string): StoredOutput {
  const o = record(x, where);
  const path = normalPath(o.path, `${where}.path`);
  switch (o.kind) {
    case 'file': {
      const file: StoredOutput = {
        kind: 'file',
        path,
        digest: digest(o.digest, `${where}.digest`),
        // kbx stores permission bits only: no setuid, setgid or sticky bit.
        mode: int(o.mode, `${where}.mode`, 0o777),
        size: int(o.size, `${where}.size`, Number.MAX_SAFE_INTEGER),
      };
      // Checked inside the roots like every other path before a restore links it (restore.ts).
      if (o.linkOf !== undefined) file.linkOf = normalPath(o.linkOf, `${where}.linkOf`);
      return file;
    }
    case 'link': {
      const target = text(o.target, `${where}.target`, MAX_PATH);
      if (target === '' || target.includes('\0')) fail(`${where}.target`, 'empty or holds a NUL');
      return { kind: 'link', path, target };
    }
    case 'dir':
      // Required: restored by the daemon, a directory would get the daemon's umask, not the line's mode.
      return { kind: 'dir', path, mode: int(o.mode, `${where}.mode`, 0o777) };
    default:
      return fail(`${where}.kind`, 'not file, link or dir');
  }
}

/** Decodes a parsed entry; throws DecodeError. The result holds only the known fields. */
export function decodeEntry(x: unknown): Entry {
  const e = record(x, 'entry');
  return {
    outputs: array(e.outputs, 'outputs').map((o, i) => output(o, `outputs[${i}]`)),
    deleted: array(e.deleted, 'deleted').map((p, i) => normalPath(p, `deleted[${i}]`)),
    stdout: digest(e.stdout, 'stdout', true),
    stderr: digest(e.stderr, 'stderr', true),
    exit: int(e.exit, 'exit', 255),
    ...(e.keyedFailure === true && { keyedFailure: true as const }),
    durationUs: int(e.durationUs, 'durationUs', Number.MAX_SAFE_INTEGER),
    createdMs: int(e.createdMs, 'createdMs', Number.MAX_SAFE_INTEGER),
    buildId: text(e.buildId, 'buildId', 256),
  };
}

function pathSet(x: unknown, where: string): PathSet {
  const s = record(x, where);
  const entries = array(s.entries, `${where}.entries`);
  // Thousands per record: checked in place, not copied.
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as PathEntry | null;
    if (typeof e !== 'object' || e === null) fail(`${where}.entries[${i}]`, 'not an object');
    // A file (c, e; mtime: a __TIMESTAMP__ source) is named by its path, absolute
    // or below a root's role; the date of a __DATE__ compile by its time zone
    // (time-inputs.ts); a root the outputs hold by its role, valued by its absolute path.
    let maxValue = MAX_VALUE;
    if (e.k === 'date') {
      if (typeof e.p !== 'string' || e.p.length > 256 || e.p.includes('\0')) fail(`${where}.entries[${i}].p`, 'not a time zone name');
    } else if (e.k === 'who') {
      if (e.p !== 'host' && e.p !== 'user') fail(`${where}.entries[${i}].p`, "not 'host' or 'user'");
    } else if (e.k === 'env') {
      if (e.p !== 'wrappers') fail(`${where}.entries[${i}].p`, "not 'wrappers'");
    } else if (e.k === 'root') {
      if (typeof e.p !== 'string' || ROLE_TOKEN.exec(e.p)?.[0] !== e.p) fail(`${where}.entries[${i}].p`, 'not a root role');
      maxValue = 2 * MAX_PATH + 1;
    } else if (e.k !== 'c' && e.k !== 'e' && e.k !== 'mtime' && e.k !== 'exec') fail(`${where}.entries[${i}].k`, "not 'c', 'e', 'mtime', 'exec', 'date', 'root', 'who' or 'env'");
    else if (!isInputPath(e.p)) fail(`${where}.entries[${i}].p`, 'not an absolute or root-relative path');
    if (typeof e.v !== 'string' || e.v.length > maxValue) fail(`${where}.entries[${i}].v`, 'not a short string');
  }
  return { strong: digest(s.strong, `${where}.strong`), entries: entries as PathEntry[] };
}

/** Decodes a parsed path set record; throws DecodeError. */
export function decodePathSets(x: unknown): PathSets {
  const r = record(x, 'record');
  const out: PathSets = {
    command: text(r.command, 'command'),
    cwd: isAbsolutePath(r.cwd) ? r.cwd : fail('cwd', 'not an absolute path'),
    sets: array(r.sets, 'sets').map((s, i) => pathSet(s, `sets[${i}]`)),
  };
  if (r.uncacheable !== undefined) out.uncacheable = text(r.uncacheable, 'uncacheable', 4 * MAX_PATH);
  if (r.rules !== undefined) out.rules = int(r.rules, 'rules', 1e9);
  return out;
}
