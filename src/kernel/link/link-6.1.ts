// scripts/link-vmlinux.sh, step by step, with the kallsyms passes replaced
// by one link. Written for Linux 6.1's script; what another version does
// differently (6.12: mksysmap, sorttable, resolve_btfids, which options it
// leaves to the script) its LinkVersion says (version.ts, v6.1.ts, v6.12.ts):
//
//   make init/version-timestamp.o         (as the script does; early.ts may
//                                          have started it before kbx loaded)
//   reserve: predict the symbols from vmlinux.o and the linker script, size
//            every kallsyms table with a margin (while make runs; the same
//            predicted symbols reuse the last reservation, reserve-cache.ts),
//            assemble that much room as .incbin data
//   BTF link + pahole + objcopy           (when CONFIG_DEBUG_INFO_BTF, as the script does)
//   link vmlinux once with the reserved room (and .BTF)
//   regenerate: mksysmap vmlinux -> kallsyms in TypeScript
//   check: the tables fit their slots, the slots sit where they were laid out
//   patch the tables into vmlinux in place, zero-padded, and read them back
//   resolve_btfids, System.map (the symbols just listed), sorttable, .vmlinux.d
//
// The report carries a timeline of these steps (`steps`), which the
// benchmark prints.
//
// Anything that does not fit or does not match is a LinkMisfit: the caller
// runs the tree's own script instead. A failing command is a LinkStepError,
// as it is a failure of the script under `set -e`.

import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ElfFile } from '../../elf/elf-file.js';
import { join } from 'node:path';
import { buildTables, layoutTables, nameTables, readSelection, type KallsymsOptions, type KallsymsTables, type NameTables } from '../kallsyms/index.js';
import { KallsymsError } from '../kallsyms/symbols.js';
import { addressLocation, type FileLocation, type Patch } from '../../elf/patch.js';
import { ElfError } from '../../elf/reader.js';
import { openElf, readBack, writePatches } from './elf-io.js';
import { estimateSymbols, estimateTables } from './estimate.js';
import { LinkMisfit, LinkStepError, type LinkListener, type LinkReport, type LinkStep } from './events.js';
import { TIMESTAMP, timestampMake, type EarlyStart } from './early.js';
import { TIMESTAMP_COPY } from './made.js';
import { capture, run, runAsync, tryRun, type Runner } from './exec.js';
import { loadNames, namesKey, NAMES_CACHE, reorderNames, saveNames } from './names-cache.js';
import { loadReservation, RESERVE_CACHE, reservationKey, saveReservation } from './reserve-cache.js';
import { bufferShape, fileShape } from './symbol-shape.js';
import { reproduciblePaholeFlags } from '../btf/reproducible.js';
import { BTF_ROOM, btfRoomAsm, btfRoomSize, lastBtfSize, padBtf, recordBtfSize } from './btf-room.js';
import { sha256 } from '../../util/hash.js';
import { objtree, scriptPath, words, type LinkInputs } from './kbuild-env.js';
import { parseLinkerScript } from './linker-script.js';
import { DEFAULT_MARGIN, grow, misfit, reserve, reservedAsm, tableBytes, type Margin, type Reservation } from './reserve.js';
import type { LinkVersion } from './version.js';

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

class SingleLink {
  private readonly r: Runner;
  private links = 0;
  private names: NonNullable<LinkReport['kallsyms']>['names'] = 'computed';
  private preloaded: { key: string; names: NameTables } | undefined;
  /** vmlinux's symbol map, as patchTables listed it. */
  private map: Buffer | undefined;
  readonly steps: LinkStep[] = [];

  /** Runs f as one step of the report's timeline. */
  time<T>(step: string, f: () => T): T {
    const t = performance.now();
    const done = (): void => void this.steps.push({ step, at: t / 1000, seconds: (performance.now() - t) / 1000 });
    let out: T;
    try {
      out = f();
    } catch (e) {
      done();
      throw e;
    }
    if (out instanceof Promise) return out.finally(done) as T;
    done();
    return out;
  }

  constructor(
    private readonly inp: LinkInputs,
    emit: LinkListener,
    private readonly v: LinkVersion,
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
  link(output: string, extra: readonly string[]): Promise<void> {
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
    const argv = [
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
    ];
    // Started, not waited for: kbx has work of its own while ld runs.
    return this.time(`ld ${output}`, () => runAsync(this.r, argv)).then((status) => {
      if (status !== 0) throw new LinkStepError(`${argv.join(' ')} exited with status ${status}`, status);
    });
  }

  /**
   * gen_btf()'s checks of pahole (a failure is the script's), and whether
   * it can write BTF to a file of its own (--btf_encode_detached), which the
   * .BTF room needs.
   */
  checkPahole(vmlinux: string): { detached: boolean } {
    const pahole = this.env.PAHOLE ?? '';
    const fail = (why: string): never => {
      throw new LinkStepError(`${why}\nFailed to generate BTF for vmlinux\nTry to disable CONFIG_DEBUG_INFO_BTF`, 1);
    };
    const found = capture(this.r, ['sh', '-c', 'command -v "$1"', 'sh', pahole]);
    if (found.status !== 0 || !pahole) fail(`BTF: ${vmlinux}: pahole (${pahole}) is not available`);
    const v = capture(this.r, [...words(pahole), '--version']).stdout.trim();
    const num = Number(v.replace(/v([0-9]+)\.([0-9]+)/, '$1$2'));
    if (!(num >= 116)) fail(`BTF: ${vmlinux}: pahole version ${v} is too old, need at least v1.16`);
    return { detached: capture(this.r, [...words(pahole), '--help']).stdout.includes('--btf_encode_detached') };
  }

  /** gen_btf(): the BTF link, pahole, and .BTF as a relocatable object. */
  async genBtf(vmlinux: string, out: string): Promise<void> {
    const e = this.env;
    const pahole = e.PAHOLE ?? '';
    await this.link(vmlinux, []);
    this.info('BTF', out);
    this.time('pahole', () => run(this.r, [...words(pahole), '-J', ...reproduciblePaholeFlags(words(e.PAHOLE_FLAGS)), vmlinux], { env: { ...e, LLVM_OBJCOPY: e.OBJCOPY } }));
    this.time('objcopy .BTF', () =>
      run(this.r, [...words(e.OBJCOPY), '--only-section=.BTF', '--set-section-flags', '.BTF=alloc,readonly', '--strip-all', vmlinux, out], {
        quietStderr: true,
      }),
    );
    // e_type = ET_REL, so that ld accepts it as an input.
    const et = this.on('CONFIG_CPU_BIG_ENDIAN') ? [0, 1] : [1, 0];
    writePatches(join(this.inp.cwd, out), [{ offset: 16, bytes: Uint8Array.from(et) }]);
  }

  /** The .BTF room: zeros, assembled like the kallsyms room (btf-room.ts). */
  assembleBtfRoom(size: number): Promise<void> {
    writeFileSync(this.path(BTF_ROOM.bin), Buffer.alloc(size));
    writeFileSync(this.path(BTF_ROOM.S), btfRoomAsm(BTF_ROOM.bin));
    this.info('AS', BTF_ROOM.o);
    return this.assembleFile(BTF_ROOM.S, BTF_ROOM.o, 'as .BTF room');
  }

  /** pahole's BTF of the linked vmlinux, to a file. */
  encodeBtf(): Promise<void> {
    const e = this.env;
    this.info('BTF', BTF_ROOM.raw);
    // pahole 1.24 writes over an existing file without truncating it: a
    // shorter BTF would keep the old one's tail.
    rmSync(this.path(BTF_ROOM.raw), { force: true });
    const argv = [...words(e.PAHOLE), '-J', ...reproduciblePaholeFlags(words(e.PAHOLE_FLAGS)), `--btf_encode_detached=${BTF_ROOM.raw}`, 'vmlinux'];
    return this.time('pahole', () => runAsync(this.r, argv)).then((status) => {
      if (status !== 0) throw new LinkStepError(`${argv.join(' ')} exited with status ${status}\nFailed to generate BTF for vmlinux\nTry to disable CONFIG_DEBUG_INFO_BTF`, status);
    });
  }

  /** Writes pahole's BTF into the room in vmlinux (a misfit when it does not fit; its size is kept for the next room). */
  patchBtf(room: number): void {
    const btf = readFileSync(this.path(BTF_ROOM.raw));
    recordBtfSize(this.path(BTF_ROOM.last), btf.length);
    const padded = padBtf(btf, room);
    if (typeof padded === 'string') throw new LinkMisfit(`the BTF does not fit the room reserved in the single link: ${padded}`);
    const at = slotAddresses(this.map!, ['__start_BTF', '__stop_BTF']); // the map patchTables listed
    const start = at.get('__start_BTF');
    const stop = at.get('__stop_BTF');
    if (start === undefined || stop === undefined || stop - start !== BigInt(room)) {
      throw new LinkMisfit(`.BTF in vmlinux is not the ${room} bytes reserved for it`);
    }
    const file = openElf(this.path('vmlinux'), { symbols: false });
    let patch: Patch;
    try {
      const loc = this.locate(file.elf, start, '__start_BTF');
      if (loc.available < room) throw new LinkMisfit('the .BTF room runs past the end of its section');
      patch = { offset: loc.offset, bytes: padded };
    } finally {
      file.close();
    }
    this.info('BTF', 'vmlinux (in place)');
    this.time('patch .BTF', () => writePatches(this.path('vmlinux'), [patch]));
    this.verify([patch], 'BTF');
  }

  mksysmap(vmlinux: string, out: string): void {
    this.info('NM', out);
    this.time(`mksysmap ${out}`, () => run(this.r, this.mksysmapArgv(vmlinux, out)));
  }

  mksysmapArgv(vmlinux: string, out: string): string[] {
    return this.v.mksysmapArgv(this.inp, vmlinux, out);
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
    const ldsText = readFileSync(this.path(`${objtree(this.inp)}/${this.env.KBUILD_LDS ?? ''}`), 'utf8');
    const margin = o.margin ?? DEFAULT_MARGIN;
    const namesExtra = o.namesExtra ?? 0;
    const timestampKey = symbolKey(timestamp);
    // The same objects' symbols as last time (symbol-shape.ts): the same prediction.
    const shapes = [...objects.map((p) => fileShape(this.path(p))), bufferShape(Buffer.from(timestamp.bytes.buffer, timestamp.bytes.byteOffset, timestamp.bytes.byteLength))];
    const shape = shapes.every((x) => x !== undefined) ? sha256(JSON.stringify({ shapes, lds: sha256(ldsText), opts, margin, namesExtra })) : undefined;
    const cache = this.path(RESERVE_CACHE);
    const kept = shape ? loadReservation(cache, { shape }) : undefined;
    if (kept) return { res: kept.reservation, target: kept.target, reused: true, timestampKey, key: kept.key, shape, margin, namesExtra };

    const files = objects.map((p) => openElf(this.path(p)));
    try {
      const elfs = [...files.map((f) => f.elf), timestamp];
      const h = elfs[0]!.header;
      const target = { wordSize: h.cls === 64 ? 8 : 4, endian: h.endian } as const;
      const symbols = estimateSymbols(elfs, parseLinkerScript(ldsText), opts, this.v);
      const key = reservationKey(symbols, opts, target, margin, namesExtra);
      let res = loadReservation(cache, { key })?.reservation;
      const reused = !!res;
      if (!res) res = this.time('estimate tables', () => reserve(estimateTables(symbols, opts, target, this.v), margin, namesExtra));
      saveReservation(cache, { key, shape, target }, res);
      return { res, target, reused, timestampKey, key, shape, margin, namesExtra };
    } finally {
      for (const f of files) f.close();
    }
  }

  /**
   * Writes the reserved room as .incbin data and starts assembling it (it
   * runs while make does). The room is zeros: every byte of it is
   * overwritten by the patch, and zeros make the linked image (its build ID
   * among it) depend on the inputs alone.
   */
  assemble(p: Prediction): Promise<void> {
    this.info('KSYMS', KSYMS.S);
    writeFileSync(this.path(KSYMS.bin), Buffer.alloc(p.res.total));
    writeFileSync(this.path(KSYMS.S), reservedAsm(p.res, KSYMS.bin, 0n));
    this.info('AS', KSYMS.o);
    return this.assembleFile(KSYMS.S, KSYMS.o, 'as');
  }

  /** Assembles a .S of kbx's as the script assembles its kallsyms .S, started, not waited for. */
  assembleFile(src: string, out: string, step: string): Promise<void> {
    const e = this.env;
    const argv = [
      ...words(e.CC),
      ...words(e.NOSTDINC_FLAGS),
      ...words(e.LINUXINCLUDE),
      ...words(e.KBUILD_CPPFLAGS),
      ...words(e.KBUILD_AFLAGS),
      ...words(e.KBUILD_AFLAGS_KERNEL),
      '-c',
      '-o',
      out,
      src,
    ];
    return this.time(step, () => runAsync(this.r, argv)).then((status) => {
      if (status !== 0) throw new LinkStepError(`${argv.join(' ')} exited with status ${status}`, status);
    });
  }

  readTimestamp(): ElfFile | undefined {
    if (!existsSync(this.path(TIMESTAMP))) return undefined;
    const f = openElf(this.path(TIMESTAMP));
    f.close();
    return f.elf;
  }

  /** Regenerates the table from the linked vmlinux's symbols and patches it into the reserved slots. */
  patchTables(opts: KallsymsOptions, p: Prediction): KallsymsTables {
    const { res, target } = p;
    this.mksysmap('vmlinux', KSYMS.syms);
    const syms = readFileSync(this.path(KSYMS.syms));
    this.map = syms;
    let tables: KallsymsTables;
    try {
      tables = this.time('kallsyms', () => this.tables(syms, opts, target));
    } catch (e) {
      if (e instanceof KallsymsError) throw new LinkStepError(e.message, 1);
      throw e;
    }
    this.info('KSYMS', 'vmlinux (in place)');
    const why = misfit(tables, res);
    if (why) {
      // The next link of the same symbols reserves enough (the script links this time).
      saveReservation(this.path(RESERVE_CACHE), { key: p.key ?? '', shape: p.shape, target }, grow(res, tables, p.margin, p.namesExtra));
      throw new LinkMisfit(`the kallsyms table does not fit the room reserved in the single link: ${why}`);
    }

    // Where the tables sit: their addresses from the symbols just listed
    // (vmlinux's own, as nm read them), their file offsets from the section
    // headers; the symbol table itself is not parsed again.
    const at = slotAddresses(syms, res.slots.map((x) => x.name));
    const file = openElf(this.path('vmlinux'), { symbols: false });
    const patches: Patch[] = [];
    try {
      const elf = file.elf;
      const first = at.get(res.slots[0]!.name);
      if (first === undefined) throw new LinkMisfit(`vmlinux has no ${res.slots[0]!.name}`);
      const section = this.locate(elf, first, res.slots[0]!.name).section;
      const bytes = tableBytes(tables);
      const relocatable = elf.sections.some((x) => x.type === SHT_RELA || x.type === SHT_REL);
      if (relocatable) file.load([section]);
      for (const s of res.slots) {
        const addr = at.get(s.name);
        if (addr !== first + BigInt(s.offset)) {
          throw new LinkMisfit(`${s.name} is not where the reserved layout put it (the linker moved the tables)`);
        }
        const loc = this.locate(elf, addr, s.name);
        if (loc.section !== section) throw new LinkMisfit(`${s.name} is not in ${section.name} with the other tables`);
        if (loc.available < s.size) throw new LinkMisfit(`${s.name} runs past the end of ${section.name}`);
        const slot = Buffer.alloc(s.size);
        slot.set(bytes.get(s.name)!);
        if (s.name === 'kallsyms_relative_base' && relocatable) {
          // Linked as `_text + 0`; a relocatable vmlinux records a relocation
          // for it, which a patch of the bytes cannot move.
          const now = elf.bytes.subarray(loc.offset, loc.offset + s.size);
          if (!Buffer.from(now).equals(slot)) {
            throw new LinkMisfit(`${s.name} differs from what was linked and vmlinux carries relocations for it`);
          }
        }
        patches.push({ offset: loc.offset, bytes: slot });
      }
      this.time('patch', () => writePatches(this.path('vmlinux'), patches));
    } finally {
      file.close();
    }
    this.time('verify', () => this.verify(patches, 'kallsyms tables'));
    return tables;
  }

  /**
   * kallsyms of the linked image's symbol map, with the name tables of the
   * previous link when its symbol list was the same (names-cache.ts).
   */
  tables(map: Buffer, opts: KallsymsOptions, target: KallsymsTables['target']): KallsymsTables {
    const { selection, diagnostics } = readSelection(map, opts, this.v.kallsyms);
    for (const d of diagnostics) process.stderr.write(`${d}\n`); // what the C tool prints, kept
    const key = namesKey(selection.symbols, opts, target);
    const file = this.path(NAMES_CACHE);
    let names = this.preloaded?.key === key ? this.preloaded.names : loadNames(file, key, selection.symbols.length);
    this.names = 'kept';
    if (!names) {
      names = reorderNames(file, selection.symbols, opts, target);
      this.names = 'reordered';
    }
    if (!names) {
      names = nameTables(selection.symbols, opts, target);
      this.names = 'computed';
    }
    if (this.names !== 'kept') saveNames(file, key, target.endian, names);
    return buildTables(selection, opts, target, names);
  }

  /**
   * While ld runs: the previous link's symbol map read the way the new one
   * will be, and its stored name tables loaded. An edit that changes no
   * symbol finds them ready, and the code that reads the new map runs warm
   * (it runs once per process, and cold it is several times slower).
   */
  preload(opts: KallsymsOptions, target: KallsymsTables['target']): void {
    let map: Buffer;
    try {
      map = readFileSync(this.path(KSYMS.syms));
    } catch {
      return; // a first link
    }
    try {
      const syms = readSelection(map, opts, this.v.kallsyms).selection.symbols;
      const key = namesKey(syms, opts, target);
      const names = loadNames(this.path(NAMES_CACHE), key, syms.length);
      if (names) this.preloaded = { key, names };
    } catch {
      // whatever was wrong with it is the new map's business, not this one's
    }
  }

  /** The file location of a table's address in vmlinux. */
  locate(elf: ElfFile, addr: bigint, name: string): FileLocation {
    try {
      return addressLocation(elf, addr);
    } catch (e) {
      if (e instanceof ElfError) throw new LinkMisfit(`${name} (0x${addr.toString(16)}) is not in a section of vmlinux with file bytes`);
      throw e;
    }
  }

  /**
   * Reads patched bytes back. For kallsyms: vmlinux holds exactly the tables made
   * (which, laid out at the addresses checked above, decode to the symbols
   * they were made from; the tests decode them as the kernel does).
   */
  verify(patches: readonly Patch[], what: string): void {
    const bad = readBack(this.path('vmlinux'), patches);
    if (bad !== undefined) throw new LinkMisfit(`vmlinux does not hold the patched ${what} (at file offset ${bad})`);
  }

  async main(o: SingleLinkOptions, early: EarlyStart | undefined): Promise<LinkReport> {
    const e = this.env;
    const t0 = performance.now();
    const kallsymsOn = this.on('CONFIG_KALLSYMS');
    const left = this.v.misfit((x) => this.on(x));
    if (left) throw new LinkMisfit(left);
    const opts = this.kallsymsOptions();
    // make brings init/version-timestamp.o up to date, as the script does
    // (started before kbx loaded, when the CLI could); the table is predicted
    // meanwhile from the object as it was.
    let oldTimestamp: ElfFile | undefined;
    let made: Promise<number>;
    if (early) {
      oldTimestamp = kallsymsOn && early.timestampBefore ? parseOrUndefined(early.timestampBefore) : undefined;
      made = early.made.finally(() => this.steps.push({ step: `make ${TIMESTAMP}`, at: early.at / 1000, seconds: (performance.now() - early.at) / 1000 }));
    } else {
      oldTimestamp = kallsymsOn ? this.readTimestamp() : undefined;
      made = this.time(`make ${TIMESTAMP}`, () => timestampMake(this.inp, this.r.emit));
    }
    let prediction: Prediction | undefined;
    let assembled: Promise<void> | undefined;
    // With BTF: room for it in the single link when pahole can encode to a
    // file and the last link's BTF size is known; else the BTF link first.
    let btfRoom: number | undefined;
    let btfRoomAssembled: Promise<void> | undefined;
    let paholeChecked = false;
    try {
      const last = this.on('CONFIG_DEBUG_INFO_BTF') && kallsymsOn ? lastBtfSize(this.path(BTF_ROOM.last)) : undefined;
      if (last !== undefined) {
        paholeChecked = true;
        if (this.checkPahole('.tmp_vmlinux.btf').detached) {
          btfRoom = btfRoomSize(last);
          btfRoomAssembled = this.assembleBtfRoom(btfRoom);
          btfRoomAssembled.catch(() => undefined); // awaited below
        }
      }
      if (oldTimestamp) {
        prediction = this.time('predict', () => this.predict(opts, o, oldTimestamp));
        assembled = this.assemble(prediction);
        assembled.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
      }
    } finally {
      const status = await made;
      if (status !== 0) throw new LinkStepError(`make ${TIMESTAMP} exited with status ${status}`, status);
    }

    let btfO = '';
    if (btfRoom !== undefined) {
      btfO = BTF_ROOM.o;
      await btfRoomAssembled;
    } else if (this.on('CONFIG_DEBUG_INFO_BTF')) {
      btfO = '.btf.vmlinux.bin.o';
      if (!paholeChecked) this.checkPahole('.tmp_vmlinux.btf');
      await this.genBtf('.tmp_vmlinux.btf', btfO);
      const f = openElf(this.path(btfO), { symbols: false });
      const size = f.elf.section('.BTF')?.size;
      f.close();
      if (size) recordBtfSize(this.path(BTF_ROOM.last), size); // the next link reserves room for it
    }

    const btfIds = (): void => {
      if (this.v.resolvesBtfIds((x) => this.on(x))) {
        this.info('BTFIDS', 'vmlinux');
        this.time('resolve_btfids', () => run(this.r, [...words(e.RESOLVE_BTFIDS), 'vmlinux']));
      }
    };

    let report: LinkReport['kallsyms'];
    if (kallsymsOn) {
      const now = this.readTimestamp();
      if (!now) throw new LinkStepError(`${TIMESTAMP} was not built`, 1);
      copyFileSync(this.path(TIMESTAMP), this.path(TIMESTAMP_COPY)); // what the next routed link predicts from (made.ts)
      if (!prediction || prediction.timestampKey !== symbolKey(now)) {
        const again = this.time('predict again', () => this.predict(opts, o, now));
        if (!prediction || !sameReservation(again.res, prediction.res)) {
          await assembled?.catch(() => undefined); // it writes the files assembled again
          assembled = undefined;
        }
        prediction = again;
      }
      const { res, target } = prediction;
      await (assembled ?? this.assemble(prediction));
      const linked = this.link('vmlinux', [KSYMS.o, btfO]);
      this.time('preload', () => this.preload(opts, target));
      await linked;
      // pahole reads vmlinux's DWARF and symbols while kallsyms is made and
      // written (into .rodata, which pahole does not read).
      const encoded = btfRoom !== undefined ? this.encodeBtf() : undefined;
      encoded?.catch(() => undefined); // awaited below
      const t = this.patchTables(opts, prediction);
      if (encoded) {
        await encoded;
        this.patchBtf(btfRoom!);
      }
      btfIds();
      // System.map is `mksysmap vmlinux`; neither the patch nor resolve_btfids
      // touches a symbol, so it is the list the table was made from, which
      // is what the script's closing check (System.map = the last .syms)
      // asks of it.
      this.info('NM', 'System.map');
      copyFileSync(this.path(KSYMS.syms), this.path('System.map'));
      const use = layoutTables(t).image.length;
      const slots: Record<string, [number, number]> = {};
      const bytes = tableBytes(t);
      for (const s of res.slots) slots[s.name] = [s.size, bytes.get(s.name)?.length ?? 0];
      report = { symbols: t.numSyms, reservedBytes: res.total, tableBytes: use, paddingBytes: res.total - use, reservationReused: prediction.reused, names: this.names, slots };
    } else {
      await this.link('vmlinux', [btfO]);
      btfIds();
      this.mksysmap('vmlinux', 'System.map');
    }

    if (this.on('CONFIG_BUILDTIME_TABLE_SORT')) {
      this.info('SORTTAB', 'vmlinux');
      if (this.time('sorttable', () => tryRun(this.r, this.v.sorttableArgv(this.inp))) !== 0) {
        throw new LinkStepError('Failed to sort kernel tables', 1);
      }
    }
    writeFileSync(this.path('.vmlinux.d'), `vmlinux: ${scriptPath(this.inp)}\n`);
    const btf = this.on('CONFIG_DEBUG_INFO_BTF') ? (btfRoom !== undefined ? 'room' : 'linked') : undefined;
    return { mode: 'single', links: this.links, kallsyms: report, btf, seconds: (performance.now() - t0) / 1000, steps: this.steps };
  }
}

interface Prediction {
  res: Reservation;
  target: KallsymsTables['target'];
  /** The reservation is the previous link's (the same predicted symbols). */
  reused: boolean;
  timestampKey: string;
  /** What the reservation is stored under (reserve-cache.ts), and what it was sized with. */
  key: string | undefined;
  shape: string | undefined;
  margin: Margin;
  namesExtra: number;
}

/** The symbols of an object, by name, kind and section: what the prediction reads of it. */
function symbolKey(elf: ElfFile): string {
  return elf
    .symbols()
    .map((s) => `${s.name}/${s.bind}/${s.type}/${s.shndx}/${elf.sections[s.sectionIndex]?.name ?? ''}`)
    .join('\n');
}

/** Links vmlinux once, as the script of version `v` would have linked it (several times with kallsyms). */
export function linkOnce(v: LinkVersion, inp: LinkInputs, emit: LinkListener, o: SingleLinkOptions = {}, early?: EarlyStart): Promise<LinkReport> {
  return new SingleLink(inp, emit, v).main(o, early);
}

/**
 * Pure: the addresses of `names` in nm output ("<hex> <type> <name>" lines);
 * a name listed twice is left out, as if absent.
 */
export function slotAddresses(map: Buffer, names: readonly string[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const name of names) {
    const needle = ` ${name}\n`;
    const i = map.indexOf(needle, 0, 'latin1');
    if (i < 2 || map[i - 2] !== 0x20 || map.indexOf(needle, i + 1, 'latin1') >= 0) continue;
    const start = map.lastIndexOf(0x0a, i - 1) + 1;
    const hex = map.toString('latin1', start, i - 2);
    if (/^[0-9a-f]+$/.test(hex)) out.set(name, BigInt(`0x${hex}`));
  }
  return out;
}

function sameReservation(a: Reservation, b: Reservation): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function parseOrUndefined(bytes: Buffer): ElfFile | undefined {
  try {
    return ElfFile.parse(bytes);
  } catch {
    return undefined; // the prediction waits for the make's object
  }
}

