// A recorded build as Chrome trace event JSON (the "JSON Object Format" of
// the Trace Event Format), which Perfetto and chrome://tracing open: one
// complete event (ph "X") per recipe line on its job lane's thread.
import type { BuildRecord } from '../builds/record.js';
import { displayPath, durationUs, type BuildAnalysis } from './analysis.js';

export interface TraceEvent {
  name: string;
  ph: 'X' | 'M';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms';
  otherData: Record<string, string>;
}

const PID = 1;

/**
 * Thread ids: work lane k is tid k + 1; the sub-make lanes follow the work
 * lanes. The sort order shows the sub-makes on top, as the parents they are.
 */
export function laneTid(a: BuildAnalysis, line: number): number {
  const k = a.layout.lane[line]!;
  return a.layout.subMake[line] ? a.layout.workLanes + k + 1 : k + 1;
}

export function chromeTrace(rec: BuildRecord, a: BuildAnalysis): ChromeTrace {
  const { workLanes, makeLanes } = a.layout;
  const meta: TraceEvent[] = [{ name: 'process_name', ph: 'M', pid: PID, tid: 0, args: { name: `kbx build ${rec.id}: make ${rec.args.join(' ')}` } }];
  for (let k = 0; k < makeLanes; k++) {
    meta.push({ name: 'thread_name', ph: 'M', pid: PID, tid: workLanes + k + 1, args: { name: `make ${k + 1}` } });
    meta.push({ name: 'thread_sort_index', ph: 'M', pid: PID, tid: workLanes + k + 1, args: { sort_index: k } });
  }
  for (let k = 0; k < workLanes; k++) {
    meta.push({ name: 'thread_name', ph: 'M', pid: PID, tid: k + 1, args: { name: `lane ${k + 1}` } });
    meta.push({ name: 'thread_sort_index', ph: 'M', pid: PID, tid: k + 1, args: { sort_index: makeLanes + k } });
  }
  const critical = new Set(a.critical.lines);
  const t0 = rec.startMs * 1000;
  const lines: TraceEvent[] = rec.lines.map((l, i) => {
    const args: Record<string, unknown> = {
      command: l.command,
      exit: l.exit,
      cwd: l.cwd,
      outputs: l.outputs.map((o) => displayPath(rec.paths[o] ?? '', a.roots)),
      stage: a.layout.subMake[i] ? 'sub-make' : a.lineStages[i],
    };
    if (l.reason !== undefined) args.reason = l.reason;
    if (l.why !== undefined) args.why = l.why;
    if (l.from !== undefined) args.from = l.from;
    if (l.savedUs !== undefined) args.savedUs = l.savedUs;
    if (critical.has(i)) args.criticalPath = true;
    return { name: a.labels[i]!, cat: l.kind, ph: 'X', ts: l.startUs - t0, dur: durationUs(l), pid: PID, tid: laneTid(a, i), args };
  });
  // Replay before make: one span on its own lane (tid 0), before make's first line.
  const replay: TraceEvent[] = rec.replay
    ? [{ name: `replay: ${rec.replay.lines} lines, ${rec.replay.restored} restored, ${rec.replay.refreshed} refreshed`, cat: 'replay', ph: 'X', ts: rec.replay.startUs - t0, dur: Math.max(1, rec.replay.endUs - rec.replay.startUs), pid: PID, tid: 0, args: { ...rec.replay } }]
    : [];
  return {
    traceEvents: [...meta, ...replay, ...lines],
    displayTimeUnit: 'ms',
    otherData: { build: rec.id, dir: rec.dir, args: rec.args.join(' '), exit: String(rec.exit) },
  };
}
