// A synthetic `nm -n` map for kallsyms tests and benchmarks.

/** A small deterministic PRNG so the synthetic map is the same every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/**
 * A 64-bit x86-like map with the cases kallsyms.c treats specially: percpu
 * symbols at 0, text and init text ranges, symbols at _etext, ignored names,
 * absolute and undefined symbols, weak and linker-provided ties, names of
 * 128+ and 512+ bytes, latin1 bytes, ".llvm." suffixes.
 *
 * 'nm' (6.1's tool reads `nm -n` with fscanf) adds untidy whitespace, lines
 * without an address and names longer than fscanf's buffer. 'mksysmap'
 * (6.12's tool reads mksysmap's output a line at a time and exits on a line
 * of another shape) keeps every line `<hex> <type> <name>`, and adds what
 * that reader takes: names with blanks, an empty name, a NUL, signs, 0x,
 * 17 digits, leading blanks, and __start_/__stop_ names outside the text.
 */
export function syntheticMap(count: number, seed = 1, shape: 'nm' | 'mksysmap' = 'nm'): Buffer {
  const nm = shape === 'nm';
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const words = ['read', 'write', 'lock', 'page', 'init', 'sched', 'irq', 'net', 'dev', 'alloc', 'free', 'map', 'kmem', 'cache', 'do', 'sys', 'x86', 'pci', 'tty', 'fs'];
  const suffixes = ['', '', '', '', '.cold', '.isra.0', '.constprop.0', '.llvm.1234567', '.part.1'];
  const name = (): string => {
    const n = 1 + Math.floor(rnd() * 4);
    const parts = Array.from({ length: n }, () => pick(words));
    return pick(['', '', '_', '__', '___']) + parts.join('_') + pick(suffixes);
  };
  const lines: string[] = [];
  const hex = (a: bigint): string => a.toString(16).padStart(16, '0');
  const sym = (a: bigint, t: string, n: string): void => void lines.push(`${hex(a)} ${t} ${n}`);

  sym(0n, 'D', '__per_cpu_start');
  sym(0n, 'D', 'fixed_percpu_data');
  for (let i = 1; i < 40; i++) sym(BigInt(i * 64), pick(['D', 'd', 'b']), `pcpu_${name()}`);
  sym(0x2000n, 'D', '__per_cpu_end');
  sym(0x20n, 'a', 'ignored_absolute');
  sym(0x30n, 'A', '__gp');
  if (nm) lines.push('                 U printk', '                 w weak_undefined', '', '\t');
  else {
    sym(0x40n, 'U', 'undefined_with_address_kept_by_6_12');
    sym(0x40n, 'u', 'unique_global_dropped');
    lines.push(' \t 0x1200 D leading_blanks_and_0x', '+1300 D plus_sign', '-10 D minus_sign', '1ffffffffffffffff D seventeen_digits_saturate');
  }

  const base = 0xffffffff81000000n;
  let a = base;
  sym(a, 'T', '_text');
  sym(a, 'T', '_stext');
  sym(a, 'T', 'startup_64');
  const special = [
    ['T', 'kallsyms_names'],
    ['T', '_SDA_BASE_'],
    ['t', '__efistub_foo'],
    ['t', '__kvm_nvhe_$x'],
    ['t', '__kvm_nvhe_.Ltmp'],
    ['t', 'thing_veneer'],
    ['t', 'a.long_branch.b'],
    ['t', 'c.plt_branch.d'],
    ['N', 'debug_thing'],
    ['U', 'undefined_with_address'],
    ['W', 'weak_tie'],
    ['T', '__start_tie'],
    ['T', '___tie'],
    ['T', 'tie'],
    ['t', 'long_' + 'x'.repeat(140)],
    // 510 bytes: the longest name the C tool handles; at 511 its
    // compare_names() overflows a 512-byte stack buffer (type + name + NUL).
    ['t', 'max_' + 'y'.repeat(506)],
    ['t', 'reported_' + 'y'.repeat(503)],
    ['t', 'toolong_' + 'z'.repeat(520)],
    ['t', `latin1_caf\u00e9_\u00ff`],
    ['T', '__x86_indirect_thunk_rax'],
    ['t', 'same_addr_b'],
    ['t', 'same_addr_a'],
  ] as const;
  const special612 = [
    ['t', 'name with blanks\tand a tab'],
    ['T', ''],
    ['t', 'nul_in\0_name'],
    ['N', 'debug_with_address_kept_by_6_12'],
    ['n', 'debug_dropped'],
    [' ', 'blank_type'],
    ['t', 'has /* in it'],
  ] as const;
  for (let i = 0; i < count; i++) {
    if (i % 97 === 0) {
      const [t, n] = special[(i / 97) % special.length]!;
      sym(a, t, n);
    }
    if (!nm && i % 101 === 0) {
      const [t, n] = special612[(i / 101) % special612.length]!;
      sym(a, t, n);
    }
    if (nm && i % 53 === 0) lines.push(`  ${hex(a)}\t${pick(['t', 'T', 'W'])}   ${name()}  `);
    else sym(a, pick(['T', 't', 't', 'W', 'w']), name());
    if (rnd() < 0.9) a += BigInt(1 + Math.floor(rnd() * 400));
  }
  sym(a, 'T', 'at_etext_dropped');
  sym(a, 'T', '_etext');
  a += 0x1000n;
  sym(a, 'D', '__start_rodata');
  for (let i = 0; i < 30; i++, a += 8n) sym(a, pick(['D', 'd', 'R', 'r', 'B', 'b', 'V']), name());
  if (!nm) {
    sym(a, 'D', '__stop_rodata_kept_by_6_12');
    sym(a, 'D', '__end_rodata_dropped');
  }
  sym(a, 'T', '_sinittext');
  for (let i = 0; i < 30; i++, a += 16n) sym(a, pick(['T', 't']), `init_${name()}`);
  sym(a, 't', 'at_einittext_dropped');
  sym(a, 'T', '_einittext');
  a += 16n;
  sym(a, 'B', '__bss_stop');
  // Longer than fscanf's %2048s: the rest of the name is scanned as the next
  // record (a hex-looking rest becomes an address), as 6.1's tool does.
  // 6.12's reads the whole line: one name, reported as too long.
  lines.push(`${hex(a)} t ${'q'.repeat(2100)}`);
  lines.push(`${hex(a)} t ${'r'.repeat(2048)}abc t leftover_symbol`);
  sym(a, 'B', '_end');
  return Buffer.from(lines.join('\n') + '\n', 'latin1');
}

