// Pseudo-inputs for compiles that name __DATE__, __TIME__ or __TIMESTAMP__
// (DESIGN.md §5), as ccache does by default:
// - __TIME__: not stored (reason `time-macros`), unless SOURCE_DATE_EPOCH
//   fixes it: a hit within the same second is too rare to be worth a key.
//   Not a lasting reason: the scan is cheap on a hit of its per-digest memo,
//   and a source that stops naming __TIME__ is stored again.
// - __DATE__: the date in the line's time zone is an input (`date` entry);
//   with SOURCE_DATE_EPOCH set gcc takes it from there (in UTC) instead, and
//   the variable is already in the key.
// - __TIMESTAMP__: gcc 12 expands it to the mtime of the file being read
//   where the macro is *expanded*, whatever SOURCE_DATE_EPOCH says: a macro
//   defined in a header and used in foo.c gives foo.c's mtime. So the mtime
//   of every text file the compile read is an input (`mtime` entries), not
//   only of the files naming it (ccache keys those alone).
// Both format local time, so the zone's file (/etc/localtime, or the zoneinfo
// file TZ names) is a content input too: glibc opens it internally, unseen
// by the tracer.
import { readlinkSync, statSync } from 'node:fs';
import { FOUND_DATE, FOUND_TIME, FOUND_TIMESTAMP, SCANNED_TEXT, compilersRun, type TimeMacroScanner } from '../observe/time-macros.js';
import type { FileState } from './file-state.js';
import { identityValue } from './identity-inputs.js';
import { execValue } from './exec-inputs.js';
import type { PathEntry, TimeEnv } from './key.js';

const ZONEINFO = '/usr/share/zoneinfo/';
const formatters = new Map<string, Intl.DateTimeFormat>();

/** YYYY-MM-DD in the IANA time zone `zone` at `ms`; throws for a zone ICU does not know. */
export function dateIn(zone: string, ms: number): string {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' });
    formatters.set(zone, f);
  }
  const part = (type: string) => f.formatToParts(ms).find((p) => p.type === type)?.value ?? '?';
  return `${part('year')}-${part('month')}-${part('day')}`;
}

/** The value of a pseudo-input now; undefined for a kind this kbx does not know (the entry never holds). */
export function pseudoValue(kind: string, p: string, nowMs: number): string | undefined {
  if (kind === 'date') {
    try {
      return dateIn(p, nowMs);
    } catch {
      return 'unknown-zone';
    }
  }
  if (kind === 'mtime') return mtimeSeconds(p);
  if (kind === 'who') return identityValue(p);
  if (kind === 'exec') return execValue(p);
  return undefined;
}

function mtimeSeconds(p: string): string {
  try {
    const st = statSync(p, { bigint: true });
    const ns = st.mtimeNs;
    // Whole seconds, rounded down also before 1970: what time_t holds.
    return String(ns >= 0n ? ns / 1_000_000_000n : -((-ns + 999_999_999n) / 1_000_000_000n));
  } catch {
    return 'absent';
  }
}

interface Zone {
  /** IANA name, as Intl takes it. */
  name: string;
  /** The zone file glibc reads, if any. */
  file?: string;
}

/** The zone glibc uses for a line with this environment; undefined when kbx cannot name it. */
export function lineZone(env: TimeEnv): Zone | undefined {
  if (env.TZDIR !== undefined) return undefined; // zone files from elsewhere
  let zone: Zone;
  if (env.TZ === undefined) {
    let target: string;
    try {
      target = readlinkSync('/etc/localtime');
    } catch (err) {
      // Absent: glibc uses UTC. A copied file (not a link) names no zone.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
      return { name: 'UTC', file: '/etc/localtime' };
    }
    const at = target.indexOf('zoneinfo/');
    if (at < 0) return undefined;
    zone = { name: target.slice(at + 'zoneinfo/'.length), file: '/etc/localtime' };
  } else if (env.TZ === '') {
    return { name: 'UTC' };
  } else {
    // glibc reads TZ as a file under zoneinfo first; a POSIX rule string
    // ("CET-1CEST,M3.5.0,...") is not something kbx values.
    const name = env.TZ.startsWith(':') ? env.TZ.slice(1) : env.TZ;
    if (!/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(name)) return undefined;
    try {
      if (!statSync(ZONEINFO + name).isFile()) return undefined;
    } catch {
      return undefined;
    }
    zone = { name, file: ZONEINFO + name };
  }
  try {
    dateIn(zone.name, 0);
  } catch {
    return undefined;
  }
  return zone;
}

export interface TimeMacroLine {
  /** Programs the line exec'd. */
  execed: readonly string[];
  /** The line's valued inputs. */
  entries: readonly PathEntry[];
  env: TimeEnv;
  command: string;
  startedMs: number;
  nowMs: number;
}

/**
 * The pseudo-inputs a compile needs, or the reason it must not be stored.
 * A line that ran no C-family compiler (nor ccache or distcc, which may
 * answer from their cache without running one) needs none.
 */
export function timeMacroInputs(line: TimeMacroLine, scanner: TimeMacroScanner, state: FileState): PathEntry[] | string {
  const compilers = compilersRun(line.execed);
  if (!compilers.any) return [];
  const programs = new Set(line.execed);
  let found = 0;
  const texts: string[] = [];
  for (const e of line.entries) {
    if (e.k !== 'c' || programs.has(e.p)) continue;
    const bits = scanner.scan(e.p, e.v);
    if (bits === undefined) return 'time-macros-unscanned';
    found |= bits;
    if (bits & SCANNED_TEXT) texts.push(e.p);
  }
  if (!(found & (FOUND_DATE | FOUND_TIME | FOUND_TIMESTAMP))) return [];

  // clang before 16 ignores SOURCE_DATE_EPOCH, and a recipe that sets or
  // unsets it itself makes the line's environment say nothing.
  const epochFixes = line.env.SOURCE_DATE_EPOCH !== undefined && !compilers.clang && !/clang|SOURCE_DATE_EPOCH/.test(line.command);
  if (found & FOUND_TIME && !epochFixes) return 'time-macros';
  const date = found & FOUND_DATE && !epochFixes;
  if (!date && !(found & FOUND_TIMESTAMP)) return [];

  const zone = lineZone(line.env);
  if (!zone) return 'time-macros-zone';
  const out: PathEntry[] = [];
  if (date) {
    const v = dateIn(zone.name, line.startedMs);
    if (v !== dateIn(zone.name, line.nowMs)) return 'time-macros'; // ran across midnight
    out.push({ k: 'date', p: zone.name, v });
  }
  if (found & FOUND_TIMESTAMP) for (const p of texts) out.push({ k: 'mtime', p, v: mtimeSeconds(p) });
  if (zone.file && !line.entries.some((e) => e.k === 'c' && e.p === zone.file)) out.push({ k: 'c', p: zone.file, v: state.content(zone.file) });
  return out;
}
