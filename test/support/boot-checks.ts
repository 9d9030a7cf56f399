// What a booted kernel's console must show of its symbol table, for a kernel
// booted with BOOT_INIT's script (or one that prints the same markers):
// /proc/kallsyms lists System.map lines only, as many as the tree's C
// scripts/kallsyms keeps, and the sysrq backtrace of the write to
// /proc/sysrq-trigger names its functions at their System.map addresses.
// The 6.1 checks of test/boot.test.ts, for a kernel without modules or BTF.

import assert from 'node:assert/strict';
import { between } from './boot.js';
import type { MapLine } from './link-tree.js';

export const KALLSYMS_BEGIN = 'KBX-KALLSYMS-BEGIN';
export const KALLSYMS_END = 'KBX-KALLSYMS-END';
export const SYSRQ = 'KBX-SYSRQ';

// kptr_restrict 0 and root (CAP_SYSLOG) make /proc/kallsyms show addresses
// (kallsyms_show_value). Kernel messages stay off the console while the list
// prints, then come back for the backtrace. With no ACPI, poweroff would halt
// and leave QEMU running: a reboot ends QEMU under -no-reboot (and panic=-1
// covers init dying).
/**
 * The init script: /proc (and /sys with `sysfs`), the symbol list between its
 * markers, then `afterList` (lines of shell run before the backtrace), then
 * the backtrace, then a reboot.
 */
export function bootInit(opts: { sysfs?: boolean; afterList?: string } = {}): string {
  return `export PATH=/bin
/bin/busybox mount -t proc proc /proc
${opts.sysfs ? '/bin/busybox mount -t sysfs sysfs /sys\n' : ''}/bin/busybox --install -s /bin
echo 0 > /proc/sys/kernel/kptr_restrict
echo 1 > /proc/sys/kernel/printk
echo ${KALLSYMS_BEGIN}
cat /proc/kallsyms
echo ${KALLSYMS_END}
${opts.afterList ?? ''}sleep 1
echo 8 > /proc/sys/kernel/printk
echo ${SYSRQ}
echo l > /proc/sysrq-trigger
sleep 2
reboot -f
`;
}
export const BOOT_INIT = bootInit();
export const BOOT_APPEND = 'console=ttyS0 nokaslr panic=-1';

/**
 * On top of tinyconfig, what BOOT_INIT needs of an x86 kernel: 64 bits, a
 * serial console, an initramfs with a static busybox, /proc with sysctl,
 * sysrq 'l' (SMP only), and frame pointers for backtraces the unwinder can
 * vouch for (tinyconfig guesses: BOOT_OPTIONS_OFF).
 */
export const BOOT_OPTIONS = [
  '64BIT', 'SMP', 'TTY', 'SERIAL_8250', 'SERIAL_8250_CONSOLE', 'PRINTK', 'BLK_DEV_INITRD', 'BINFMT_ELF', 'BINFMT_SCRIPT',
  'PROC_FS', 'PROC_SYSCTL', 'MAGIC_SYSRQ', 'UNWINDER_FRAME_POINTER',
];
export const BOOT_OPTIONS_OFF = ['UNWINDER_GUESS'];

export interface KallsymsLine {
  addr: bigint;
  type: string;
  name: string;
}

/** The /proc/kallsyms listing between the markers of the console text. */
export function consoleKallsyms(console: string): KallsymsLine[] {
  const lines = between(console, KALLSYMS_BEGIN, KALLSYMS_END);
  assert.ok(lines, `no kallsyms listing on the console:\n${console.slice(-3000)}`);
  return lines
    .filter((l) => l.length > 0)
    .map((l) => {
      const m = /^([0-9a-f]+) (\S) (\S+)$/.exec(l);
      assert.ok(m, `not a /proc/kallsyms line: ${JSON.stringify(l)}`);
      return { addr: BigInt(`0x${m[1]}`), type: m[2]!, name: m[3]! };
    });
}

/**
 * Every symbol the kernel lists is a System.map line: same name, same
 * address, same type, except that kallsyms marks per-CPU symbols absolute
 * ('A') with CONFIG_KALLSYMS_ABSOLUTE_PERCPU. (A name can sit twice at one
 * address, as zero-sized lockdep keys do: counted.) Returns how many
 * per-CPU symbols were shown absolute.
 */
export function assertKallsymsInMap(ks: readonly KallsymsLine[], map: readonly MapLine[]): number {
  const left = new Map<string, MapLine[]>();
  for (const l of map) {
    const key = `${l.addr.toString(16)} ${l.name}`;
    left.set(key, [...(left.get(key) ?? []), l]);
  }
  const start = map.find((l) => l.name === '__per_cpu_start')!.addr;
  const end = map.find((l) => l.name === '__per_cpu_end')!.addr;
  let percpu = 0;
  for (const s of ks) {
    const m = left.get(`${s.addr.toString(16)} ${s.name}`)?.shift();
    assert.ok(m, `/proc/kallsyms has ${s.addr.toString(16)} ${s.type} ${s.name}, System.map does not (or fewer times)`);
    if (s.type === 'A' && m.type !== 'A') {
      assert.ok(m.addr >= start && m.addr <= end, `${s.name} is shown absolute but is not per-CPU`);
      percpu++;
    } else {
      assert.equal(s.type, m.type, `type of ${s.name}`);
    }
  }
  return percpu;
}

/**
 * The sysrq backtrace names the functions the write to /proc/sysrq-trigger
 * went through, each frame's offset and size agree with the kernel's symbol
 * list (the size is the distance to the next symbol, the offset falls
 * inside it), and each function is at its System.map address.
 */
export function assertSysrqBacktrace(console: string, map: readonly MapLine[]): void {
  const after = console.slice(console.indexOf(`\n${SYSRQ}\n`));
  assert.ok(after.length > 0 && /sysrq: Show backtrace of all active CPUs/.test(after), `no sysrq output:\n${console.slice(-3000)}`);
  // The unwinder's frames, "func+0xOFF/0xSIZE" (a leading "? " marks an unreliable one).
  const frames = [...after.matchAll(/^\s+(\? )?([A-Za-z_][\w.]*)\+0x([0-9a-f]+)\/0x([0-9a-f]+)$/gm)].map((m) => ({
    reliable: !m[1],
    name: m[2]!,
    off: BigInt(`0x${m[3]}`),
    size: BigInt(`0x${m[4]}`),
  }));
  const names = frames.map((f) => f.name);
  // The write to /proc/sysrq-trigger, from the system call down to the handler.
  for (const fn of ['write_sysrq_trigger', '__handle_sysrq', 'sysrq_handle_showallcpus', 'vfs_write', 'do_syscall_64']) {
    assert.ok(names.includes(fn), `${fn} is not in the backtrace:\n${after.slice(0, 4000)}`);
  }
  const sorted = consoleKallsyms(console).sort((x, y) => (x.addr < y.addr ? -1 : x.addr > y.addr ? 1 : 0));
  for (const f of frames) {
    const i = sorted.findIndex((s) => s.name === f.name && /[tTwW]/.test(s.type));
    assert.ok(i >= 0, `${f.name} is not a text symbol of the kernel`);
    const next = sorted.slice(i + 1).find((s) => s.addr > sorted[i]!.addr)!;
    assert.equal(f.size, next.addr - sorted[i]!.addr, `size of ${f.name}`);
    // %pB prints a return address looked up one byte back: it may be the very end.
    assert.ok(f.off <= f.size, `${f.name}+0x${f.off.toString(16)} is past its end`);
    assert.ok(map.some((l) => l.name === f.name && l.addr === sorted[i]!.addr), `${f.name} is not at its System.map address`);
  }
  assert.ok(frames.some((f) => f.reliable), 'every frame is unreliable');
}
