// Parser for the tracer's log (docs/PROTOCOL.md, section 3).
// Pure: bytes in, events out. Malformed lines become 'bad' events so that the
// line is not cached rather than cached on a partial view.

export type TraceOp = 'r' | 'w' | 'm' | 's' | 'a' | 'x' | 'e' | 'd' | 'n' | 'N' | 'k' | 'l' | 'i' | '!';

export interface PreStat {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

export interface TraceEvent {
  op: TraceOp;
  path: string;
  /** For m and n: the file's stat before the change (size 0 and ino 0 when it did not exist). */
  pre?: PreStat;
}

const OPS = new Set('rwmsaxednNkli!');

export interface ParsedTrace {
  events: TraceEvent[];
  /** Lines that did not parse; any makes the line uncacheable. */
  bad: string[];
}

export function parseTraceLog(data: Buffer | string): ParsedTrace {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  const events: TraceEvent[] = [];
  const bad: string[] = [];
  const lines = text.split('\n');
  // A log that does not end in a newline was cut short (a process died mid-write).
  const last = lines.pop();
  if (last) bad.push(last);
  for (const line of lines) {
    const op = line[0];
    if (!op || !OPS.has(op) || line[1] !== ' ') {
      bad.push(line);
      continue;
    }
    const rest = line.slice(2);
    if (op === 'm' || op === 'n') {
      const m = /^(\d+) (\d+) (\d+) (\/.*)$/.exec(rest);
      if (!m) {
        bad.push(line);
        continue;
      }
      events.push({ op, path: m[4]!, pre: { ino: BigInt(m[1]!), size: BigInt(m[2]!), mtimeNs: BigInt(m[3]!) } });
    } else if (op === '!' || op === 'i') {
      events.push({ op, path: rest });
    } else {
      if (!rest.startsWith('/')) {
        bad.push(line);
        continue;
      }
      events.push({ op: op as TraceOp, path: rest });
    }
  }
  return { events, bad };
}
