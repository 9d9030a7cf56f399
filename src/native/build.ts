// Builds kbx's two native programs with the system C compiler: the shell shim
// that make runs for every recipe line, and the LD_PRELOAD file-access tracer.
// Run by `npm run build` and, when the outputs are missing or older than their
// sources, by `kbx` itself on first use.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: dist/src/native/build.js → three levels up. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const nativeOutDir = join(packageRoot, 'build', 'native');
// Named `sh` (in a directory of its own): GNU make skips a recipe line that is
// just `:` (kbuild has ~1,200 in a no-op) only when SHELL's file name is a
// Bourne shell's (job.c, is_bourne_compatible_shell: sh, bash, dash, ...), and
// with .ONESHELL strips the `@-+` of every line only then; under any other
// name make starts the shim for each `:` and hands it `@echo` lines.
export const shimPath = join(nativeOutDir, 'kbx-shell', 'sh');
export const tracerPath = join(nativeOutDir, 'libkbxtrace.so');

interface NativeTarget {
  source: string;
  output: string;
  args: string[];
  libs: string[];
}

const targets: NativeTarget[] = [
  {
    source: join(packageRoot, 'native', 'shim', 'kbx-shim.c'),
    output: shimPath,
    // Static: no dynamic loader at start-up halves the cost of a trivial line.
    args: ['-O2', '-Wall', '-Wextra', '-std=gnu11', '-static'],
    libs: [],
  },
  {
    source: join(packageRoot, 'native', 'tracer', 'kbx-trace.c'),
    output: tracerPath,
    args: ['-O2', '-Wall', '-Wextra', '-std=gnu11', '-shared', '-fPIC'],
    libs: ['-ldl'],
  },
];

function isStale(t: NativeTarget): boolean {
  if (!existsSync(t.output)) return true;
  return statSync(t.source).mtimeMs > statSync(t.output).mtimeMs;
}

/** Compiles whatever is missing or stale. Throws with the compiler's output on failure. */
export function buildNative(opts: { force?: boolean; cc?: string } = {}): void {
  const cc = opts.cc ?? process.env.KBX_NATIVE_CC ?? 'cc';
  for (const t of targets) {
    if (!opts.force && !isStale(t)) continue;
    mkdirSync(dirname(t.output), { recursive: true });
    const tmp = `${t.output}.tmp${process.pid}`;
    try {
      execFileSync(cc, [...t.args, '-o', tmp, t.source, ...t.libs], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(
        `kbx: could not compile ${t.source} with '${cc}': ${e.stderr?.toString() ?? e.message}\n` +
          `hint: install a C compiler (apt-get install gcc) or set KBX_NATIVE_CC`,
      );
    }
    renameSync(tmp, t.output);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildNative({ force: true });
}
