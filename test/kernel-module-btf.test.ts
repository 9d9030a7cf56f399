// Module BTF only when types change, on a real kernel (issue 13): Linux 6.1
// tinyconfig with DEBUG_INFO_BTF, DEBUG_INFO_BTF_MODULES and a dozen or more
// modules (lib/ tests and crypto algorithms), built once by kbx. kbuild runs
// both module lines (final link, BTF) with `+`: after `make clean` they are
// hits like every other line. After a
// body-only edit of a vmlinux function, kbx relinks vmlinux (pahole without
// -j: the same .BTF relink after relink) and make reruns every module's BTF line; from the third
// such relink on, they are hits (the first two run: pahole rewrites the .BTF
// it added in place, in another layout, once), but for a module of several
// compile units, whose BTF kbuild's pahole -j orders anew each run. Each restored .ko is
// byte-identical to what the line's own command (real pahole and
// resolve_btfids) makes of the .ko before it. A field added to a struct one
// module uses reruns that module's BTF line alone.
//
// The source is a hard-linked copy of the shared 6.1 tree (an edited file is
// replaced, never written through its link), rebuilt from scratch by each
// run (one cold build with DWARF, then five small ones: 7 to 11 minutes on
// a 2-core machine with a load of 2 to 6, most of it the cold build); its
// directory is settable so that two checkouts can run it side by side.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBuild } from '../src/builds/archive.js';
import type { LineRecord } from '../src/builds/record.js';
import { btfSectionDigest } from '../src/kernel/btf/btf-section.js';
import { ElfFile } from '../src/elf/elf-file.js';
import { BODY_FILE, MODULE_OPTIONS, bodyEdited, isBtfLine } from './support/module-btf-tree.js';
import { Kbx, plainMake } from './support/kbx.js';
import { kernelTree, REPRODUCIBLE_KBUILD } from './support/kernel-tree.js';
import { LINK_TREE_OPTIONS } from './support/link-tree.js';
import { linuxSource, program, unlessMissing } from './support/tools.js';

const WORK = process.env.KBX_MODULE_BTF_TEST_DIR ?? '/var/tmp/kbx-module-btf-test';
const SRC = join(WORK, 'src');
const OUT = join(WORK, 'out');
// A handful of module options (test/support/module-btf-tree.ts): the module
// lines' behaviour does not grow with their number, and the cold build (DWARF
// for BTF) is the cost.
const MODULES = MODULE_OPTIONS;
// A struct only one module's BTF holds (vmlinux's DWARF never uses it).
const TYPE_FILE = 'include/crypto/sha2.h';
const TYPE_AT = 'struct sha512_state {\n';
const TYPE_MODULE = 'crypto/sha512_generic.ko';

const tree = kernelTree();
const skip = unlessMissing(linuxSource(tree), program('pahole', 'dwarves'));

/** Replaces a file of the hard-linked copy with new bytes (never writing the shared inode). */
function replace(rel: string, text: string): void {
  const p = join(SRC, rel);
  unlinkSync(p);
  writeFileSync(p, text);
}

function configure(): void {
  const conf = join(OUT, '.config');
  assert.equal(plainMake(SRC, [`O=${OUT}`, 'tinyconfig']).status, 0);
  const on = [...LINK_TREE_OPTIONS, 'DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT', 'BPF_SYSCALL', 'DEBUG_INFO_BTF', 'RUNTIME_TESTING_MENU', 'CRYPTO'];
  const args = [...on.flatMap((o) => ['-e', o]), '-d', 'UNWINDER_GUESS', '-d', 'DEBUG_INFO_NONE', ...MODULES.flatMap((m) => ['-m', m])];
  execFileSync(join(SRC, 'scripts/config'), ['--file', conf, ...args]);
  assert.equal(plainMake(SRC, [`O=${OUT}`, 'olddefconfig']).status, 0);
  const text = readFileSync(conf, 'utf8');
  for (const o of ['DEBUG_INFO_BTF', 'DEBUG_INFO_BTF_MODULES']) assert.ok(text.includes(`\nCONFIG_${o}=y\n`), o);
  for (const m of MODULES) assert.ok(text.includes(`\nCONFIG_${m}=m\n`), m);
}

const isLinkLine = (l: LineRecord) => / -T scripts\/module\.lds -o \S+\.ko /.test(l.command);
const koOf = (l: LineRecord) => / --btf_base vmlinux (\S+\.ko); /.exec(l.command)![1]!;

describe('Linux 6.1 modules with BTF: module BTF lines after relinks', { skip }, () => {
  const kbx = new Kbx('module-btf', REPRODUCIBLE_KBUILD);
  let modules: string[] = [];
  const original = (rel: string) => readFileSync(join(tree!, rel), 'utf8');
  const build = () => {
    const r = kbx.make(SRC, [`O=${OUT}`, '-j2']);
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    assert.equal(kbx.run(['builds']).status, 0); // waits for the record
    return loadBuild(kbx.dir).lines;
  };
  const moduleLines = () => build().filter((l) => isBtfLine(l) || isLinkLine(l));
  const kos = () => new Map(modules.map((m) => [m, readFileSync(join(OUT, m))]));
  const bodyEdit = (n: number) => {
    replace(BODY_FILE, bodyEdited(original(BODY_FILE), n));
  };

  before(() => {
    rmSync(WORK, { recursive: true, force: true });
    mkdirSync(WORK, { recursive: true });
    execFileSync('cp', ['-al', tree!, SRC]);
    configure();
    const btf = build().filter(isBtfLine);
    modules = readFileSync(join(OUT, 'modules.order'), 'utf8').split('\n').filter(Boolean).map((o) => o.replace(/\.o$/, '.ko'));
    assert.ok(modules.length >= 10, `${modules.length} modules`);
    assert.equal(btf.length, modules.length, 'a BTF line per module');
  });

  test('make clean and a warm rebuild: every module final link and module BTF line (kbuild runs them with +) is a hit, each .ko the same bytes', (t) => {
    const built = kos();
    assert.equal(plainMake(SRC, [`O=${OUT}`, 'clean']).status, 0);
    const lines = moduleLines();
    const tally = (kind: string) => `${lines.filter((l) => l.kind === 'hit' && (kind === 'btf' ? isBtfLine(l) : isLinkLine(l))).length}/${lines.filter((l) => kind === 'btf' ? isBtfLine(l) : isLinkLine(l)).length}`;
    t.diagnostic(`after make clean: ${tally('link')} module final links and ${tally('btf')} module BTF lines hit`);
    assert.equal(lines.filter(isLinkLine).length, modules.length, 'a final link per module');
    assert.equal(lines.filter(isBtfLine).length, modules.length, 'a BTF line per module');
    assert.deepEqual(lines.filter((l) => l.kind !== 'hit').map((l) => `${l.kind}${l.reason ? `:${l.reason}` : ''} ${l.command.slice(0, 120)}`), []);
    for (const [m, data] of kos()) assert.ok(data.equals(built.get(m)!), `${m} differs from the build before make clean`);
  });

  /**
   * What the line's own command makes of each .ko as it was before (`before`),
   * against the vmlinux there now: the bytes plain make would leave.
   */
  function expected(before: Map<string, Buffer>): Map<string, Buffer> {
    const scratch = join(WORK, 'scratch.ko');
    const flags = execFileSync('sh', [join(SRC, 'scripts/pahole-flags.sh')], { env: { ...process.env, PAHOLE: 'pahole' }, encoding: 'utf8' }).trim();
    const out = new Map<string, Buffer>();
    for (const [m, data] of before) {
      writeFileSync(scratch, data);
      execFileSync('sh', ['-c', `LLVM_OBJCOPY=objcopy pahole -J ${flags} --btf_base vmlinux ${scratch} && ./tools/bpf/resolve_btfids/resolve_btfids -b vmlinux ${scratch}`], { cwd: OUT, stdio: 'ignore' });
      out.set(m, readFileSync(scratch));
    }
    return out;
  }

  // pahole -j (kbuild's PAHOLE_FLAGS, pahole >= 1.22) orders the types of a
  // module of two or more compile units (crypto_acompress.ko) differently from
  // run to run, and resolve_btfids writes their ids into .BTF_ids: for such a
  // module, every other section is compared byte for byte and .BTF by its size.
  const multiUnit = (m: string) => readFileSync(join(OUT, m.replace(/\.ko$/, '.mod')), 'utf8').split(/\s+/).filter((w) => w.endsWith('.o')).length > 1;
  function assertSameModule(m: string, actual: Buffer, want: Buffer, what: string): void {
    if (!multiUnit(m)) return assert.ok(actual.equals(want), `${what}: ${m} differs from what its BTF line makes`);
    const a = ElfFile.parse(actual);
    const b = ElfFile.parse(want);
    assert.deepEqual(a.sections.map((x) => x.name), b.sections.map((x) => x.name), `${what}: ${m}'s sections`);
    for (const [i, sa] of a.sections.entries()) {
      const sb = b.sections[i]!;
      if (sa.name === '.BTF_ids') continue;
      if (sa.name === '.BTF') assert.equal(sa.size, sb.size, `${what}: ${m}'s .BTF size`);
      else assert.ok(Buffer.from(a.sectionData(sa)).equals(Buffer.from(b.sectionData(sb))), `${what}: ${m}'s ${sa.name}`);
    }
  }

  test('body-only edits of a vmlinux function: vmlinux .BTF stays the same, and from the third relink no single-unit module’s BTF line runs', (t) => {
    // The cold build's .BTF is pahole's alone; from the first relink on it is
    // written into room sized from the last one (link/btf-room.ts): the same
    // room and bytes while the types stay the same.
    const cold = btfSectionDigest(join(OUT, 'vmlinux'));
    const digests: Array<string | undefined> = [];
    const runs: Array<{ hits: number; misses: number; seconds: number }> = [];
    let last: LineRecord[] = [];
    for (const n of [1, 2, 3]) {
      const before = kos();
      const vmlinuxBefore = readFileSync(join(OUT, 'vmlinux'));
      bodyEdit(n);
      const btf = build().filter(isBtfLine);
      last = btf;
      assert.ok(!readFileSync(join(OUT, 'vmlinux')).equals(vmlinuxBefore), 'vmlinux was relinked with other code');
      digests.push(btfSectionDigest(join(OUT, 'vmlinux')));
      assert.equal(digests.at(-1), digests[0], `relink ${n}: the same .BTF as relink 1`);
      assert.equal(btf.length, modules.length, `relink ${n}: make ran every module's BTF line`);
      const seconds = btf.reduce((sum, l) => sum + (l.endUs - l.startUs), 0) / 1e6;
      runs.push({ hits: btf.filter((l) => l.kind === 'hit').length, misses: btf.filter((l) => l.kind === 'miss').length, seconds });
      const want = expected(before);
      for (const [m, data] of kos()) assertSameModule(m, data, want.get(m)!, `relink ${n}`);
    }
    t.diagnostic(`module BTF lines (hits/misses) per relink: ${runs.map((r) => `${r.hits}/${r.misses} in ${r.seconds.toFixed(2)} s of line time`).join(', ')}; cold .BTF ${cold === digests[0] ? 'the same as' : 'other than'} the relinks'`);
    // A module of several compile units may miss even then: kbuild's own
    // pahole -j gives its .BTF another type order from run to run, so its line
    // need not come back to a fixed point (crypto/cryptomgr.ko once in three).
    const third = last.filter((l) => l.kind !== 'hit').map(koOf);
    t.diagnostic(`third relink, missed: ${third.join(' ') || 'none'}`);
    assert.deepEqual(third.filter((m) => !multiUnit(m)), [], 'single-unit modules that missed on the third relink');
  });

  test('a field added to a struct one module uses: that module’s BTF line runs, the others hit, and its BTF is right', () => {
    const before = kos();
    const text = original(TYPE_FILE);
    assert.ok(text.includes(TYPE_AT));
    replace(TYPE_FILE, text.replace(TYPE_AT, `${TYPE_AT}\tu64 kbx_added;\n`));
    const btf = build().filter(isBtfLine);
    const missed = btf.filter((l) => l.kind === 'miss').map(koOf);
    assert.deepEqual(missed.filter((m) => m === TYPE_MODULE || !multiUnit(m)), [TYPE_MODULE]);
    // The others are the same bytes; the changed one is a fixed point of its own line (its BTF is of the new type).
    const now = kos();
    // A multi-unit module's hit may restore another run of its line than the last (pahole -j: assertSameModule).
    for (const m of modules) if (m !== TYPE_MODULE) assertSameModule(m, now.get(m)!, before.get(m)!, 'after the type change');
    const again = expected(new Map([[TYPE_MODULE, now.get(TYPE_MODULE)!]])).get(TYPE_MODULE)!;
    const section = (b: Buffer, name: string) => {
      const elf = ElfFile.parse(b);
      return Buffer.from(elf.sectionData(elf.section(name)!));
    };
    for (const s of ['.BTF', '.BTF_ids']) if (ElfFile.parse(again).section(s)) assert.ok(section(again, s).equals(section(now.get(TYPE_MODULE)!, s)), s);
    assert.ok(!section(now.get(TYPE_MODULE)!, '.BTF').equals(section(before.get(TYPE_MODULE)!, '.BTF')), 'the BTF changed with the type');
  });

  test('cleaning up', () => {
    kbx.stop();
    // Keep the tree for the next run's inspection, but not the scratch file.
    rmSync(join(WORK, 'scratch.ko'), { force: true });
    assert.ok(existsSync(OUT));
  });
});
