// Pseudo-inputs for lines whose output is the machine's or the user's
// identity, which no file holds: kbuild's scripts/mkcompile_h writes
// `uname -n` and `whoami` into include/generated/compile.h (and so into
// /proc/version) unless KBUILD_BUILD_HOST and KBUILD_BUILD_USER are set. Keyed
// on its inputs alone, such a line would hit on another machine of a shared
// store, or for another user of one, and restore their names.
//
// A `who` entry: p `host` or `user`, v what the daemon sees now. The daemon
// serves lines of its own machine and user (it runs in the build's namespaces
// as the user who started it), so it values them itself.
// - host: a line that ran one of HOST_PROGRAMS, or called uname or
//   gethostname itself (the tracer's `q host`).
// - user: a line that ran one of USER_PROGRAMS. glibc reads the user and group
//   databases internally, unseen by the tracer, so their files are content
//   inputs of such a line too, as a __DATE__ compile's zone file is.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { FileState } from './file-state.js';
import type { PathEntry } from './key.js';

export type Identity = 'host' | 'user';

/** Programs that print the machine's identity (coreutils' uname and arch, hostname's names). */
export const HOST_PROGRAMS = new Set(['uname', 'arch', 'hostname', 'dnsdomainname', 'domainname', 'nisdomainname', 'ypdomainname', 'hostnamectl']);
/** Programs that print who runs them, or who is logged in. */
export const USER_PROGRAMS = new Set(['whoami', 'id', 'logname', 'groups', 'users', 'who']);
const USER_FILES = ['/etc/passwd', '/etc/group', '/etc/nsswitch.conf'];

// Programs that ask uname or gethostname at every run for their own use,
// never printing the answer: bash (for $HOSTNAME, also when run as sh) and
// GNU find (a check of the kernel's version). A script that prints $HOSTNAME
// is not seen either way.
const ASK_FOR_THEMSELVES = new Set(['bash', 'find']);

/**
 * Which identities a run depends on: by the programs it exec'd, and the
 * programs that asked for the host's identity themselves (`q host <exe>`).
 */
export function identitiesUsed(execed: readonly string[], askedHost: readonly string[]): Identity[] {
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  const out: Identity[] = [];
  if (askedHost.some((exe) => !ASK_FOR_THEMSELVES.has(exe)) || execed.some((p) => HOST_PROGRAMS.has(base(p)))) out.push('host');
  if (execed.some((p) => USER_PROGRAMS.has(base(p)))) out.push('user');
  return out;
}

function digest(parts: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

function readOr(path: string, absent: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return absent;
  }
}

/** What uname(2) says of this machine, and its NIS domain name: a digest. */
function hostValue(): string {
  return digest([os.hostname(), readOr('/proc/sys/kernel/domainname', ''), os.type(), os.release(), os.version(), os.machine()]);
}

/** The daemon's user and groups (a line's, as kbx make runs both as one user): a digest. */
function userValue(): string {
  const ids = process.geteuid && process.getegid && process.getgroups ? [process.geteuid(), process.getegid(), ...process.getgroups()] : [];
  return digest(ids.map(String));
}

/** The value of a `who` pseudo-input now; undefined for a name this kbx does not know. */
export function identityValue(p: string): string | undefined {
  if (p === 'host') return hostValue();
  if (p === 'user') return userValue();
  return undefined;
}

/** The entries a run depending on these identities adds to its path set. */
export function identityInputs(used: readonly Identity[], entries: readonly PathEntry[], state: FileState): PathEntry[] {
  const out: PathEntry[] = used.map((p) => ({ k: 'who', p, v: identityValue(p)! }));
  if (used.includes('user')) {
    for (const f of USER_FILES) if (!entries.some((e) => e.k === 'c' && e.p === f)) out.push({ k: 'c', p: f, v: state.content(f) });
  }
  return out;
}
