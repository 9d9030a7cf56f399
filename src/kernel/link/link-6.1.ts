// Linux 6.1's scripts/link-vmlinux.sh, step by step, with the kallsyms passes
// replaced by one link:
//
//   make init/version-timestamp.o         (as the script does)
//   BTF link + pahole + objcopy           (when CONFIG_DEBUG_INFO_BTF, as the script does)
//   reserve: predict the symbols from vmlinux.o and the linker script, size
//            every kallsyms table with a margin, assemble that as .incbin data
//   link vmlinux once with the reserved tables (and .BTF)
//   regenerate: mksysmap vmlinux -> kallsyms in TypeScript
//   check: the tables fit their slots, the slots sit where they were laid out
//   patch the tables into vmlinux in place, zero-padded, and decode them back
//   resolve_btfids, System.map, sorttable, the consistency check, .vmlinux.d
//
// Anything that does not fit or does not match is a LinkMisfit: the caller
// runs the tree's own script instead. A failing command is a LinkStepError,
// as it is a failure of the script under `set -e`.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { ElfFile } from '../../elf/elf-file.js';
import { join } from 'node:path';
import { decodeTables, elfTableSource, imageSource, kallsyms, layoutTables, type KallsymsOptions, type KallsymsTables } from '../kallsyms/index.js';
import { KallsymsError } from '../kallsyms/symbols.js';
import { symbolLocation, type Patch } from '../../elf/patch.js';
import { openElf, writePatches } from './elf-io.js';
import { estimateSymbols, estimateTables } from './estimate.js';
import { LinkMisfit, LinkStepError, type LinkListener, type LinkReport } from './events.js';
import { capture, run, runAsync, tryRun, type Runner } from './exec.js';
import { objtree, scriptPath, srctree, words, type LinkInputs } from './kbuild-env.js';
import { parseLinkerScript } from './linker-script.js';
import { DEFAULT_MARGIN, misfit, reserve, reservedAsm, reservedImage, tableBytes, type Margin, type Reservation } from './reserve.js';

export interface SingleLinkOptions {
  margin?: Margin;
  /** Added to the kallsyms_names reservation (negative to force a misfit in tests). */
  namesExtra?: number;
}

/** Files of the single link (all `.tmp_*`, which `make clean` removes). */
export const KSYMS = {
  S: '.tmp_vmlinux.kbx.S',
  bin: '.tmp_vmlinux.kbx.bin',
  o: '.tmp_vmlinux.kbx.o',
  syms: '.tmp_vmlinux.kbx.syms',
} as const;

const SHT_RELA = 4;
const SHT_REL = 9;

class Link61 {
  private readonly r: Runner;
  private links = 0;

  constructor(
    private readonly inp: LinkInputs,
    emit: LinkListener,
  ) {
    this.r = { cwd: inp.cwd, env: inp.env, emit };
  }

  private on(opt: string): boolean {
    return this.inp.enabled.has(opt);
  }

  private info(tag: string, target: string): void {
    this.r.emit({ kind: 'info', tag, target });
  }

  private get env(): NodeJS.ProcessEnv {
    return this.inp.env;
  }

  /** vmlinux_link(): one full link of the kernel. */
  link(output: string, extra: readonly string[]): void {
    this.info('LD', output);
    const e = this.env;
    let objs: string[];
    let libs: string[];
    if (this.on('CONFIG_LTO_CLANG') || this.on('CONFIG_X86_KERNEL_IBT')) {
      objs = ['vmlinux.o'];
      libs = [];
    } else {
      objs = ['vmlinux.a'];
      libs = words(e.KBUILD_VMLINUX_LIBS);
    }
    if (this.on('CONFIG_MODULES')) objs.push('.vmlinux.export.o');
    objs.push('init/version-timestamp.o');
    const [LD, KBUILD_LDFLAGS, LDFLAGS_vmlinux] = this.inp.args;
    let wl = '';
    let ld: string[];
    let ldflags: string[];
    let ldlibs: string[] = [];
    if (e.SRCARCH === 'um') {
      wl = '-Wl,';
      ld = words(e.CC);
      ldflags = words(e.CFLAGS_vmlinux);
      ldlibs = ['-lutil', '-lrt', '-lpthread'];
    } else {
      ld = words(LD);
      ldflags = [...words(KBUILD_LDFLAGS), ...words(LDFLAGS_vmlinux)];
    }
    ldflags.push(`${wl}--script=${objtree(this.inp)}/${e.KBUILD_LDS ?? ''}`);
    if (output.startsWith('.tmp_vmlinux.kallsyms')) ldflags.push(`${wl}--strip-debug`);
    if (this.on('CONFIG_VMLINUX_MAP')) ldflags.push(`${wl}-Map=${output}.map`);
    this.links++;
    run(this.r, [
      ...ld,
      ...ldflags,
      '-o',
      output,
      `${wl}--whole-archive`,
      ...objs,
      `${wl}--no-whole-archive`,
      `${wl}--start-group`,
      ...libs,
      `${wl}--end-group`,
      ...extra.filter((x) => x !== ''),
      ...ldlibs,
    ]);
  }

  /** gen_btf(): the BTF link, pahole, and .BTF as a relocatable object. */
  genBtf(vmlinux: string, out: string): void {
    const e = this.env;
    const pahole = e.PAHOLE ?? '';
    const fail = (why: string): never => {
      throw new LinkStepError(`${why}\nFailed to generate BTF for vmlinux\nTry to disable CONFIG_DEBUG_INFO_BTF`, 1);
    };
    const found = capture(this.r, ['sh', '-c', 'command -v "$1"', 'sh', pahole]);
    if (found.status !== 0 || !pahole) fail(`BTF: ${vmlinux}: pahole (${pahole}) is not available`);
    const v = capture(this.r, [...words(pahole), '--version']).stdout.trim();
    const num = Number(v.replace(/v([0-9]+)\.([0-9]+)/, '$1$2'));
    if (!(num >= 116)) fail(`BTF: ${vmlinux}: pahole version ${v} is too old, need at least v1.16`);
    this.link(vmlinux, []);
    this.info('BTF', out);
    run(this.r, [...words(pahole), '-J', ...words(e.PAHOLE_FLAGS), vmlinux], { env: { ...e, LLVM_OBJCOPY: e.OBJCOPY } });
    run(this.r, [...words(e.OBJCOPY), '--only-section=.BTF', '--set-section-flags', '.BTF=alloc,readonly', '--strip-all', vmlinux, out], {
      quietStderr: true,
    });
    // e_type = ET_REL, so that ld accepts it as an input.
    const et = this.on('CONFIG_CPU_BIG_ENDIAN') ? [0, 1] : [1, 0];
    writePatches(join(this.inp.cwd, out), [{ offset: 16, bytes: Uint8Array.from(et) }]);
  }

  mksysmap(vmlinux: string, out: string): void {
    this.info('NM', out);
    run(this.r, this.mksysmapArgv(vmlinux, out));
  }

  mksysmapArgv(vmlinux: string, out: string): string[] {
    return [...words(this.env.CONFIG_SHELL || 'sh'), `${srctree(this.inp)}/scripts/mksysmap`, vmlinux, out];
  }

  kallsymsOptions(): KallsymsOptions {
    return {
      allSymbols: this.on('CONFIG_KALLSYMS_ALL'),
      absolutePercpu: this.on('CONFIG_KALLSYMS_ABSOLUTE_PERCPU'),
      baseRelative: this.on('CONFIG_KALLSYMS_BASE_RELATIVE'),
      ltoClang: this.on('CONFIG_LTO_CLANG'),
    };
  }

  path(p: string): string {
    return join(this.inp.cwd, p);
  }

  /**
   * Predicts the table from the link's objects and reserves room for it.
   * `timestamp` is init/version-timestamp.o as read (it may be rebuilt while
   * this runs; its symbols do not depend on the version it holds).
   */
  predict(opts: KallsymsOptions, o: SingleLinkOptions, timestamp: ElfFile): Prediction {
    const objects = ['vmlinux.o', ...(this.on('CONFIG_MODULES') ? ['.vmlinux.export.o'] : [])];
    const files = objects.map((p) => openElf(this.path(p)));
    try {
      const elfs = [...files.map((f) => f.elf), timestamp];
      const h = elfs[0]!.header;
      const target = { wordSize: h.cls === 64 ? 8 : 4, endian: h.endian } as const;
      const lds = parseLinkerScript(readFileSync(this.path(`${objtree(this.inp)}/${this.env.KBUILD_LDS ?? ''}`), 'utf8'));
      const est = estimateTables(estimateSymbols(elfs, lds, opts), opts, target);
      const res = reserve(est, o.margin ?? DEFAULT_MARGIN, o.namesExtra ?? 0);
      // The estimate's bytes are placeholders (its addresses are unknown); a
      // reservation too small even for them (forced in tests) stays zero.
      const image = misfit(est, res) ? Buffer.alloc(res.total) : reservedImage(est, res);
      return { res, target, image, timestampKey: symbolKey(timestamp) };
    } finally {
      for (const f of files) f.close();
    }
  }

  /** Writes the reserved table as .incbin data and assembles it. */
  assemble(p: Prediction): void {
    const e = this.env;
    this.info('KSYMS', KSYMS.S);
    writeFileSync(this.path(KSYMS.bin), p.image);
    writeFileSync(this.path(KSYMS.S), reservedAsm(p.res, KSYMS.bin, 0n));
    this.info('AS', KSYMS.o);
    run(this.r, [
      ...words(e.CC),
      ...words(e.NOSTDINC_FLAGS),
      ...words(e.LINUXINCLUDE),
      ...words(e.KBUILD_CPPFLAGS),
      ...words(e.KBUILD_AFLAGS),
      ...words(e.KBUILD_AFLAGS_KERNEL),
      '-c',
      '-o',
      KSYMS.o,
      KSYMS.S,
    ]);
  }

  readTimestamp(): ElfFile | undefined {
    if (!existsSync(this.path(TIMESTAMP))) return undefined;
    const f = openElf(this.path(TIMESTAMP));
    f.close();
    return f.elf;
  }

  /** Regenerates the table from the linked vmlinux and patches it into the reserved slots. */
  async patchTables(opts: KallsymsOptions, res: Reservation, target: KallsymsTables['target'], before: () => Promise<void>): Promise<KallsymsTables> {
    this.mksysmap('vmlinux', KSYMS.syms);
    const ready = before(); // System.map from the same symbols, while the table is made
    try {
      return await this.regenerate(opts, res, target, ready);
    } catch (e) {
      await ready.catch(() => undefined); // nothing of ours still running when the script takes over
      throw e;
    }
  }

  private async regenerate(opts: KallsymsOptions, res: Reservation, target: KallsymsTables['target'], ready: Promise<void>): Promise<KallsymsTables> {
    let tables: KallsymsTables;
    try {
      const r = kallsyms(readFileSync(this.path(KSYMS.syms)), opts, target);
      for (const d of r.diagnostics) process.stderr.write(`${d}\n`); // what the C tool prints, kept
      tables = r.tables;
    } catch (e) {
      if (e instanceof KallsymsError) throw new LinkStepError(e.message, 1);
      throw e;
    }
    this.info('KSYMS', 'vmlinux (in place)');
    const why = misfit(tables, res);
    if (why) throw new LinkMisfit(`the kallsyms table does not fit the room reserved in the single link: ${why}`);

    const file = openElf(this.path('vmlinux'));
    try {
      const elf = file.elf;
      const first = elf.symbol(res.slots[0]!.name);
      if (!first || first.sectionIndex < 0) throw new LinkMisfit(`vmlinux has no ${res.slots[0]!.name}`);
      const section = elf.sections[first.sectionIndex]!;
      file.load([section]);
      const bytes = tableBytes(tables);
      const relocatable = elf.sections.some((s) => s.type === SHT_RELA || s.type === SHT_REL);
      const patches: Patch[] = [];
      for (const s of res.slots) {
        const sym = elf.symbol(s.name);
        if (!sym || sym.sectionIndex !== first.sectionIndex || sym.value !== first.value + BigInt(s.offset)) {
          throw new LinkMisfit(`${s.name} is not where the reserved layout put it (the linker moved the tables)`);
        }
        const loc = symbolLocation(elf, sym);
        if (loc.available < s.size) throw new LinkMisfit(`${s.name} runs past the end of ${section.name}`);
        const slot = Buffer.alloc(s.size);
        slot.set(bytes.get(s.name)!);
        if (s.name === 'kallsyms_relative_base') {
          const now = elf.bytes.subarray(loc.offset, loc.offset + s.size);
          // Linked as `_text + 0`; a relocatable vmlinux records a relocation
          // for it, which a patch of the bytes cannot move.
          if (relocatable && !Buffer.from(now).equals(slot)) {
            throw new LinkMisfit(`${s.name} differs from what was linked and vmlinux carries relocations for it`);
          }
        }
        patches.push({ offset: loc.offset, bytes: slot });
      }
      await ready;
      writePatches(this.path('vmlinux'), patches);
    } finally {
      file.close();
    }
    this.verify(tables);
    return tables;
  }

  /** Decodes the tables back out of vmlinux: they must list exactly the regenerated symbols. */
  verify(t: KallsymsTables): void {
    const file = openElf(this.path('vmlinux'));
    try {
      const elf = file.elf;
      const sym = elf.symbol('kallsyms_num_syms');
      if (sym && sym.sectionIndex >= 0) file.load([elf.sections[sym.sectionIndex]!]);
      const params = { ...t.target, baseRelative: t.baseRelative, absolutePercpu: t.absolutePercpu };
      const got = decodeTables(elfTableSource(elf), params).symbols;
      const { image, tables } = layoutTables(t);
      const want = decodeTables(imageSource(image, tables), params).symbols;
      const bad = got.length !== want.length ? 0 : got.findIndex((g, i) => g.name !== want[i]!.name || g.type !== want[i]!.type || g.addr !== want[i]!.addr);
      if (got.length !== want.length || bad >= 0) {
        throw new LinkMisfit(`the patched tables decode to ${got.length} symbols, not the ${want.length} regenerated (first difference at ${bad})`);
      }
    } catch (e) {
      if (e instanceof KallsymsError) throw new LinkMisfit(`the patched tables do not decode: ${e.message}`);
      throw e;
    } finally {
      file.close();
    }
  }

  async main(o: SingleLinkOptions): Promise<LinkReport> {
    const e = this.env;
    const t0 = performance.now();
    const kallsymsOn = this.on('CONFIG_KALLSYMS');
    // Absolute addresses would each need a relocation in a relocatable kernel (only ia64 has them in 6.1).
    if (kallsymsOn && !this.on('CONFIG_KALLSYMS_BASE_RELATIVE')) {
      throw new LinkMisfit('kallsyms tables without CONFIG_KALLSYMS_BASE_RELATIVE are left to the script');
    }
    const opts = this.kallsymsOptions();
    // make brings init/version-timestamp.o up to date, as the script does;
    // the table is predicted meanwhile from the object as it was.
    const oldTimestamp = kallsymsOn ? this.readTimestamp() : undefined;
    const made = runAsync(this.r, [...words(e.MAKE || 'make'), '-f', `${srctree(this.inp)}/scripts/Makefile.build`, 'obj=init', TIMESTAMP]);
    let prediction: Prediction | undefined;
    try {
      if (oldTimestamp) prediction = this.predict(opts, o, oldTimestamp);
    } finally {
      const status = await made;
      if (status !== 0) throw new LinkStepError(`make ${TIMESTAMP} exited with status ${status}`, status);
    }

    let btfO = '';
    if (this.on('CONFIG_DEBUG_INFO_BTF')) {
      btfO = '.btf.vmlinux.bin.o';
      this.genBtf('.tmp_vmlinux.btf', btfO);
    }

    const btfIds = this.on('CONFIG_DEBUG_INFO_BTF') && this.on('CONFIG_BPF');
    const systemMap = async (): Promise<void> => {
      if (btfIds) {
        this.info('BTFIDS', 'vmlinux');
        run(this.r, [...words(e.RESOLVE_BTFIDS), 'vmlinux']);
      }
      this.info('NM', 'System.map');
      const status = await runAsync(this.r, this.mksysmapArgv('vmlinux', 'System.map'));
      if (status !== 0) throw new LinkStepError(`mksysmap vmlinux System.map exited with status ${status}`, status);
    };

    let report: LinkReport['kallsyms'];
    if (kallsymsOn) {
      const now = this.readTimestamp();
      if (!now) throw new LinkStepError(`${TIMESTAMP} was not built`, 1);
      if (!prediction || prediction.timestampKey !== symbolKey(now)) prediction = this.predict(opts, o, now);
      const { res, target } = prediction;
      this.assemble(prediction);
      this.link('vmlinux', [KSYMS.o, btfO]);
      // resolve_btfids and System.map do not touch the symbols or the tables:
      // they run while the table is regenerated (and finish before the patch).
      const t = await this.patchTables(opts, res, target, btfIds ? async () => undefined : systemMap);
      if (btfIds) await systemMap();
      const use = layoutTables(t).image.length;
      const slots: Record<string, [number, number]> = {};
      const bytes = tableBytes(t);
      for (const s of res.slots) slots[s.name] = [s.size, bytes.get(s.name)?.length ?? 0];
      report = { symbols: t.numSyms, reservedBytes: res.total, tableBytes: use, paddingBytes: res.total - use, slots };
    } else {
      this.link('vmlinux', [btfO]);
      await systemMap();
    }

    if (this.on('CONFIG_BUILDTIME_TABLE_SORT')) {
      this.info('SORTTAB', 'vmlinux');
      if (tryRun(this.r, [`${objtree(this.inp)}/scripts/sorttable`, 'vmlinux']) !== 0) {
        throw new LinkStepError('Failed to sort kernel tables', 1);
      }
    }
    // The script's consistency check: the symbols the table was made from are System.map's.
    if (kallsymsOn && !readFileSync(this.path('System.map')).equals(readFileSync(this.path(KSYMS.syms)))) {
      throw new LinkMisfit('System.map differs from the symbols the kallsyms table was made from');
    }
    writeFileSync(this.path('.vmlinux.d'), `vmlinux: ${scriptPath(this.inp)}\n`);
    return { mode: 'single', links: this.links, kallsyms: report, seconds: (performance.now() - t0) / 1000 };
  }
}

interface Prediction {
  res: Reservation;
  target: KallsymsTables['target'];
  image: Buffer;
  timestampKey: string;
}

const TIMESTAMP = 'init/version-timestamp.o';

/** The symbols of an object, by name, kind and section: what the prediction reads of it. */
function symbolKey(elf: ElfFile): string {
  return elf
    .symbols()
    .map((s) => `${s.name}/${s.bind}/${s.type}/${s.shndx}/${elf.sections[s.sectionIndex]?.name ?? ''}`)
    .join('\n');
}

/** Links vmlinux once, as 6.1's script would have linked it several times. */
export function linkOnce61(inp: LinkInputs, emit: LinkListener, o: SingleLinkOptions = {}): Promise<LinkReport> {
  return new Link61(inp, emit).main(o);
}

