// What every store holds (DESIGN.md, "Cache keys"): path sets under a weak
// fingerprint, entries under a strong fingerprint, blobs under their SHA-256.
import type { PathEntry } from '../fingerprint/key.js';

export type StoredOutput =
  /** linkOf: the file (inside the build roots) this one was a hard link of, when the line made one (daemon/hard-links.ts). */
  | { kind: 'file'; path: string; digest: string; mode: number; size: number; linkOf?: string }
  | { kind: 'link'; path: string; target: string }
  /** mode: the directory's permission bits as the line left them (`mkdir -m 700`), set on a directory a restore makes. */
  | { kind: 'dir'; path: string; mode: number };

/** What one run of a recipe line left behind. */
export interface Entry {
  outputs: StoredOutput[];
  deleted: string[];
  /** Digests of the stdout and stderr blobs ('' when empty). */
  stdout: string;
  stderr: string;
  exit: number;
  /**
   * Set on a run that exited non-zero and was stored because its failure is
   * keyed (PROTOCOL.md section 6, "Stored failures"); an entry with another
   * status and without it (an older kbx's) is never replayed.
   */
  keyedFailure?: true;
  durationUs: number;
  createdMs: number;
  buildId: string;
}

/**
 * The blobs a restore of entry reads, each with its size (0 for stdout and
 * stderr, whose size the entry does not say): a hard link of an input keeps
 * no blob (daemon/hard-links.ts), so the restore links it or the line runs.
 */
export function entryBlobs(entry: Entry): Map<string, number> {
  const blobs = new Map<string, number>();
  for (const d of [entry.stdout, entry.stderr]) if (d !== '') blobs.set(d, 0);
  for (const o of entry.outputs) if (o.kind === 'file' && o.linkOf === undefined) blobs.set(o.digest, o.size);
  return blobs;
}

/** Everything known about one weak fingerprint: its command, and the input sets seen for it, newest first. */
export interface PathSets {
  command: string;
  cwd: string;
  /** Set once a run showed this command cannot be cached; the reason is a stable word. */
  uncacheable?: string;
  /** RULES_VERSION of the kbx that judged it uncacheable; a judgement by other rules is ignored. */
  rules?: number;
  sets: PathSet[];
}

/** The inputs one run observed, and the strong fingerprint they make with the weak one. */
export interface PathSet {
  strong: string;
  entries: PathEntry[];
}

export interface Store {
  getPathSets(weak: string): PathSets | undefined;
  putPathSets(weak: string, record: PathSets): void;
  /** putPathSets with the record already encoded (record-codec.ts, as a shared store sends it): nothing to encode again. */
  putPathSetsEncoded?(weak: string, data: Buffer): void;
  getEntry(strong: string): Entry | undefined;
  putEntry(strong: string, entry: Entry): void;
  /** The blob's bytes, verified against its digest; undefined if missing or corrupt. */
  getBlob(digest: string): Buffer | undefined;
  /** getBlob without blocking the daemon: replay reads thousands at once (a store without it is read with getBlob). */
  getBlobAsync?(digest: string): Promise<Buffer | undefined>;
  putBlob(digest: string, data: Buffer): Promise<void>;
}
