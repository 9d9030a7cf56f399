// The one place that turns a parsed `remote_storage` item into a backend.
// Adding a backend adds a case here and a file beside this one.
import { KbxError } from '../../util/errors.js';
import type { RemoteBackend, RemoteSpec } from './backend.js';
import { openHttpBackend } from './http-backend.js';
import { openRedisBackend } from './redis-backend.js';
import { shardedBackend } from './shard.js';
import { shardSpec } from './spec.js';

function openOne(spec: RemoteSpec): RemoteBackend {
  switch (spec.url.protocol) {
    case 'http:':
    case 'https:':
      return openHttpBackend(spec);
    case 'redis:':
    case 'rediss:':
      return openRedisBackend(spec);
    default:
      throw new KbxError('KBX_BAD_REMOTE', `${spec.display}: ${spec.url.protocol}// is not supported in this build of kbx`, 'use an http://, https://, redis:// or rediss:// store');
  }
}

export function openBackend(spec: RemoteSpec): RemoteBackend {
  if (!spec.shards.length) return openOne(spec);
  return shardedBackend(spec, spec.shards.map((s) => openOne(shardSpec(spec, s))));
}
