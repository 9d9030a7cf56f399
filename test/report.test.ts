// kbx trace and kbx report on a real build: a small C project (every stage
// the report names) built by the real kbx make with -j2, cleaned, edited and
// built again, so the recorded build has hits and misses. The analysis is
// checked against the record and the files, the Chrome trace against the
// record, and the HTML page in headless Chromium.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { loadBuild } from '../src/builds/archive.js';
import type { BuildRecord, LineRecord } from '../src/builds/record.js';
import { analyzeBuild, criticalPath, durationUs, type BuildAnalysis } from '../src/report/analysis.js';
import type { ChromeTrace, TraceEvent } from '../src/report/chrome-trace.js';
import { runsSubMake, stageOf } from '../src/report/command.js';
import { measureOutputs, writtenFiles } from '../src/report/sizes.js';
import { Kbx, repoRoot, summary, tempDir } from './support/kbx.js';
import { refSections } from './support/readelf.js';
import { withPage } from './support/report-browser.js';
import { editProgram, writeReportProject } from './support/report-project.js';

const read = (rec: BuildRecord, l: LineRecord) => new Set(l.inputs.map((i) => rec.paths[i]));
const wrote = (rec: BuildRecord, l: LineRecord) => l.outputs.map((i) => rec.paths[i]!);
/** B read a file A wrote, after A had ended. */
const dependsOn = (rec: BuildRecord, b: LineRecord, a: LineRecord) => a !== b && a.endUs <= b.startUs && wrote(rec, a).some((p) => read(rec, b).has(p));

describe('kbx trace and kbx report on a real build', () => {
  const kbx = new Kbx('report');
  let proj: string;
  let rec: BuildRecord;
  let a: BuildAnalysis;
  const byCommand = (re: RegExp) => {
    const i = rec.lines.findIndex((l) => re.test(l.command));
    assert.ok(i >= 0, `no line matches ${re}`);
    return i;
  };

  before(() => {
    proj = join(tempDir('report'), 'proj');
    writeReportProject(proj);
    const cold = kbx.make(proj, ['-j2']);
    assert.equal(cold.status, 0, cold.stderr);
    assert.equal(kbx.make(proj, ['clean']).status, 0);
    editProgram(proj);
    const warm = kbx.make(proj, ['-j2']);
    assert.equal(warm.status, 0, warm.stderr);
    const s = summary(warm.stderr);
    assert.equal(s.hits, 3, `the library's two compiles and its archive are restored: ${warm.stderr}`);
    assert.equal(kbx.run(['builds']).status, 0); // waits until the daemon has written the record
    rec = loadBuild(kbx.dir);
    assert.deepEqual(rec.args, ['-j2']);
    a = analyzeBuild(rec);
  });
  after(() => kbx.stop());

  test('lanes: no two lines of a lane overlap, each took the lowest lane free, and -j2 needs two', () => {
    for (const sub of [false, true]) {
      const group = [...rec.lines.keys()].filter((i) => a.layout.subMake[i] === sub);
      const count = sub ? a.layout.makeLanes : a.layout.workLanes;
      for (let k = 0; k < count; k++) {
        const lane = group.filter((i) => a.layout.lane[i] === k).map((i) => rec.lines[i]!);
        assert.ok(lane.length > 0, `lane ${k} is empty`);
        for (let j = 1; j < lane.length; j++) assert.ok(lane[j - 1]!.endUs <= lane[j]!.startUs, `lane ${k}: ${lane[j - 1]!.command} overlaps ${lane[j]!.command}`);
      }
      // Greedy: every lower lane was busy when the line started.
      for (const i of group) {
        const l = rec.lines[i]!;
        for (let k = 0; k < a.layout.lane[i]!; k++)
          assert.ok(
            group.some((j) => a.layout.lane[j] === k && rec.lines[j]!.startUs <= l.startUs && l.startUs < rec.lines[j]!.endUs),
            `${l.command} is in lane ${a.layout.lane[i]} though lane ${k} was free`,
          );
      }
    }
    assert.ok(a.layout.workLanes >= 1 && a.layout.workLanes <= 2, `make -j2 ran at most two lines at once, not ${a.layout.workLanes}`);
    // The sub-make lends its job slot to its children: it has a lane of its own.
    assert.equal(a.layout.makeLanes, 1);
    assert.ok(a.layout.subMake[byCommand(/^make -C lib/)]);
  });

  test('the critical path is a chain of read-after-write from a root, and no chain is longer', () => {
    const cp = a.critical.lines.map((i) => rec.lines[i]!);
    assert.ok(cp.length >= 3, a.critical.lines.map((i) => a.labels[i]).join(' → '));
    for (let j = 1; j < cp.length; j++) assert.ok(dependsOn(rec, cp[j]!, cp[j - 1]!), `${cp[j]!.command} does not read what ${cp[j - 1]!.command} wrote`);
    const work = rec.lines.filter((_, i) => a.work(i));
    assert.ok(!work.some((x) => dependsOn(rec, cp[0]!, x)), 'the first line of the path depends on nothing');
    assert.equal(a.critical.us, cp.reduce((s, l) => s + durationUs(l), 0));
    // The longest chain by a plain recursion over every pair of lines.
    const memo = new Map<LineRecord, number>();
    const longest = (b: LineRecord): number => {
      if (!memo.has(b)) memo.set(b, durationUs(b) + Math.max(0, ...work.filter((x) => dependsOn(rec, b, x)).map(longest)));
      return memo.get(b)!;
    };
    assert.equal(a.critical.us, Math.max(...work.map(longest)));
    // The program's object is compiled, then given BTF in place, then linked.
    const labels = a.critical.lines.map((i) => a.labels[i]);
    assert.deepEqual(labels.slice(0, 3), ['main.o', 'main.o', 'prog']);
  });

  test('time by stage: read from the programs each line runs, adding up to the lines’ time', () => {
    const st = Object.fromEntries(a.stages.map((s) => [s.stage, s]));
    assert.deepEqual(
      Object.fromEntries(a.stages.map((s) => [s.stage, s.lines])),
      { compile: 3, archive: 1, link: 1, kallsyms: 1, btf: 1, compress: 2, other: 0 },
      rec.lines.map((l) => `${stageOf(l.command)}: ${l.command}`).join('\n'),
    );
    const workUs = rec.lines.filter((_, i) => a.work(i)).reduce((s, l) => s + durationUs(l), 0);
    assert.equal(a.stages.reduce((s, r) => s + r.us, 0), workUs);
    assert.equal(st.btf!.us, durationUs(rec.lines[byCommand(/^pahole -J main.o$/)]!));
  });

  test('hit rate by directory: the library was restored, the edited program ran', () => {
    const dirs = Object.fromEntries(a.directories.map((d) => [d.dir, d]));
    assert.deepEqual(Object.keys(dirs).sort(), ['.', 'lib']);
    assert.deepEqual([dirs.lib!.lines, dirs.lib!.hits, dirs.lib!.misses, dirs.lib!.hitRate], [3, 3, 0, 1]);
    assert.deepEqual([dirs['.']!.hits, dirs['.']!.misses, dirs['.']!.hitRate], [0, 6, 0]);
    assert.ok(dirs.lib!.savedUs > 0);
  });

  test('sizes: bytes by type from the files, DWARF and BTF from their section headers (readelf)', () => {
    const sizes = measureOutputs(rec);
    const rows = Object.fromEntries(sizes.rows.map((r) => [r.type, r]));
    const files = writtenFiles(rec).filter((p) => statSync(p, { throwIfNoEntry: false })?.isFile());
    const typeOf = (p: string) => ({ '.o': 'object', '.a': 'archive' })[extname(p)] ?? (p.endsWith('/prog') ? 'executable' : 'other');
    for (const type of ['object', 'archive', 'executable', 'other', 'module']) {
      const mine = files.filter((p) => typeOf(p) === type);
      const elves = mine.filter((p) => type !== 'other' && type !== 'archive');
      const sections = elves.flatMap((p) => refSections(p)).filter((s) => s.type !== 'NOBITS');
      assert.deepEqual(
        [rows[type]!.files, rows[type]!.bytes, rows[type]!.dwarfBytes, rows[type]!.btfBytes],
        [
          mine.length,
          mine.reduce((s, p) => s + statSync(p).size, 0),
          sections.filter((s) => /^(\.rela?)?\.debug_/.test(s.name)).reduce((s, x) => s + x.size, 0),
          sections.filter((s) => s.name === '.BTF' || s.name === '.BTF.ext').reduce((s, x) => s + x.size, 0),
        ],
        type,
      );
    }
    assert.deepEqual([rows.object!.files, rows.archive!.files, rows.executable!.files, rows.other!.files], [3, 1, 1, 3]);
    assert.ok(rows.object!.dwarfBytes > 0, 'gcc -g wrote DWARF');
    assert.ok(rows.object!.btfBytes > 0, 'pahole -J added BTF to main.o');
    assert.equal(sizes.total.bytes, files.reduce((s, p) => s + statSync(p).size, 0));
  });

  test('kbx trace: one complete event per line on its lane, with the command, exit and files', () => {
    const r = kbx.run(['trace', '-o', '-'], { cwd: proj });
    assert.equal(r.status, 0, r.stderr);
    const trace = JSON.parse(r.stdout) as ChromeTrace;
    assert.equal(trace.displayTimeUnit, 'ms');
    const events = trace.traceEvents.filter((e) => e.ph === 'X');
    assert.equal(events.length, rec.lines.length);
    const threads = new Map(trace.traceEvents.filter((e) => e.name === 'thread_name').map((e) => [e.tid, (e.args as { name: string }).name]));
    assert.equal(threads.size, a.layout.workLanes + a.layout.makeLanes);
    const byTid = new Map<number, TraceEvent[]>();
    events.forEach((e, i) => {
      const l = rec.lines[i]!;
      assert.equal(e.pid, 1);
      assert.equal(e.cat, l.kind);
      assert.equal(e.ts, l.startUs - rec.startMs * 1000);
      assert.equal(e.dur, durationUs(l));
      assert.deepEqual([e.args!.command, e.args!.exit, e.args!.cwd], [l.command, l.exit, l.cwd]);
      assert.ok(threads.has(e.tid), `thread ${e.tid} has no name`);
      byTid.set(e.tid, [...(byTid.get(e.tid) ?? []), e]);
    });
    for (const [tid, list] of byTid) for (let j = 1; j < list.length; j++) assert.ok(list[j - 1]!.ts! + list[j - 1]!.dur! <= list[j]!.ts!, `${threads.get(tid)} overlaps`);
    const link = events[byCommand(/^gcc -o prog/)]!;
    assert.equal(link.name, 'prog');
    assert.deepEqual(link.args!.outputs, ['prog']);
    assert.equal(link.args!.criticalPath, true);
    assert.deepEqual(link.args!.why, rec.lines[byCommand(/^gcc -o prog/)]!.why);
    assert.equal(events[byCommand(/^gcc -g -O1 -c -o add.o/)]!.args!.from, rec.lines[byCommand(/add\.o add\.c/)]!.from);

    // Without -o: kbx-trace-<id>.json in the current directory, its path printed.
    const here = tempDir('trace-out');
    const w = kbx.run(['trace'], { cwd: here });
    assert.equal(w.status, 0, w.stderr);
    assert.equal(w.stdout.trim(), join(here, `kbx-trace-${rec.id}.json`));
    assert.deepEqual(JSON.parse(readFileSync(w.stdout.trim(), 'utf8')), trace);
  });

  test('kbx report: Chromium shows the lanes, numbers and details of the build, with no errors', async () => {
    const here = tempDir('report-out');
    const r = kbx.run(['report'], { cwd: here });
    assert.equal(r.status, 0, r.stderr);
    const file = r.stdout.trim();
    assert.equal(file, join(here, `kbx-report-${rec.id}.html`));
    const data = /<script type="application\/json" id="kbx-data">([^]*?)<\/script>/.exec(readFileSync(file, 'utf8'))?.[1];
    assert.ok(data && !data.includes('<'), 'the embedded data holds no < that could end its script element');
    const sizes = measureOutputs(rec);
    const shot = join(repoRoot, 'dist', 'test-artifacts', 'report.png');
    mkdirSync(join(repoRoot, 'dist', 'test-artifacts'), { recursive: true });

    await withPage(file, async (page, problems) => {
      const value = async (sel: string, attr = 'data-value') => Number(await page.locator(sel).getAttribute(attr));
      assert.equal(await page.locator('#build-id').textContent(), rec.id);
      assert.equal(await page.locator('[data-lane]').count(), a.layout.workLanes);
      assert.equal(await page.locator('[data-make-lane]').count(), a.layout.makeLanes);
      assert.equal(await value('#summary-lines'), rec.lines.length);
      assert.equal(await value('#summary-hits'), rec.lines.filter((l) => l.kind === 'hit').length);
      assert.equal(await value('#summary-misses'), rec.lines.filter((l) => l.kind === 'miss').length);
      assert.equal(await value('#summary-lanes'), a.layout.workLanes);
      // One rectangle per line, in its lane; the critical path outlined.
      assert.equal(await page.locator('#timeline rect.line').count(), rec.lines.length);
      for (let k = 0; k < a.layout.workLanes; k++)
        assert.equal(await page.locator(`[data-lane="${k + 1}"] rect.line`).count(), rec.lines.filter((_, i) => a.work(i) && a.layout.lane[i] === k).length);
      assert.deepEqual(await page.locator('#timeline rect.crit').evaluateAll((rs) => rs.map((x) => Number(x.getAttribute('data-i'))).sort((p, q) => p - q)), [...a.critical.lines].sort((p, q) => p - q));
      assert.equal(await page.locator('#critical-path li').count(), Math.min(50, a.critical.lines.length));
      assert.equal(await value('#critical-time'), a.critical.us);
      // Tables.
      assert.equal(await page.locator('#slowest-table tbody tr').count(), a.slowest.length);
      assert.match((await page.locator('#dirs-table tr[data-dir="lib"]').textContent()) ?? '', /100\.0 %/);
      for (const s of a.stages) assert.equal(await value(`#stages-table tr[data-stage="${s.stage}"]`, 'data-us'), s.us);
      assert.equal(await value('#sizes-table tr[data-type="total"]', 'data-bytes'), sizes.total.bytes);
      assert.equal(await value('#sizes-table tr[data-type="object"]', 'data-dwarf'), sizes.rows.find((x) => x.type === 'object')!.dwarfBytes);
      // Clicking a line shows its full command, rebuilt from the page's word table.
      await page.locator('#slowest-table tbody tr').first().click();
      assert.equal(await page.locator('#details-command').textContent(), rec.lines[a.slowest[0]!]!.command);
      await page.locator(`#slowest-table tr[data-line="${byCommand(/^gzip/)}"]`).click();
      assert.equal(await page.locator('#details-command').textContent(), 'gzip -n -9 < prog > prog.gz');
      // Hovering a line of the timeline names it.
      const link = byCommand(/^gcc -o prog/);
      await page.locator(`#timeline rect[data-i="${link}"]`).hover({ force: true });
      assert.match((await page.locator('#tooltip').textContent()) ?? '', /^prog\nmiss · link/);
      await page.screenshot({ path: shot, fullPage: true });
      assert.deepEqual(problems, { errors: [], requests: [] });
    });
    assert.ok(statSync(shot).size > 0);
  });

  test('errors name the problem: no recorded builds, or no such build', () => {
    const empty = new Kbx('report-empty');
    const r = empty.run(['report']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /KBX_NO_BUILDS/);
    const t = kbx.run(['trace', 'no-such-build']);
    assert.equal(t.status, 2);
    assert.match(t.stderr, /KBX_BAD_BUILD[^]*hint: 'kbx builds' lists them/);
  });
});

describe('reading a recipe line', () => {
  test('the stage comes from the programs a line runs, the most specific winning', () => {
    const cases: Array<[string, string]> = [
      [`gcc -Wp,-MMD,fs/.ioctl.o.d -nostdinc -c -o fs/ioctl.o fs/ioctl.c; ./tools/objtool/objtool --hacks=jump_label fs/ioctl.o; scripts/basic/fixdep fs/.ioctl.o.d fs/ioctl.o 'gcc -c; ld' > fs/.ioctl.o.cmd`, 'compile'],
      ['x86_64-linux-gnu-gcc-12 -D__ASSEMBLY__ -c -o arch/x86/entry/entry_64.o arch/x86/entry/entry_64.S', 'compile'],
      ['as -o x.o x.s', 'compile'],
      ['rm -f fs/built-in.a; ar cDPrST fs/built-in.a fs/ioctl.o fs/open.o', 'archive'],
      [`MAKE='make' '/usr/bin/node' '/opt/kbx/dist/src/cli/link-vmlinux.js' "ld" "-m elf_x86_64"; true`, 'link'],
      ['/bin/sh scripts/link-vmlinux.sh "ld" "-m elf_x86_64" ""', 'link'],
      ['ld -r -m elf_x86_64 -T scripts/module.lds -o fs/ext4/ext4.ko fs/ext4/ext4.o fs/ext4/ext4.mod.o', 'link'],
      ['gcc -O2 -o scripts/basic/fixdep scripts/basic/fixdep.c', 'link'],
      ['LLVM_OBJCOPY="objcopy" pahole -J --btf_base vmlinux fs/ext4/ext4.ko; ./tools/bpf/resolve_btfids/resolve_btfids -b vmlinux fs/ext4/ext4.ko', 'btf'],
      ['nm -n .tmp_vmlinux.kallsyms1 | scripts/kallsyms --all-symbols > .tmp_vmlinux.kallsyms1.S', 'kallsyms'],
      ['cat arch/x86/boot/compressed/vmlinux.bin | gzip -n -f -9 > arch/x86/boot/compressed/vmlinux.bin.gz', 'compress'],
      ['{ cat vmlinux.bin | sh scripts/xz_wrap.sh; printf \\330\\343\\021\\000; } > vmlinux.bin.xz', 'compress'],
      ['gcc -E -P -Ulinux -o arch/x86/kernel/vmlinux.lds arch/x86/kernel/vmlinux.lds.S', 'other'],
      ['LC_ALL=C gcc --version 2>/dev/null | head -n 1', 'other'],
      ['gzip -n -9 < prog > prog.gz 2>&1', 'compress'],
      ['off=$(grep -obUa PLACEHOLDER x.o | cut -d: -f1); printf X | dd of=x.o conv=notrunc', 'other'],
      ['echo "  LD      vmlinux"', 'other'],
    ];
    for (const [cmd, stage] of cases) assert.equal(stageOf(cmd), stage, cmd);
  });

  test('a line whose work is running make is a sub-make; one that also runs make is not', () => {
    assert.ok(runsSubMake('make -f ./scripts/Makefile.build obj=fs need-builtin=1'));
    assert.ok(runsSubMake('set -e; /usr/bin/make -C lib'));
    assert.ok(!runsSubMake(`MAKE='make' '/usr/bin/node' 'link-vmlinux.js' "ld"; make -f arch/x86/Makefile.postlink vmlinux`));
  });

  test('a line depends on a writer only if the writer ended before it started', () => {
    const line = (startUs: number, endUs: number, inputs: number[], outputs: number[]): LineRecord => ({ kind: 'miss', startUs, endUs, exit: 0, cwd: '/p', command: 'x', inputs, outputs });
    const rec: BuildRecord = {
      format: 1, id: 't', dir: '/p', args: [], startMs: 0, endMs: 1, exit: 0, curve: [], paths: ['/p/x', '/p/y'], envs: [],
      counts: { trivial: 0, recursive: 0, pass: 0, fallback: 0, hit: 0, miss: 3 },
      // 0 writes x; 1 reads x while 0 still runs (no edge), writing y for long; 2 reads x after 0 ended.
      lines: [line(0, 10, [], [0]), line(5, 100, [0], [1]), line(12, 15, [0], [])],
    };
    assert.deepEqual(criticalPath(rec), { lines: [1], us: 95 });
    rec.lines[1]!.endUs = 6;
    assert.deepEqual(criticalPath(rec), { lines: [0, 2], us: 13 });
  });
});
