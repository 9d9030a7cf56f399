// The one line `kbx make` prints at the end of a build, and a line for each
// shared store that failed during it.
import type { RemoteStatus } from '../store/remote/remote-store.js';
import type { ReplaySpan } from '../builds/record.js';

export interface BuildSummary {
  /** Counters the shims kept in the counters file. */
  shim: Record<string, number>;
  /** Counters the daemon kept for this build (undefined if it did not answer). */
  daemon?: {
    counts: Record<string, number>;
    savedUs: number;
    rssBytes: number;
    /** Of the stored lines, those whose blobs the daemon was still writing when make returned. */
    writing?: number;
    /** Each shared store and whether it failed during the build. */
    remotes?: RemoteStatus[];
  };
  elapsedMs: number;
  logFile?: string;
  /** What replay did before make ran (undefined: it was off or the daemon did not answer). */
  replay?: ReplaySpan;
}

const n = (v: number | undefined) => v ?? 0;

export function formatSummary(s: BuildSummary): string {
  const c = s.shim;
  const passthrough = n(c.passthrough_recursive) + n(c.passthrough_daemon) + n(c.passthrough_config) + n(c.passthrough_flags);
  const total = n(c.trivial) + passthrough + n(c.fallback) + n(c.hit) + n(c.miss);
  const parts = [
    `${n(c.trivial)} trivial`,
    `${passthrough} pass-through`,
    `${n(c.hit)} hits`,
    `${n(c.miss)} misses`,
  ];
  if (n(c.fallback)) parts.push(`${n(c.fallback)} ran without the cache`);
  const internal = Object.entries(s.daemon?.counts ?? {})
    .filter(([k]) => k.endsWith(':internal-error') || k === 'store-error')
    .reduce((sum, [, v]) => sum + v, 0);
  if (internal) parts.push(`${internal} internal kbx errors (the lines ran as without kbx; see ${s.logFile ?? 'the daemon log'})`);
  const remoteHits = Object.entries(s.daemon?.counts ?? {})
    .filter(([k]) => k.startsWith('remote ') && k.endsWith(' hit'))
    .reduce((sum, [, v]) => sum + v, 0);
  if (remoteHits) parts[2] += ` (${remoteHits} from shared stores)`;
  const via = Object.entries(s.daemon?.counts ?? {})
    .filter(([k]) => k.startsWith('miss-via:'))
    .map(([k, v]) => `${v} via ${k.slice('miss-via:'.length)}`);
  if (via.length) parts[3] += ` (${via.join(', ')})`;
  const stored = n(s.daemon?.counts.stored);
  // kbx make does not wait for them: the daemon finishes them, and the next command waits.
  const writing = n(s.daemon?.writing) ? `, ${n(s.daemon?.writing)} still being written` : '';
  const saved = s.daemon ? `; saved ${(s.daemon.savedUs / 1e6).toFixed(1)} s of recipe time` : '';
  const replayed = !s.replay ? '' : s.replay.lines > 0 ? `; ${formatReplay(s.replay)}` : s.replay.why ? `; nothing replayed (${s.replay.why.slice(0, 160)})` : '';
  const lines = [`kbx: ${total} lines in ${(s.elapsedMs / 1000).toFixed(1)} s: ${parts.join(', ')} (${stored} stored${writing})${saved}${replayed}`];
  for (const r of s.daemon?.remotes ?? []) {
    if (r.down && r.shardOf) lines.push(`kbx: shard ${r.name} of shared store ${r.shardOf} failed (${r.down}); its keys missed, the other shards served`);
    else if (r.down) lines.push(`kbx: shared store ${r.name} failed (${r.down}); the build went on without it`);
    else if (r.writesOff) lines.push(`kbx: shared store ${r.name} refused uploads (${r.writesOff}); it was only read from`);
  }
  return lines.join('\n');
}

/**
 * The summary's replay part: 'replayed 1,758 lines: restored 3,390 files, refreshed 0, hashed 12, in 0.9 s',
 * or for a tree as the last build left it 'replayed 1,758 lines: nothing changed (8,120 paths checked, hashed 0), in 0.03 s'.
 */
export function formatReplay(s: ReplaySpan): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const secs = (s.endUs - s.startUs) / 1e6;
  const took = `in ${secs.toFixed(secs < 1 ? 2 : 1)} s`;
  if (s.unchanged !== undefined) return `replayed ${n(s.lines)} lines: nothing changed (${n(s.unchanged)} paths checked, hashed ${n(s.hashed ?? 0)}), ${took}`;
  return `replayed ${n(s.lines)} lines: restored ${n(s.restored)} files, refreshed ${n(s.refreshed)}, hashed ${n(s.hashed ?? 0)}, ${took}`;
}
