// What a shared store on a server must do for kbx (issue 11). The layer above
// (remote-store.ts) decides what to ask and when; a backend only moves bytes
// and says how it failed. Everything a backend returns is untrusted: the
// layer above verifies blobs against their digest and decodes records with
// the same checks as the local store.

/** 'cas': a blob under its SHA-256. 'ac': an entry or a path-set record under its key. */
export type RemoteKind = 'cas' | 'ac';

/** One `remote_storage` item after parsing: `url|attr|attr=value …`, as ccache writes it. */
export interface RemoteSpec {
  /** The URL with `*` already replaced when there are no shards; secrets included (never print it: use `display`). */
  url: URL;
  /** The same URL with the password replaced by `***`, for logs, stats and `kbx config`. */
  display: string;
  readOnly: boolean;
  connectTimeoutMs: number;
  operationTimeoutMs: number;
  /** Shard names for a URL with `*` in its host or path (`shards=a,b,c`), else empty. */
  shards: string[];
  /** Every attribute as written, for backend-specific ones (e.g. `cluster`). */
  attrs: Map<string, string>;
}

/** A failure of the server, not a missing key: the layer above marks the backend down for the rest of the build. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly kind: 'timeout' | 'error' | 'auth' | 'full' | 'forbidden',
  ) {
    super(message);
  }
}

export interface RemoteBackend {
  readonly spec: RemoteSpec;
  /** The stored bytes, or undefined when the server has no such key. Throws RemoteError on failure or timeout. */
  get(kind: RemoteKind, key: string): Promise<Buffer | undefined>;
  /** Stores the bytes (last writer wins). Throws RemoteError; never called when spec.readOnly. */
  put(kind: RemoteKind, key: string, data: Buffer): Promise<void>;
  /** Whether the server holds the key (HEAD), to skip uploading a large blob it has; optional. Throws RemoteError. */
  has?(kind: RemoteKind, key: string): Promise<boolean>;
  /** Closes connections; pending calls fail. */
  close(): Promise<void>;
  /**
   * A sharded backend's shards: each one's display name, and the one that
   * holds a key. The layer above takes a failing shard out alone (its keys
   * miss, the others' keys still hit) rather than the whole backend.
   */
  readonly shards?: { names: readonly string[]; of(key: string): number };
}
