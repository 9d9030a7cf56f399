// A kernel tree built up to vmlinux's prerequisites, and the link stage run
// on it by the tree's script and by kbx with what make passes the script:
// the three arguments and the exported environment, captured once by
// overriding cmd_link_vmlinux on make's command line.
//
// One tree serves the link test, the boot test and the link benchmark:
// tinyconfig for x86_64 plus what a kernel needs to list its symbols and
// print a backtrace on a serial console (KALLSYMS_ALL, SMP for the absolute
// per-CPU symbols and sysrq's all-CPU backtrace, modules, an initramfs, proc),
// and BTF (DWARF, BPF, pahole's .BTF and resolve_btfids) where pahole is
// installed, so that the link's BTF steps are tested too; and three small
// modules (lib/ self-tests that only print), with BTF of their own where
// vmlinux has it, for the boot test to load.
//
// The source is a hard-linked copy of the shared 6.1 tree, in the tree's
// directory: the boot test edits a function body in it (replacing the file,
// never writing through the shared inode).

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kbxLinkEntry, routedShellCommand } from '../../src/kernel/link/route.js';
import { hasTool } from './kernel-tree.js';

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

/**
 * The call with pahole's -j (parallel BTF encoding, 1.22+) dropped: its type
 * order, and so the size of .BTF and every address after it, changes from
 * run to run, and tests compare two links of the same tree.
 */
export function reproducibleBtf(call: LinkCall): LinkCall {
  const flags = call.env.PAHOLE_FLAGS;
  return flags === undefined ? call : { ...call, env: { ...call.env, PAHOLE_FLAGS: flags.replace(/(^|\s)-j(?=\s|$)/g, '$1').trim() } };
}

/**
 * An `ld` that logs each invocation, to count full links of vmlinux (the
 * links with a linker script). Named `ld` it can go first on PATH.
 */
export function countingLd(dir: string, name = 'ld-counting'): { path: string; dir: string; log: string; links: () => number } {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  const log = join(dir, 'ld.log');
  const real = execFileSync('sh', ['-c', 'command -v ld'], { encoding: 'utf8' }).trim();
  writeFileSync(log, '');
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${real}' "$@"\n`);
  chmodSync(path, 0o755);
  const links = (): number => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('--script=')).length : 0);
  return { path, dir, log, links };
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

/**
 * `kbx link-vmlinux` with the same arguments and environment: by default
 * started as `kbx make` routes it (the recipe's shell text, make started by
 * the shell first), or with `direct` as a user would run it by hand.
 */
export function runKbxLink(objdir: string, call: LinkCall, extraEnv: NodeJS.ProcessEnv = {}, ld?: string, entry = kbxLinkEntry, direct = false): StageRun {
  const args = ld ? [ld, ...call.args.slice(1)] : call.args;
  const env = { ...call.env, ...extraEnv };
  if (direct) return stage(objdir, [process.execPath, entry, ...args], env);
  const sh = routedShellCommand(process.execPath, entry, env.MAKE || 'make', env.srctree ?? '.');
  return stage(objdir, ['sh', '-c', `${sh} "$@"`, 'sh', ...args], env);
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

// ---- the shared tree ---------------------------------------------------------

/** pahole (Debian's dwarves) makes CONFIG_DEBUG_INFO_BTF possible. */
export const WITH_BTF = hasTool('pahole');

/** What the tree enables on top of tinyconfig (all must come out =y). */
export const LINK_TREE_OPTIONS = [
  '64BIT', 'DEBUG_KERNEL', 'KALLSYMS', 'KALLSYMS_ALL', 'MODULES', 'SMP',
  // a console, an initramfs with a static busybox, /proc and sysrq
  'TTY', 'SERIAL_8250', 'SERIAL_8250_CONSOLE', 'PRINTK', 'BLK_DEV_INITRD', 'BINFMT_ELF', 'BINFMT_SCRIPT',
  'PROC_FS', 'PROC_SYSCTL', 'SYSFS', 'DEVTMPFS', 'MAGIC_SYSRQ',
  // frame pointers for backtraces the unwinder can vouch for (tinyconfig guesses)
  'UNWINDER_FRAME_POINTER',
  // the menu the test modules are in
  'RUNTIME_TESTING_MENU',
  ...(WITH_BTF ? ['DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT', 'BPF_SYSCALL', 'DEBUG_INFO_BTF', 'DEBUG_INFO_BTF_MODULES'] : []),
];
/**
 * The tree's modules (all must come out =m): one compile unit each, no
 * hardware, no side effect but a line in the log, and they stay loaded
 * (init returns 0 when their self-test passes).
 */
export const LINK_TREE_MODULES = ['TEST_BITOPS', 'TEST_HEXDUMP', 'TEST_UUID'];
const LINK_TREE_OFF = ['UNWINDER_GUESS', ...(WITH_BTF ? ['DEBUG_INFO_NONE'] : [])];

export const LINK_TREE_DIR = process.env.KBX_LINK_TEST_DIR ?? '/var/tmp/kbx-link-test';

export interface LinkTree {
  /** The tree's hard-linked copy of the 6.1 source. */
  src: string;
  /** The object tree (O=). */
  out: string;
  /** What make passed scripts/link-vmlinux.sh in the last build. */
  call: LinkCall;
}

function configure(src: string, out: string): void {
  const conf = join(out, '.config');
  const missing = (): string[] => {
    const text = existsSync(conf) ? readFileSync(conf, 'utf8') : '';
    return [
      ...LINK_TREE_OPTIONS.filter((o) => !text.includes(`\nCONFIG_${o}=y\n`)),
      ...LINK_TREE_MODULES.filter((o) => !text.includes(`\nCONFIG_${o}=m\n`)).map((o) => `${o}=m`),
      ...LINK_TREE_OFF.filter((o) => !text.includes(`\n# CONFIG_${o} is not set\n`)).map((o) => `no ${o}`),
    ];
  };
  if (missing().length === 0) return;
  mkdirSync(out, { recursive: true });
  make(src, [`O=${out}`, 'tinyconfig']);
  const r = spawnSync(join(src, 'scripts/config'), ['--file', conf, ...LINK_TREE_OPTIONS.flatMap((o) => ['-e', o]), ...LINK_TREE_MODULES.flatMap((o) => ['-m', o]), ...LINK_TREE_OFF.flatMap((o) => ['-d', o])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/config failed: ${r.stderr}`);
  make(src, [`O=${out}`, 'olddefconfig']);
  const still = missing();
  if (still.length) throw new Error(`could not set ${still.join(', ')} in ${conf}`);
}

/** `shared` hard-linked into `dir`/src once (copied beside it and renamed, so never half a tree). */
function sourceCopy(shared: string, dir: string): string {
  const src = join(dir, 'src');
  if (existsSync(join(src, 'Makefile'))) return src;
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, 'src.tmp');
  rmSync(tmp, { recursive: true, force: true });
  execFileSync('cp', ['-al', shared, tmp]);
  rmSync(src, { recursive: true, force: true });
  renameSync(tmp, src);
  return src;
}

/** Replaces a file of the tree's source with `text` (a new inode: the shared tree's file stays as it is). */
export function replaceSource(lt: LinkTree, rel: string, text: string): void {
  const p = join(lt.src, rel);
  unlinkSync(p);
  writeFileSync(p, text);
}

/**
 * The tree configured and built up to vmlinux and its modules (vmlinux
 * linked by the stock script, with what make passes it captured). The first
 * call on a machine builds the kernel; later calls find it built and only
 * run make's checks (and the modules' BTF step, when vmlinux was relinked).
 */
export function linkTree(shared: string, dir = LINK_TREE_DIR): LinkTree {
  const src = sourceCopy(shared, dir);
  const out = join(dir, 'out');
  configure(src, out);
  make(src, [`O=${out}`, '-j2', 'vmlinux', 'modules', captureOverride()]);
  return { src, out, call: readLinkCall(out) };
}
