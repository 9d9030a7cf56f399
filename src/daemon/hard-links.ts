// Hard links made by recipe lines (`ln big big-alias`, `cp -l`, git's ~140
// command names of one binary). A plain build leaves one inode under many
// names; restoring each name as a copy multiplied the tree's size by the
// number of names (git: 233 MB → 2.5 GB). An output that shares its inode
// with a content input of its line (inside the build roots, the same bytes)
// or with an earlier output of the same line is stored with `linkOf`, and
// restored as a hard link of that file once its content is checked; a link
// to a file outside the build roots is stored as a plain file (restored as a
// copy: kbx never ties a file of the tree to one it does not own).
//
// Never a link to a store blob: blobs are immutable and later lines modify
// outputs in place (DESIGN.md). A link restored here shares its inode with a
// file of the tree, exactly as the plain build's does, so such a later write
// reaches both names in both builds.
import { linkSync, lstatSync, renameSync, rmSync, statSync, type BigIntStats } from 'node:fs';
import { dirname } from 'node:path';
import type { FileState } from '../fingerprint/file-state.js';
import type { StoredOutput } from '../store/store.js';
import type { TraceEvent } from '../observe/trace-log.js';
import { absentBefore } from '../observe/trace-log.js';

type StoredFile = Extract<StoredOutput, { kind: 'file' }>;

const inode = (st: BigIntStats): string => `${st.dev}:${st.ino}`;

function lstatBig(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** A file an output may be a hard link of: as the line spelled it (to stat), where it really is, and its digest. */
export interface LinkCandidate {
  path: string;
  at: string;
  digest: string;
}

/** Finds, for each output file of one run, the file it is a hard link of. */
interface Partner {
  at: string;
  digest: string;
  input: boolean;
}

export class LinkPartners {
  private byInode: Map<string, Partner> | undefined;

  /** `inputs`: the run's content inputs inside the roots that it did not change, asked for only when an output has a second name. */
  constructor(private readonly inputs: () => LinkCandidate[]) {}

  private table(): Map<string, Partner> {
    if (this.byInode) return this.byInode;
    this.byInode = new Map();
    for (const c of this.inputs()) {
      const st = lstatBig(c.path);
      if (st?.isFile() && st.nlink > 1n && !this.byInode.has(inode(st))) this.byInode.set(inode(st), { at: c.at, digest: c.digest, input: true });
    }
    return this.byInode;
  }

  /**
   * The input the output file at `p` (really at `at`, `nlink` names) is a
   * hard link of, with its digest: the output's bytes, hashed already (its
   * value was taken after the run, which did not change it).
   */
  inputOf(p: string, at: string, nlink: number): { at: string; digest: string } | undefined {
    if (nlink < 2) return undefined;
    const st = lstatBig(p);
    if (!st?.isFile() || st.nlink < 2n) return undefined;
    const found = this.table().get(inode(st));
    return found?.input && found.at !== at ? found : undefined;
  }

  /**
   * The file the output at `p` (really at `at`, with these bytes) is a hard
   * link of: an input first, else an earlier output. An output that links to
   * neither is remembered for the outputs after it.
   */
  linkOf(p: string, at: string, digest: string, nlink: number): string | undefined {
    if (nlink < 2) return undefined;
    const st = lstatBig(p);
    if (!st?.isFile() || st.nlink < 2n) return undefined;
    const table = this.table();
    const found = table.get(inode(st));
    if (!found) {
      table.set(inode(st), { at, digest, input: false });
      return undefined;
    }
    return found.at !== at && found.digest === digest ? found.at : undefined;
  }
}

/** Outputs in restore order: directories, then files, then files linked to another (which may be an output itself). */
export function restoreOrder(a: StoredOutput, b: StoredOutput): number {
  const rank = (o: StoredOutput) => (o.kind === 'dir' ? 0 : o.kind === 'file' && o.linkOf !== undefined ? 2 : 1);
  return rank(a) - rank(b);
}

/**
 * Whether the run wrote in place (opened for writing over an existing file)
 * a file that has a second name now: the other names changed too, which a
 * restore (a new file renamed into place) would not repeat.
 */
export function wroteThroughLink(events: readonly TraceEvent[]): boolean {
  for (const ev of events) {
    if ((ev.op !== 'm' && ev.op !== 'w') || !ev.pre || absentBefore(ev.pre)) continue;
    const st = lstatBig(ev.path);
    if (st?.isFile() && st.nlink > 1n) return true;
  }
  return false;
}

/**
 * Inodes of the files the run wrote that have a second name: a content input
 * among them had its ctime changed by the run's own `ln`, not its bytes.
 */
export function linkedInodes(written: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const p of written) {
    const st = lstatBig(p);
    if (st?.isFile() && st.nlink > 1n) out.add(inode(st));
  }
  return out;
}

/** Whether the file at `p` (followed) is one of these inodes (linkedInodes). */
export function isLinkedInode(p: string, linked: Set<string>): boolean {
  try {
    const st = statSync(p, { bigint: true, throwIfNoEntry: false });
    return st !== undefined && st.isFile() && linked.has(inode(st));
  } catch {
    return false;
  }
}

/** Whether the input at `p` changed at or after sinceNs: its bytes (mtime), or its inode (ctime) other than by a link the run made. */
export function changedSinceExceptLinks(p: string, sinceNs: bigint, linked: () => Set<string>): boolean {
  let st: BigIntStats | undefined;
  try {
    st = statSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return true;
  }
  if (!st || st.mtimeNs >= sinceNs) return true;
  if (st.ctimeNs < sinceNs) return false;
  return !(st.isFile() && st.nlink > 1n && linked().has(inode(st)));
}

/**
 * Whether the output can be restored as a hard link of its `linkOf` file now:
 * a regular file with the output's bytes and permission bits. The bytes are
 * FileState's: the file is an input of the same path set, checked by this
 * very lookup, or an output kbx has just written.
 */
export function canLink(o: StoredFile, state: FileState): boolean {
  if (o.linkOf === undefined) return false;
  const st = lstatBig(o.linkOf);
  if (!st?.isFile() || Number(st.mode & 0o777n) !== (o.mode & 0o777) || st.size !== BigInt(o.size)) return false;
  return state.content(o.linkOf) === o.digest;
}

/**
 * Makes the output a hard link of its `linkOf` file (canLink said it may):
 * linked under a temporary name and renamed over the output, so a reader
 * never finds it missing. Already that inode: left alone (a plain `ln`
 * leaves its mtime, the source's, too). False when the file system refuses
 * (another device, too many links): the caller writes a copy.
 */
export function restoreLink(o: StoredFile, state: FileState, ensureDir: (dir: string) => void): boolean {
  const from = o.linkOf!;
  const src = lstatBig(from);
  const dest = lstatBig(o.path);
  if (src && dest && src.dev === dest.dev && src.ino === dest.ino) return true;
  const tmp = `${o.path}.kbx-tmp.${process.pid}`;
  try {
    ensureDir(dirname(o.path));
    rmSync(tmp, { force: true });
    linkSync(from, tmp);
    renameSync(tmp, o.path);
  } catch {
    rmSync(tmp, { force: true });
    return false;
  }
  // The link changed the inode's ctime, not its bytes: the source keeps the
  // digest it was checked with (noteContent would date the hash now, within the
  // racy window of the new ctime, and the next check would hash it again).
  // Changed since it was checked (a race with a writer): the caller replaces the link by a copy.
  if (state.contentAfterLink(from) !== o.digest) return false;
  state.noteContent(o.path, o.digest);
  return true;
}
