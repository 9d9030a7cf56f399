// Parser for the tracer's log (docs/PROTOCOL.md, section 3).
// Pure: bytes in, events out. Malformed lines become 'bad' entries so that the
// line is not cached rather than cached on a partial view.

export type TraceOp = 'r' | 'w' | 'm' | 's' | 'a' | 'x' | 'e' | 'd' | 'n' | 'N' | 'k' | 'l' | 'i' | '!' | 'f' | 'q' | 'X';

export interface PreStat {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

/** The tracer's stat before a change says the path did not exist (all three 0). */
export function absentBefore(pre: PreStat): boolean {
  return pre.ino === 0n && pre.size === 0n && pre.mtimeNs === 0n;
}

export interface TraceEvent {
  op: TraceOp;
  /** Absolute path; for `!` the reason; for `f` what failed; for `q` what was asked (`host`, `net <program>`); for `i` empty. */
  path: string;
  /**
   * For m, n, N, w and d (always present on those): the path's stat before the
   * change, all three 0 when it did not exist.
   */
  pre?: PreStat;
}

/** Ops whose line is `<op> <ino> <size> <mtime_ns> <path>`. */
const STAT_OPS = new Set('mnNwd');
/** Ops whose line is `<op> <path>`. */
const PATH_OPS = new Set('rsaxeklX');

// mtime_ns is negative for files dated before 1970; ino and size never are.
const STAT_LINE = /^(\d+) (\d+) (-?\d+) (\/[^\0]*)$/;
const PATH_LINE = /^\/[^\0]*$/;

export interface ParsedTrace {
  events: TraceEvent[];
  /** Lines that did not parse; any makes the line uncacheable. */
  bad: string[];
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The log's lines, the text after the last newline (a line cut short when
 * non-empty), and the lines that are not valid UTF-8: decoding those lossily
 * could merge two different paths into one.
 */
function splitLines(data: Buffer | string): { lines: string[]; last: string; invalid: Set<number> } {
  const invalid = new Set<number>();
  if (typeof data === 'string') {
    const lines = data.split('\n');
    return { last: lines.pop()!, lines, invalid };
  }
  const text = data.toString('utf8');
  const lines = text.split('\n');
  const last = lines.pop()!;
  if (text.includes('\uFFFD')) {
    // Slow path, only when some line might hold bytes that are not UTF-8.
    let start = 0;
    for (let i = 0; i < lines.length; i++) {
      const end = data.indexOf(0x0a, start);
      try {
        strictUtf8.decode(data.subarray(start, end));
      } catch {
        invalid.add(i);
      }
      start = end + 1;
    }
  }
  return { lines, last, invalid };
}

export function parseTraceLog(data: Buffer | string): ParsedTrace {
  const events: TraceEvent[] = [];
  const bad: string[] = [];
  const { lines, last, invalid } = splitLines(data);
  // A log that does not end in a newline was cut short (a process died mid-write).
  if (last) bad.push(last);
  lines.forEach((line, i) => {
    if (invalid.has(i)) {
      bad.push(line);
      return;
    }
    if (line === 'i') {
      events.push({ op: 'i', path: '' });
      return;
    }
    const op = line[0];
    const rest = line.slice(2);
    if (op === undefined || line[1] !== ' ') {
      bad.push(line);
    } else if (op === '!' || op === 'f' || op === 'q') {
      events.push({ op, path: rest });
    } else if (STAT_OPS.has(op)) {
      const m = STAT_LINE.exec(rest);
      if (!m) bad.push(line);
      else events.push({ op: op as TraceOp, path: m[4]!, pre: { ino: BigInt(m[1]!), size: BigInt(m[2]!), mtimeNs: BigInt(m[3]!) } });
    } else if (PATH_OPS.has(op) && PATH_LINE.test(rest)) {
      events.push({ op: op as TraceOp, path: rest });
    } else {
      bad.push(line);
    }
  });
  return { events, bad };
}
