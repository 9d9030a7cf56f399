// Running the link's commands as the script would: in the object tree, with
// the script's environment, stdout and stderr passed through, and make's
// jobserver descriptors kept open for the one command that runs make.

import { spawn, spawnSync } from 'node:child_process';
import { LinkStepError, type LinkListener } from './events.js';

export interface Runner {
  cwd: string;
  env: NodeJS.ProcessEnv;
  emit: LinkListener;
}

/** File descriptors named by --jobserver-auth=R,W (or the older --jobserver-fds) in MAKEFLAGS. */
export function jobserverFds(makeflags: string | undefined): number[] {
  const m = /--jobserver-(?:auth|fds)=(\d+),(\d+)/.exec(makeflags ?? '');
  return m ? [Number(m[1]), Number(m[2])] : [];
}

function stdio(env: NodeJS.ProcessEnv): (number | 'ignore' | 'inherit')[] {
  const fds = jobserverFds(env.MAKEFLAGS);
  const out: (number | 'ignore' | 'inherit')[] = ['inherit', 'inherit', 'inherit'];
  const max = Math.max(2, ...fds);
  for (let fd = 3; fd <= max; fd++) out.push(fds.includes(fd) ? fd : 'ignore');
  return out;
}

/** Runs argv; a non-zero exit is a LinkStepError (the script's `set -e`). */
export function run(r: Runner, argv: readonly string[], opts: { env?: NodeJS.ProcessEnv; quietStderr?: boolean } = {}): void {
  const status = tryRun(r, argv, opts);
  if (status !== 0) throw new LinkStepError(`${argv.join(' ')} exited with status ${status}`, status);
}

/** Runs argv and returns its exit status (127 when it cannot be started). */
export function tryRun(r: Runner, argv: readonly string[], opts: { env?: NodeJS.ProcessEnv; quietStderr?: boolean } = {}): number {
  r.emit({ kind: 'trace', argv });
  const io = stdio(r.env);
  if (opts.quietStderr) io[2] = 'ignore';
  const spawn = (s: typeof io) => spawnSync(argv[0]!, argv.slice(1), { cwd: r.cwd, env: opts.env ?? r.env, stdio: s });
  let res;
  try {
    res = spawn(io);
  } catch {
    res = spawn(io.slice(0, 3)); // the jobserver descriptors are not open here: make runs serially
  }
  if (res.error) return 127;
  return res.status ?? 128 + 1;
}

/** Runs argv and returns its stdout (stderr passed through). */
export function capture(r: Runner, argv: readonly string[]): { status: number; stdout: string } {
  r.emit({ kind: 'trace', argv });
  const res = spawnSync(argv[0]!, argv.slice(1), { cwd: r.cwd, env: r.env, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 30 });
  return { status: res.error ? 127 : (res.status ?? 129), stdout: res.stdout ?? '' };
}

/** Starts argv and resolves to its exit status, so work can go on meanwhile. */
export function runAsync(r: Runner, argv: readonly string[]): Promise<number> {
  r.emit({ kind: 'trace', argv });
  const start = (io: ReturnType<typeof stdio>): Promise<number> =>
    new Promise((resolve, reject) => {
      let child;
      try {
        child = spawn(argv[0]!, argv.slice(1), { cwd: r.cwd, env: r.env, stdio: io });
      } catch (e) {
        reject(e as Error);
        return;
      }
      child.on('error', () => resolve(127));
      child.on('close', (code) => resolve(code ?? 129));
    });
  return start(stdio(r.env)).catch(() => start(stdio(r.env).slice(0, 3)));
}
