// A kernel tree built up to vmlinux's prerequisites, and the link stage run
// on it by the tree's script and by kbx with what make passes the script:
// the three arguments and the exported environment, captured once by
// overriding cmd_link_vmlinux on make's command line.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kbxMain } from './kbx.js';

export interface LinkCall {
  args: string[];
  env: NodeJS.ProcessEnv;
}

const CAPTURE_ENV = '.kbx-link.env';
const CAPTURE_ARGS = '.kbx-link.args';

/** The link recipe of scripts/Makefile.vmlinux, with what it passes the script saved first. */
export function captureOverride(): string {
  return (
    `cmd_link_vmlinux=env -0 > ${CAPTURE_ENV}; printf '%s\\0' "$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)" > ${CAPTURE_ARGS}; ` +
    `$< "$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)"; $(if $(ARCH_POSTLINK), $(MAKE) -f $(ARCH_POSTLINK) $@, true)`
  );
}

/** The same recipe running kbx in the script's place (how make will route it). */
export function kbxOverride(): string {
  return `cmd_link_vmlinux=${process.execPath} ${kbxMain} link-vmlinux "$(LD)" "$(KBUILD_LDFLAGS)" "$(LDFLAGS_vmlinux)"; $(if $(ARCH_POSTLINK), $(MAKE) -f $(ARCH_POSTLINK) $@, true)`;
}

/** Runs make; throws with its output when it fails. */
export function make(dir: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync('make', ['-C', dir, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`make ${args.join(' ')} failed (${r.status}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r.stdout + r.stderr;
}

/** What the last captured make passed the script, made runnable outside make. */
export function readLinkCall(objdir: string): LinkCall {
  const env: NodeJS.ProcessEnv = {};
  for (const kv of readFileSync(join(objdir, CAPTURE_ENV), 'latin1').split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  // Outside make there is no jobserver and no command-line override to pass on.
  env.MAKEFLAGS = (env.MAKEFLAGS ?? '').replace(/ -- .*$/s, '').replace(/\s*--jobserver-(auth|fds)=\S+/g, '').replace(/\s-j\d*/g, '');
  delete env.MAKEOVERRIDES;
  delete env.MAKELEVEL;
  const args = readFileSync(join(objdir, CAPTURE_ARGS), 'latin1').split('\0').slice(0, 3);
  return { args, env };
}

/** An `ld` that logs each invocation, to count full links of vmlinux. */
export function countingLd(dir: string): { path: string; log: string; links: () => number } {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'ld-counting');
  const log = join(dir, 'ld.log');
  writeFileSync(log, '');
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec ld "$@"\n`);
  chmodSync(path, 0o755);
  const links = (): number => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('--script=')).length : 0);
  return { path, log, links };
}

export interface StageRun {
  status: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

function stage(objdir: string, argv: string[], env: NodeJS.ProcessEnv): StageRun {
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: objdir, env, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/** The tree's scripts/link-vmlinux.sh, as make runs it. */
export function runStockLink(objdir: string, call: LinkCall, ld?: string): StageRun {
  const srctree = call.env.srctree ?? '.';
  const script = srctree === '.' ? 'scripts/link-vmlinux.sh' : `${srctree}/scripts/link-vmlinux.sh`;
  const args = ld ? [ld, ...call.args.slice(1)] : call.args;
  return stage(objdir, [script, ...args], call.env);
}

/** `kbx link-vmlinux` with the same arguments and environment. */
export function runKbxLink(objdir: string, call: LinkCall, extraEnv: NodeJS.ProcessEnv = {}, ld?: string): StageRun {
  const args = ld ? [ld, ...call.args.slice(1)] : call.args;
  return stage(objdir, [process.execPath, kbxMain, 'link-vmlinux', ...args], { ...call.env, ...extraEnv });
}

export interface MapLine {
  addr: bigint;
  type: string;
  name: string;
}

export function readSystemMap(path: string): MapLine[] {
  return readFileSync(path, 'latin1')
    .split('\n')
    .filter((l) => l)
    .map((l) => {
      const [a, type, name] = l.split(' ');
      return { addr: BigInt(`0x${a}`), type: type!, name: name! };
    });
}
