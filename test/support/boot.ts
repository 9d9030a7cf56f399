// Booting a kernel in QEMU (TCG, serial console) with a one-file initramfs:
// Debian's static busybox and an init script, packed as a newc cpio written
// here (so a device node needs no root). The console text comes back for
// the test to read.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { check, program, type Need } from './tools.js';

export const BUSYBOX = '/bin/busybox';
export const QEMU = 'qemu-system-x86_64';

/** What booting needs: QEMU and a static busybox for the initramfs. */
export function bootNeeds(): Need[] {
  return [program(QEMU, 'qemu-system-x86'), check(`${BUSYBOX}, statically linked`, 'busybox-static', existsSync(BUSYBOX) && isStatic(readFileSync(BUSYBOX)))];
}

/** An ELF executable without a PT_INTERP program header (no dynamic loader). */
function isStatic(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  const phnum = elf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > elf.length) return false;
    if (elf.readUInt32LE(at) === 3) return false; // PT_INTERP
  }
  return true;
}

// ---- cpio (the "newc" format the kernel unpacks an initramfs from) -------------

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

/** Pure: the newc archive of `entries`, ending with the TRAILER!!! record. */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  let size = 0;
  const put = (b: Buffer): void => {
    parts.push(b);
    size += b.length;
  };
  const record = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]): void => {
    const nameBytes = Buffer.from(`${name}\0`);
    const fields = [ino++, mode, 0, 0, mode & S_IFDIR ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
    put(Buffer.from(`070701${fields.map(hex8).join('')}`, 'latin1'));
    put(nameBytes);
    put(pad4(size));
    put(data);
    put(pad4(size));
  };
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    switch (e.kind) {
      case 'dir':
        record(name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0));
        break;
      case 'file':
        record(name, S_IFREG | (e.mode ?? 0o644), e.data);
        break;
      case 'symlink':
        record(name, S_IFLNK | 0o777, Buffer.from(e.target));
        break;
      case 'char':
        record(name, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), [e.major, e.minor]);
        break;
    }
  }
  ino = 0;
  record('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/** An initramfs whose /init is `script`, run by busybox sh, with busybox's applets on PATH (and `extra` entries after). */
export function initramfs(script: string, extra: readonly CpioEntry[] = [], busybox = readFileSync(BUSYBOX)): Buffer {
  return cpioNewc([
    { kind: 'dir', path: 'bin' },
    { kind: 'dir', path: 'dev' },
    { kind: 'dir', path: 'proc' },
    { kind: 'dir', path: 'sys' },
    // The kernel opens /dev/console for init before any devtmpfs is mounted.
    { kind: 'char', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: Buffer.from(`#!/bin/busybox sh\n${script}`), mode: 0o755 },
    ...extra,
  ]);
}

// ---- QEMU ----------------------------------------------------------------------

export interface Boot {
  /** What the serial console printed, with the tty's \r removed. */
  console: string;
  /** QEMU's exit status (0 when the guest rebooted under -no-reboot); null if it was killed. */
  status: number | null;
  killed: boolean;
}

export interface BootOptions {
  kernel: string;
  initrd: string;
  append: string;
  cpus?: number;
  memoryMb?: number;
  /** A hung guest is killed after this long (a safety net, not a measurement). */
  killAfterMs?: number;
}

/** Boots under TCG with the serial console on stdio, until the guest reboots (QEMU exits). */
export function boot(o: BootOptions): Promise<Boot> {
  const args = [
    '-accel', 'tcg',
    '-nographic', '-no-reboot',
    '-m', String(o.memoryMb ?? 256),
    '-smp', String(o.cpus ?? 1),
    '-kernel', o.kernel,
    '-initrd', o.initrd,
    '-append', o.append,
  ];
  return new Promise((resolve, reject) => {
    // stdin stays an open pipe: -nographic multiplexes the monitor on it.
    const q = spawn(QEMU, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let killed = false;
    q.stdout.on('data', (d: Buffer) => out.push(d));
    q.stderr.on('data', (d: Buffer) => out.push(d));
    const timer = setTimeout(() => {
      killed = true;
      q.kill('SIGKILL');
    }, o.killAfterMs ?? 15 * 60_000);
    q.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    q.on('close', (code) => {
      clearTimeout(timer);
      q.stdin.destroy();
      resolve({ console: Buffer.concat(out).toString('latin1').replace(/\r/g, ''), status: code, killed });
    });
  });
}

/** The lines between two marker lines of the console text (undefined when the end marker never came). */
export function between(text: string, begin: string, end: string): string[] | undefined {
  const lines = text.split('\n');
  const b = lines.indexOf(begin);
  const e = lines.indexOf(end, b + 1);
  if (b < 0 || e < 0) return undefined;
  return lines.slice(b + 1, e);
}
