// Portable names (PROTOCOL.md §3, "Paths in keys and entries"): keys and
// entries name a file under a build root by the root's role and the path
// below it, so two checkouts at different absolute paths share entries.
// Roles follow KBX_ROOTS's order (src/cli/make.ts): make's directory, then
// O=. A path outside every root stays absolute (/usr/include/stdio.h, the
// compiler). A line whose outputs, stdout, stderr or content inputs hold a
// root's absolute path is keyed with that root as well (a `root`
// pseudo-input, line-cache.ts), so it is never restored under another.
import { resolveAll } from '../util/roots.js';
import { resolve } from 'node:path';

/** Role names by position in KBX_ROOTS. A root past these has no portable name: its paths stay absolute. */
export const ROOT_ROLES = ['make', 'out'] as const;

/** Stored form of the root of a role: `@make`; a path below it is `@make/fs/ioctl.o`. */
export const ROLE_TOKEN = /^@(make|out)(?=\/|$)/;

export interface NamedRoot {
  /** `@make` */
  token: string;
  /** Position in ROOT_ROLES, the character that stands for it in key text. */
  index: number;
  /** As KBX_ROOTS spells it: where stored paths are put back. */
  spelled: string;
  /** The spelled root and the directory it resolves to, when that differs (getcwd() gives the latter). */
  spellings: string[];
}

// A character that may continue a file name: a root followed by one of these
// is the start of another name (/src/linux2), not the root.
const NAME_CHAR = /[A-Za-z0-9_.~+@%-]/;
// Before a root in command text: an option letter run (-I/src, -isystem/src) or nothing name-like.
const OPTION_BEFORE = /(?:^|[^A-Za-z0-9_.~+@%/-])-{1,2}[A-Za-z][A-Za-z0-9_-]*$/;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class RootNames {
  readonly roots: NamedRoot[] = [];
  /** Every spelling of every root, in one string: two RootNames with equal keys name alike. */
  readonly key: string;
  /** Every spelling, longest first: the innermost root names a path (O=build inside the source tree). */
  private readonly prefixes: Array<{ prefix: string; root: NamedRoot }> = [];
  private readonly textPattern: RegExp | undefined;
  private readonly back = new Map<string, string | undefined>();

  /** `roots`: KBX_ROOTS, absolute. The root `/` gets no name (every path would be under it). */
  constructor(roots: readonly string[]) {
    roots.slice(0, ROOT_ROLES.length).forEach((r, index) => {
      const spelled = resolve(r);
      if (spelled === '/') return;
      const real = resolveAll(spelled) ?? spelled;
      const root: NamedRoot = { token: `@${ROOT_ROLES[index]}`, index, spelled, spellings: real === spelled || real === '/' ? [spelled] : [spelled, real] };
      this.roots.push(root);
      for (const prefix of root.spellings) this.prefixes.push({ prefix, root });
    });
    // Stable: for two equal roots (O=.), the first role names them.
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
    this.key = this.roots.map((r) => `${r.index}=${r.spellings.join(':')}`).join('\0');
    if (this.prefixes.length) this.textPattern = new RegExp(this.prefixes.map((p) => escapeRegExp(p.prefix)).join('|'), 'g');
  }

  /** The root a stored path below `token` is put back under. */
  private byToken(token: string): NamedRoot | undefined {
    return this.roots.find((r) => r.token === token);
  }

  /** An absolute path as stored: `@role/rest` under a root, else unchanged. */
  toStored(p: string): string {
    for (const { prefix, root } of this.prefixes) {
      if (p === prefix) return root.token;
      if (p.startsWith(prefix) && p.charCodeAt(prefix.length) === 47) return root.token + p.slice(prefix.length);
    }
    return p;
  }

  /**
   * The absolute path a stored path names under these roots; undefined for a
   * role these roots do not have or a form that is neither (untrusted input:
   * such an input never holds, such an entry is refused).
   */
  toAbsolute(s: string): string | undefined {
    if (s.charCodeAt(0) === 47) return s;
    // The hot path of every lookup: each input of each path set, remembered.
    if (this.back.has(s)) return this.back.get(s);
    const m = ROLE_TOKEN.exec(s);
    const root = m ? this.byToken(m[0]) : undefined;
    const abs = root ? root.spelled + s.slice(m![0].length) : undefined;
    if (this.back.size > 200_000) this.back.clear();
    this.back.set(s, abs);
    return abs;
  }

  /**
   * Text for the weak key (command text, working directory, environment
   * values): each root replaced by a NUL and its role's number. No command,
   * path or variable holds a NUL, so the text still says exactly what ran.
   */
  keyText(text: string): string {
    if (!this.textPattern) return text;
    return text.replace(this.textPattern, (found, at: number) => {
      const before = text[at - 1];
      if (before !== undefined && (before === '/' || NAME_CHAR.test(before)) && !OPTION_BEFORE.test(text.slice(Math.max(0, at - 64), at))) return found;
      // The longest root that ends where a name ends (/a/build2 is /a's build2, not /a/build's).
      for (const { prefix, root } of this.prefixes) {
        if (!found.startsWith(prefix)) continue;
        const next = text[at + prefix.length];
        if (next === undefined || next === '/' || !NAME_CHAR.test(next)) return `\0${root.index}${found.slice(prefix.length)}`;
      }
      return found;
    });
  }

  /** The roots whose absolute path (either spelling) the bytes hold anywhere. */
  embeddedIn(data: Buffer | string): NamedRoot[] {
    return this.roots.filter((r) => r.spellings.some((s) => data.indexOf(s) >= 0));
  }

  /** The value of a `root` pseudo-input for `token` under these roots: its spellings; undefined if no such root. */
  rootValue(token: string): string | undefined {
    return this.byToken(token)?.spellings.join(':');
  }
}

/** Whether a stored path is a role token or a token and a normalised relative path below it (no `.`, `..` or empty part). */
export function isRootRelative(p: string): boolean {
  const m = ROLE_TOKEN.exec(p);
  if (!m) return false;
  const rest = p.slice(m[0].length);
  if (rest === '') return true;
  return !rest.endsWith('/') && !rest.includes('//') && !/\/\.\.?(?:\/|$)/.test(rest) && !rest.includes('\0');
}
