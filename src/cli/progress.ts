// kbx make's progress display. On a terminal (tty mode) a ninja-style status
// line sits under make's output: [done/expected], hits and misses so far, an
// ETA from the previous build of the same tree, and the line being run. make's
// stdout and stderr go through pipes and are copied out whole line by line,
// the status line cleared before and redrawn after each. Plain mode leaves
// make's output alone and prints a progress line now and then on stderr.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { BuildMeta } from '../builds/record.js';

export interface Progress {
  countersFile: string;
  /** The previous build of the same directory and arguments, for the expected count and the ETA. */
  previous?: BuildMeta;
  startedMs: number;
}

export interface Snapshot {
  done: number;
  hits: number;
  misses: number;
  current: string;
}

const LINE_SLOTS = [0, 1, 2, 3, 4, 5, 6, 7];

/** Reads the counters file: lines started so far, hits, misses, and the line most recently started. */
export function readSnapshot(file: string): Snapshot {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch {
    return { done: 0, hits: 0, misses: 0, current: '' };
  }
  const slot = (i: number) => (buf.length >= (i + 1) * 8 ? Number(buf.readBigUInt64LE(i * 8)) : 0);
  let current = '';
  if (buf.length > 17 * 8 && slot(16) % 2 === 0) {
    const end = buf.indexOf(0, 17 * 8);
    current = buf.toString('utf8', 17 * 8, end < 0 ? buf.length : end);
    // Two shims may have written at once; a torn text is not shown.
    if (/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(current)) current = '';
  }
  return { done: LINE_SLOTS.reduce((a, i) => a + slot(i), 0), hits: slot(4), misses: slot(5), current };
}

/** A short name for a recipe line: kbuild's own (`CC fs/ioctl.o`), else its output file, else its start. */
export function lineLabel(cmd: string): string {
  const one = cmd.replace(/\s+/g, ' ').trim();
  // kbuild's quiet echo comes first, and the text the shims leave is cut after 375 bytes.
  const quiet = /^set -e; echo ' ?([A-Z][A-Z0-9_]*(?: \[M\])?) (\S+?) ?';/.exec(one);
  if (quiet) return `${quiet[1]} ${quiet[2]}`;
  // A kbuild line without an echo (check-local-export, objtool…): its target is in the first trap.
  const trapped = /^set -e; trap 'rm -f (\S+);/.exec(one);
  if (trapped) return trapped[1]!;
  const o = / -o\s+(\S+)/.exec(one) ?? />\s*(\S+)\s*$/.exec(one);
  return o ? o[1]!.replace(/^['"]|['";]$/g, '') : one;
}

function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Time left, from where the previous build was when it had done the same share of its lines. */
export function eta(prev: BuildMeta | undefined, done: number, elapsedMs: number): number | undefined {
  const expected = prev ? Object.values(prev.counts).reduce((a, b) => a + b, 0) : 0;
  if (!prev || expected === 0 || done >= expected || done === 0) return undefined;
  const pos = (100 * done) / expected;
  const lo = Math.floor(pos);
  const at = prev.curve[lo]! + (prev.curve[Math.min(100, lo + 1)]! - prev.curve[lo]!) * (pos - lo);
  const total = prev.endMs - prev.startMs;
  if (at <= 0) return total - elapsedMs;
  return Math.max(0, (total - at) * (elapsedMs / at));
}

export function statusText(p: Progress, s: Snapshot, nowMs: number, width: number): string {
  const expected = p.previous ? Object.values(p.previous.counts).reduce((a, b) => a + b, 0) : 0;
  const count = expected ? `[${s.done}/${Math.max(expected, s.done)}]` : `[${s.done}]`;
  const left = eta(p.previous, s.done, nowMs - p.startedMs);
  const parts = [count, `${s.hits} hits`, `${s.misses} misses`];
  if (left !== undefined) parts.push(`ETA ${clock(left)}`);
  let text = `kbx ${parts.join(' · ')}`;
  const label = s.current ? lineLabel(s.current) : '';
  if (label) text += `  ${label}`;
  return text.length > width ? text.slice(0, Math.max(0, width - 1)) + '…' : text;
}

// A line without its newline for this long is a prompt (kbuild's config
// restart asks questions mid-build): it is shown as it is.
const PARTIAL_MS = 150;

/**
 * Copies a stream out line by line, calling around() so the status line can be
 * cleared and redrawn; a partial line left waiting goes out through partial().
 */
function copyLines(from: Readable, to: Writable, around: (write: () => void) => void, partial: (write: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    let pending = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const flushPartial = () => {
      timer = undefined;
      const text = pending;
      pending = Buffer.alloc(0);
      if (text.length) partial(() => to.write(text));
    };
    from.on('data', (chunk: Buffer) => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      const data = Buffer.concat([pending, chunk]);
      const cut = data.lastIndexOf(10);
      pending = cut < 0 ? data : data.subarray(cut + 1);
      if (cut >= 0) {
        const whole = data.subarray(0, cut + 1);
        around(() => to.write(whole));
      }
      if (pending.length) timer = setTimeout(flushPartial, PARTIAL_MS);
    });
    from.on('end', () => {
      if (timer) clearTimeout(timer);
      if (pending.length) around(() => to.write(pending));
      resolve();
    });
    from.on('error', () => resolve());
  });
}

/** Runs make with a status line on the terminal; resolves to make's exit status. */
export async function runWithStatusLine(make: string, args: string[], env: NodeJS.ProcessEnv, p: Progress): Promise<number> {
  const out = process.stdout;
  let shown = false;
  const clear = () => {
    if (shown) out.write('\r\x1b[K');
    shown = false;
  };
  // While a partial line (a prompt) is on the screen, the status line stays away.
  let holding = false;
  const draw = () => {
    if (holding) return;
    const text = statusText(p, readSnapshot(p.countersFile), Date.now(), (out.columns || 80) - 1);
    out.write(`\r\x1b[K${text}`);
    shown = true;
  };
  const around = (write: () => void) => {
    clear();
    write();
    holding = false;
    draw();
  };
  const partial = (write: () => void) => {
    clear();
    write();
    holding = true;
  };
  const child = spawn(make, args, { stdio: ['inherit', 'pipe', 'pipe'], env });
  // make and its jobs share our terminal's process group and get ^C themselves.
  const ignore = () => {};
  const term = () => child.kill('SIGTERM');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', term);
  const timer = setInterval(draw, 100);
  const copied = Promise.all([copyLines(child.stdout!, out, around, partial), copyLines(child.stderr!, process.stderr, around, partial)]);
  const status = await new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + (signal === 'SIGINT' ? 2 : 15) : 1)));
  });
  await copied;
  clearInterval(timer);
  process.off('SIGINT', ignore);
  process.off('SIGTERM', term);
  clear();
  return status;
}

/** Plain mode: a progress line on stderr every `everyMs` while make runs; returns a function that stops it. */
export function startPlainProgress(p: Progress, everyMs = 10_000): () => void {
  const timer = setInterval(() => {
    process.stderr.write(`${statusText(p, readSnapshot(p.countersFile), Date.now(), 200)}\n`);
  }, everyMs);
  return () => clearInterval(timer);
}
