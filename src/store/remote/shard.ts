// Client-side sharding as ccache's `shards`: one backend over several, each
// key on the shard that scores highest for it (rendezvous hashing), so adding
// or removing a shard moves only the keys that scored highest there. A shard
// that is down keeps its keys (remote-store.ts takes it out alone): moved to
// another, an entry would be written where no reader looks.
import { createHash } from 'node:crypto';
import type { RemoteBackend, RemoteKind, RemoteSpec } from './backend.js';

function score(shard: string, key: string): bigint {
  return createHash('sha256').update(shard).update('\0').update(key).digest().readBigUInt64BE(0);
}

/** The index of the shard that holds key. */
export function pickShard(names: readonly string[], key: string): number {
  let best = 0;
  let bestScore = -1n;
  names.forEach((name, i) => {
    const s = score(name, key);
    if (s > bestScore) {
      bestScore = s;
      best = i;
    }
  });
  return best;
}

export function shardedBackend(spec: RemoteSpec, shards: RemoteBackend[]): RemoteBackend {
  const at = (key: string) => shards[pickShard(spec.shards, key)]!;
  return {
    spec,
    get: (kind: RemoteKind, key: string) => at(key).get(kind, key),
    put: (kind: RemoteKind, key: string, data: Buffer) => at(key).put(kind, key, data),
    has: (kind: RemoteKind, key: string) => {
      const b = at(key);
      return b.has ? b.has(kind, key) : b.get(kind, key).then((d) => d !== undefined);
    },
    close: async () => {
      await Promise.all(shards.map((s) => s.close()));
    },
    shards: { names: shards.map((s) => s.spec.display), of: (key: string) => pickShard(spec.shards, key) },
  };
}
