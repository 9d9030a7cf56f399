// Module BTF only when types change (issue 13): kbuild's module BTF line
// (`pahole -J --btf_base vmlinux X.ko; resolve_btfids -b vmlinux X.ko`)
// keys vmlinux by the part those tools read, its .BTF section
// (src/kernel/btf/). Proven with the real pahole on small programs: a base
// relinked with another function body, or stripped of everything but .BTF,
// gives a module byte-identical BTF; a changed type does not. Then real make
// through kbx: relinking vmlinux with the same types reruns no module BTF
// line, and the .ko files equal plain make's.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileState } from '../src/fingerprint/file-state.js';
import { currentValue } from '../src/fingerprint/key.js';
import { PART_PREFIX, Projections } from '../src/fingerprint/projection.js';
import { sha256 } from '../src/util/hash.js';
import { BTF_SECTION, btfSectionDigest } from '../src/kernel/btf/btf-section.js';
import { KERNEL_PROJECTION_RULES, MODULE_BTF_RULE, moduleBtfBase } from '../src/kernel/btf/module-btf.js';
import { reproduciblePaholeFlags } from '../src/kernel/btf/reproducible.js';
import { Kbx, plainMake, snapshot, summary, tempDir, writeTree } from './support/kbx.js';
import { program, unlessMissing } from './support/tools.js';

const noTools = unlessMissing(program('gcc', 'gcc'), program('pahole', 'dwarves'), program('objcopy', 'binutils'));

// Linux 6.1's cmd_btf_ko as make hands it to the shell (scripts/Makefile.modfinal, Kbuild.include's `cmd`).
const CORE = (ko: string, flags = '--btf_gen_floats -j --lang_exclude=rust') =>
  String.raw`if [ ! -f vmlinux ]; then printf "Skipping BTF generation for %s due to unavailability of vmlinux\n" ${ko} 1>&2; else LLVM_OBJCOPY="objcopy" pahole -J ${flags} --btf_base vmlinux ${ko}; ./tools/bpf/resolve_btfids/resolve_btfids -b vmlinux ${ko}; fi;`;
const TRAPS = (ko: string) => ['HUP', 'INT', 'QUIT', 'TERM', 'PIPE'].map((s) => `trap 'rm -f ${ko}; trap - ${s}; kill -s ${s} $$' ${s};`).join(' ');
const QUIET = (ko: string) => `set -e;  echo '  BTF [M] ${ko}';  ${TRAPS(ko)}  ${CORE(ko)}`;

describe('the module BTF rule (src/kernel/btf/module-btf.ts)', () => {
  test("kbuild's line, quiet, verbose (V=1, quotes escaped) or silent (make -s), names vmlinux in its directory", () => {
    const ko = 'drivers/net/dummy.ko';
    assert.equal(moduleBtfBase(QUIET(ko), '/o'), '/o/vmlinux');
    assert.equal(moduleBtfBase(CORE(ko), '/o'), '/o/vmlinux');
    const verbose = `set -e;  echo '  ${CORE(ko).replace(/'/g, "'\\''")}';  ${TRAPS(ko)}  ${CORE(ko)}`;
    assert.equal(moduleBtfBase(verbose, '/o'), '/o/vmlinux');
    assert.equal(moduleBtfBase(`set -e;  exec >/dev/null;  ${TRAPS(ko)}  ${CORE(ko)}`, '/o'), '/o/vmlinux');
    // 6.12: no -j, one more flag
    assert.equal(moduleBtfBase(QUIET(ko).replace('-j ', '--skip_encoding_btf_inconsistent_proto '), '/o'), '/o/vmlinux');
  });

  test('any other command is not: another reader of vmlinux, another module, another base, a shell expansion', () => {
    const ko = 'a/b.ko';
    for (const cmd of [
      QUIET(ko).replace('fi;', 'cat vmlinux; fi;'),
      QUIET(ko).replace(`--btf_base vmlinux ${ko}`, '--btf_base vmlinux a/c.ko'),
      QUIET(ko).replace('-b vmlinux', '-b vmlinux.o'),
      QUIET(ko).replace('--btf_gen_floats', '$(cat x)'),
      QUIET(ko).replace('--btf_gen_floats', '--btf_gen_floats;cp vmlinux x;'),
      QUIET(ko).replace("echo '  BTF", "echo \"  BTF"),
      `${QUIET(ko)} cp vmlinux /tmp/x`,
    ])
      assert.equal(moduleBtfBase(cmd, '/o'), undefined, cmd);
  });

  test('a run counts only if pahole and resolve_btfids are programs, not scripts, and nothing else ran but shells and objcopy', () => {
    const dir = tempDir('btf-confirm');
    const realPahole = execFileSync('sh', ['-c', 'command -v pahole'], { encoding: 'utf8' }).trim();
    const script = join(dir, 'pahole');
    writeFileSync(script, '#!/bin/sh\nexec pahole "$@"\n');
    chmodSync(script, 0o755);
    assert.equal(MODULE_BTF_RULE.confirms([realPahole, '/usr/bin/objcopy', '/bin/sh']), true);
    assert.equal(MODULE_BTF_RULE.confirms([script]), false);
    assert.equal(MODULE_BTF_RULE.confirms([realPahole, '/usr/bin/cat']), false);
  });

  test("pahole's -j is left out of the link's flags, and nothing else", () => {
    assert.deepEqual(reproduciblePaholeFlags(['--btf_gen_floats', '-j', '--lang_exclude=rust', '-j4', '--jobs=2', '--jobs']), ['--btf_gen_floats', '--lang_exclude=rust']);
  });
});

// A "vmlinux" (a program with BTF), and a module that uses its types.
const TYPES = 'struct point { int x; int y; };\nstruct shape { struct point a, b; long tag; };\n';
const BASE = (body: string) => `#include "types.h"\nstruct point origin;\nstruct shape unit;\nint area(struct point *p) { return ${body}; }\nint main(void) { return area(&origin) + (int)unit.tag; }\n`;
const MODULE = (n: number) => `#include "types.h"\nint width${n}(struct shape *s) { return s->b.x - s->a.x + ${n}; }\n`;

function sh(cwd: string, cmd: string): void {
  execFileSync('sh', ['-c', cmd], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

describe('vmlinux valued by its .BTF (src/kernel/btf/btf-section.ts)', { skip: noTools }, () => {
  const dir = tempDir('btf-proof');
  const base = (name: string, body: string, types = TYPES) => {
    writeFileSync(join(dir, 'types.h'), types);
    writeFileSync(join(dir, 'base.c'), BASE(body));
    sh(dir, `gcc -g -O1 -o ${name} base.c && LLVM_OBJCOPY=objcopy pahole -J --btf_gen_floats ${name}`);
    return join(dir, name);
  };
  /** The module's .ko after pahole encoded its BTF against `vmlinux`. */
  const moduleBtf = (vmlinux: string, types = TYPES) => {
    writeFileSync(join(dir, 'types.h'), types);
    writeFileSync(join(dir, 'm.c'), MODULE(1));
    sh(dir, `gcc -g -O1 -c -o m.ko m.c && LLVM_OBJCOPY=objcopy pahole -J --btf_gen_floats --btf_base ${vmlinux} m.ko`);
    return readFileSync(join(dir, 'm.ko'));
  };

  test('a relink with another function body: other bytes, the same .BTF, and pahole writes the module the same BTF', () => {
    const a = base('vmlinux-a', 'p->x * p->y');
    const b = base('vmlinux-b', 'p->x * p->y + 7');
    assert.notEqual(sha256(readFileSync(a)), sha256(readFileSync(b)));
    assert.equal(btfSectionDigest(a), btfSectionDigest(b));
    assert.ok(moduleBtf(a).equals(moduleBtf(b)));
  });

  test('pahole reads nothing of vmlinux but .BTF: the module is the same against a copy that holds only .BTF', () => {
    const a = base('vmlinux-a', 'p->x * p->y');
    const only = join(dir, 'vmlinux-btf-only');
    sh(dir, `objcopy --only-section=.BTF ${a} ${only}`);
    assert.equal(btfSectionDigest(only), btfSectionDigest(a));
    assert.ok(moduleBtf(only).equals(moduleBtf(a)));
  });

  test('a field added to a struct the module uses: another .BTF, and another module BTF', () => {
    const a = base('vmlinux-a', 'p->x * p->y');
    const changed = TYPES.replace('int y; }', 'int y; int z; }');
    const c = base('vmlinux-c', 'p->x * p->y', changed);
    assert.notEqual(btfSectionDigest(c), btfSectionDigest(a));
    assert.ok(!moduleBtf(c, changed).equals(moduleBtf(a)));
  });

  test('a file that is no ELF, a truncated ELF, or one without .BTF is valued whole', () => {
    const state = new FileState();
    const a = base('vmlinux-a', 'p->x * p->y');
    assert.ok(state.projected(a, BTF_SECTION).startsWith(`${PART_PREFIX}elf-btf-1:`));
    const text = join(dir, 'not-elf');
    writeFileSync(text, 'hello\n');
    const cut = join(dir, 'truncated');
    writeFileSync(cut, readFileSync(a).subarray(0, 200));
    const plain = join(dir, 'no-btf');
    sh(dir, `objcopy --remove-section=.BTF ${a} ${plain}`);
    const hostile = join(dir, 'hostile');
    const bytes = Buffer.from(readFileSync(a));
    bytes.writeBigUInt64LE(0xffffffffn, 0x28); // e_shoff far past the end
    writeFileSync(hostile, bytes);
    for (const p of [text, cut, plain, hostile]) assert.equal(state.projected(p, BTF_SECTION), sha256(readFileSync(p)), p);
    assert.equal(state.projected(join(dir, 'missing'), BTF_SECTION), 'absent');
  });

  test("a stored part: value holds only where the line's own command names that path with that projection", () => {
    const state = new FileState();
    const a = base('vmlinux', 'p->x * p->y');
    const stored = state.projected(a, BTF_SECTION);
    const rules = new Projections(KERNEL_PROJECTION_RULES);
    const line = rules.forLookup(QUIET('m.ko'), dir);
    assert.equal(line?.get(a), BTF_SECTION);
    assert.equal(currentValue(state, 'c', a, stored, line), stored);
    // Another command (the store may hold anything under any key): the file's whole digest, which never equals it.
    const other = rules.forLookup(`cat vmlinux > x; ${QUIET('m.ko')}`, dir);
    assert.equal(other, undefined);
    assert.equal(currentValue(state, 'c', a, stored, other), sha256(readFileSync(a)));
    // Another projection name in the stored value: computed with the rule's, so it differs.
    assert.notEqual(currentValue(state, 'c', a, stored.replace('elf-btf-1', 'elf-all'), line), stored.replace('elf-btf-1', 'elf-all'));
    // The rule names vmlinux only, not the module.
    const ko = join(dir, 'm.ko');
    writeFileSync(ko, readFileSync(a));
    assert.equal(currentValue(state, 'c', ko, stored, line), sha256(readFileSync(ko)));
  });
});

// kbuild's shape: the module is linked when its object changes (the first
// line is `:` when only vmlinux did, as if_changed_except), and its BTF line
// runs whenever vmlinux is newer. resolve_btfids here does nothing (the
// kernel test runs the real one); pahole is real.
const MODULES = 3;
const btfLine = (pahole: string) =>
  String.raw`if [ ! -f vmlinux ]; then printf "Skipping BTF generation for %s due to unavailability of vmlinux\n" $@ 1>&2; else LLVM_OBJCOPY="objcopy" ${pahole} -J --btf_gen_floats -j --btf_base vmlinux $@; ./tools/resolve_btfids -b vmlinux $@; fi;`;
const project = (pahole = 'pahole'): Record<string, string> => ({
  Makefile: `MAKEFLAGS += -r
MODS := ${Array.from({ length: MODULES }, (_, i) => `m${i}.ko`).join(' ')}
all: $(MODS)
vmlinux: base.c types.h
\tgcc -g -O1 -fdebug-prefix-map=$(CURDIR)=. -o vmlinux base.c && LLVM_OBJCOPY=objcopy pahole -J --btf_gen_floats vmlinux
tools/resolve_btfids: tools/stub.c
\tgcc -o $@ $<
%.o: %.c types.h
\tgcc -g -O1 -fdebug-prefix-map=$(CURDIR)=. -c -o $@ $<
%.ko: %.o vmlinux tools/resolve_btfids
\t$(if $(filter $*.o,$?),cp $*.o $@,:)
\t${btfLine(pahole)}
.SECONDARY:
`,
  'types.h': TYPES,
  'base.c': BASE('p->x * p->y'),
  'tools/stub.c': 'int main(void) { return 0; }\n',
  'tools/pahole': '#!/bin/sh\nexec pahole "$@"\n',
  ...Object.fromEntries(Array.from({ length: MODULES }, (_, i) => [`m${i}.c`, MODULE(i)])),
});

describe('kbx make: module BTF lines after vmlinux is relinked', { skip: noTools }, () => {
  /** The same steps in a kbx tree and a plain one; returns kbx's summary of each step after the first. */
  function steps(tag: string, files: Record<string, string>, edits: Array<Record<string, string>>, coldByPlain = false) {
    const kbx = new Kbx(tag);
    const mine = tempDir(`${tag}-kbx`);
    const plain = tempDir(`${tag}-plain`);
    writeTree(mine, files);
    writeTree(plain, files);
    chmodSync(join(mine, 'tools/pahole'), 0o755);
    chmodSync(join(plain, 'tools/pahole'), 0o755);
    const out = [];
    try {
      for (const [i, edit] of [{}, ...edits].entries()) {
        writeTree(mine, edit);
        writeTree(plain, edit);
        const r = i === 0 && coldByPlain ? plainMake(mine) : kbx.make(mine);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(plainMake(plain).status, 0);
        const a = snapshot(mine, /\.o$|^vmlinux$/);
        for (const [p, data] of snapshot(plain, /\.o$|^vmlinux$/)) assert.ok(a.get(p)?.equals(data), `step ${i}: ${p} differs from plain make's`);
        if (i > 0) out.push(summary(r.stderr));
      }
    } finally {
      kbx.stop();
    }
    return out;
  }
  const body = (b: string) => ({ 'base.c': BASE(b) });

  test('the same types: from the third relink on, every module BTF line hits, and the .ko files equal plain make’s', () => {
    const edits = [1, 2, 3, 4].map((n) => body(`p->x * p->y + ${n}`));
    const [first, second, third, fourth] = steps('btf-same', project(), edits);
    // The first relink runs each BTF line on a .ko pahole encoded (with objcopy)
    // already; pahole rewrites its .BTF in place, in another layout (libelf's),
    // and the second relink starts from that: two new keys per module. From then
    // on the .ko before the line is the one after it (a fixed point).
    assert.equal(first!.misses, 1 + MODULES, 'vmlinux, and each module');
    assert.equal(second!.misses, 1 + MODULES, 'vmlinux, and each module');
    // vmlinux alone: whole-content keys would miss every module again.
    assert.deepEqual([third!.misses, third!.hits], [1, MODULES]);
    assert.deepEqual([fourth!.misses, fourth!.hits], [1, MODULES]);
  });

  test('a tree built by plain make: the .ko its BTF line rewrites is new to kbx, and still the third relink hits', () => {
    const edits = [1, 2, 3, 4].map((n) => body(`p->x * p->y + ${n}`));
    const [first, second, third, fourth] = steps('btf-plain', project(), edits, true);
    // The first relink cannot key the .ko plain make left (kbx never hashed it) and
    // stores nothing, but hashes what it leaves: the second relink is stored.
    assert.deepEqual([first!.misses, first!.stored], [1 + MODULES, 1]);
    assert.deepEqual([second!.misses, second!.stored], [1 + MODULES, 1 + MODULES]);
    assert.deepEqual([third!.misses, third!.hits], [1, MODULES]);
    assert.deepEqual([fourth!.misses, fourth!.hits], [1, MODULES]);
  });

  test('a field added to a type the modules use: every module BTF line runs again, and the .ko files equal plain make’s', () => {
    const [, changed] = steps('btf-type', project(), [body('p->x * p->y + 1'), { 'types.h': TYPES.replace('int y; }', 'int y; int z; }') }]);
    // vmlinux, and each module's compile, link (`cp`) and BTF line.
    assert.equal(changed!.misses, 1 + 3 * MODULES);
    assert.equal(changed!.hits, 0);
  });

  test('a pahole that is a script is not trusted to read only .BTF: its lines key vmlinux whole', () => {
    const [, , third] = steps('btf-script', project('./tools/pahole'), [1, 2, 3].map((n) => body(`p->x * p->y + ${n}`)));
    assert.equal(third!.misses, 1 + MODULES);
  });
});
