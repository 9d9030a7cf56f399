// "Is this path inside the build tree?" asked of the file system, not of the
// spelling: a path is where the kernel would put it, every directory above
// it resolved through symlinks. `out/x.o` with `out` a symlink to /etc is in
// /etc. Record (line-cache.ts) and restore (restore.ts) ask the same question
// with the same functions, so that what one stores the other accepts.
import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';

// Symlinks followed while resolving one path, as Linux's MAXSYMLINKS.
const MAX_HOPS = 40;

export interface Walk {
  /** Symlinks an entry is about to create: resolved location → target. */
  links?: ReadonlyMap<string, string>;
  /** Fail instead of following one of `links` (a write must not pass through a link the same entry makes). */
  refuseLinks?: boolean;
}

/**
 * Resolves every component of an absolute path (which may hold `.` and `..`)
 * as the kernel would, the last one included; components that do not exist
 * are taken as spelled. undefined: more than MAX_HOPS symlinks, or a refused link.
 */
export function resolveAll(p: string, w: Walk = {}, hops = { n: 0 }): string | undefined {
  // The common case, one call: a normalised path that exists, and no links of an entry to consider.
  if (!w.links?.size && !/\/\.\.?(?:\/|$)|\/\/|.\/$/.test(p)) {
    try {
      return realpathSync.native(p);
    } catch {
      /* absent, a dangling link on the way, a loop: walk it */
    }
  }
  let cur = '';
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur = cur.slice(0, cur.lastIndexOf('/'));
      continue;
    }
    const next = `${cur}/${c}`;
    let target = w.links?.get(next);
    if (target !== undefined && w.refuseLinks) return undefined;
    if (target === undefined) {
      try {
        if (lstatSync(next).isSymbolicLink()) target = readlinkSync(next);
      } catch {
        /* absent (or not a directory): taken as spelled */
      }
    }
    if (target === undefined) {
      cur = next;
      continue;
    }
    if (++hops.n > MAX_HOPS) return undefined;
    const r = resolveAll(target.startsWith('/') ? target : `${cur}/${target}`, w, hops);
    if (r === undefined) return undefined;
    cur = r === '/' ? '' : r;
  }
  return cur || '/';
}

/**
 * Where a path's last component lives: the directory above it resolved, the
 * name kept. undefined as resolveAll. `dirs` remembers directories resolved
 * during one check (an entry's outputs mostly share one directory).
 */
export function locate(p: string, w: Walk = {}, dirs?: Map<string, string | undefined>): string | undefined {
  const i = p.lastIndexOf('/');
  const name = p.slice(i + 1);
  if (name === '' || name === '.' || name === '..') return resolveAll(p, w);
  const above = p.slice(0, i) || '/';
  let dir = dirs?.get(above);
  if (dir === undefined) {
    dir = resolveAll(above, w);
    dirs?.set(above, dir);
  }
  if (dir === undefined) return undefined;
  return `${dir === '/' ? '' : dir}/${name}`;
}

/** The build roots as the file system has them. */
export function realRoots(roots: readonly string[]): string[] {
  return roots.map((r) => resolveAll(resolve(r)) ?? resolve(r));
}

/** A resolved path inside a resolved root; the root itself only with `rootItself`. */
export function insideRoots(real: string, roots: readonly string[], rootItself = false): boolean {
  return roots.some((r) => (rootItself && real === r) || real.startsWith(r === '/' ? '/' : `${r}/`));
}

/** Where a symlink at `location` (resolved) with this target leads, the target's own links followed. */
export function linkDestination(location: string, target: string, w: Walk = {}): string | undefined {
  const dir = location.slice(0, location.lastIndexOf('/')) || '/';
  return resolveAll(target.startsWith('/') ? target : `${dir === '/' ? '' : dir}/${target}`, { links: w.links });
}
