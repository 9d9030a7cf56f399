// Renders the results as markdown: the summary table (one row per scenario:
// plain, ccache and kbx times, kbx's ratios, kbx's hits and misses, whether
// kbx's vmlinux equals plain's, and the budget of ../shared/DESIGN.md §3 with
// met / not met), then every run with its load average and summary line.
import type { KernelResult, KernelRun, KernelScenario, Mode } from './kernel.js';
import type { MicroResult } from './micro.js';

export interface Report {
  header: string[];
  kernel?: KernelResult;
  micro?: MicroResult;
  footer: string[];
}

const LABEL: Record<KernelScenario, string> = {
  cold: 'cold build (empty caches), s',
  warm: '`make clean` + warm rebuild, s',
  noop: 'no-op `make`, s',
  touch: '`touch fs/ioctl.c` + rebuild, s',
  header: '`touch include/linux/fs.h` + rebuild, s',
  switch: 'branch switch and back (new mtimes under fs/, include/linux/, kernel/) + rebuild, s',
};

const secs = (x: number | undefined) => (x === undefined ? '—' : x < 10 ? x.toFixed(2) : x.toFixed(1));
const ms = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(3));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? '—' : `${(a / b).toFixed(2)}×`);
const met = (ok: boolean) => (ok ? '**met**' : '**not met**');
const yesNo = (b: boolean | undefined) => (b === undefined ? '—' : b ? 'yes' : 'no');

function row(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

export function renderReport(r: Report): string {
  const out: string[] = [...r.header, ''];
  out.push(row(['scenario', 'plain', 'ccache', 'kbx', 'kbx, replay on', 'kbx/plain', 'kbx/ccache', 'replay on/plain', 'kbx lines: hits / misses', 'kbx vmlinux = plain', 'budget']));
  out.push(row(Array(11).fill('---')));

  const k = r.kernel;
  const get = (s: KernelScenario, m: Mode): KernelRun | undefined => k?.runs.find((x) => x.scenario === s && x.mode === m);
  const t = (s: KernelScenario, m: Mode) => {
    const run = get(s, m);
    return run && run.status === 0 ? run.seconds : undefined;
  };
  const cell = (s: KernelScenario, m: Mode) => {
    const run = get(s, m);
    if (!run) return '—';
    return run.status === 0 ? secs(run.seconds) : `FAILED (${run.status})`;
  };
  const scenarios = (['cold', 'warm', 'noop', 'touch', 'header', 'switch'] as const).filter((s) => k?.runs.some((x) => x.scenario === s));
  for (const s of scenarios) {
    const kb = get(s, 'kbx')?.kbx;
    const same = k?.same[s]?.kbx;
    let budget = '—';
    const kbxT = t(s, 'kbx');
    if (s === 'cold' && kbxT !== undefined && t('cold', 'plain') !== undefined) {
      budget = `≤ 1.05× plain: ${met(kbxT <= 1.05 * t('cold', 'plain')!)}`;
    } else if ((s === 'warm' || s === 'header' || s === 'switch') && kbxT !== undefined && t('noop', 'plain') !== undefined) {
      const noop = t('noop', 'plain')!;
      budget = `≤ 1.3× plain no-op (${secs(1.3 * noop)} s): ${met(kbxT <= 1.3 * noop)} (${(kbxT / noop).toFixed(1)}× no-op)`;
    } else if (s === 'warm' || s === 'header' || s === 'switch') {
      budget = '≤ 1.3× plain no-op (needs the noop scenario)';
    }
    out.push(
      row([
        LABEL[s],
        cell(s, 'plain'),
        cell(s, 'ccache'),
        cell(s, 'kbx'),
        cell(s, 'kbx-replay'),
        ratio(kbxT, t(s, 'plain')),
        ratio(kbxT, t(s, 'ccache')),
        ratio(t(s, 'kbx-replay'), t(s, 'plain')),
        kb ? `${kb.hits} / ${kb.misses}` : '—',
        same ? `${yesNo(same.vmlinux)} (bzImage ${yesNo(same.bzImage)})${k?.same[s]?.['kbx-replay'] ? `; replay on ${yesNo(k.same[s]!['kbx-replay']!.vmlinux)}` : ''}` : '—',
        budget,
      ]),
    );
  }

  const m = r.micro;
  if (m) {
    const tr = m.trivial;
    out.push(
      row([
        `trivial line (\`set -e;\` vs \`dash -c :\`), ms/run, median of ${m.runs.trivial}`,
        ms(tr.dash.medianMs),
        '—',
        ms(tr.shim.medianMs),
        '—',
        ratio(tr.shim.medianMs, tr.dash.medianMs),
        '—',
        '—',
        '—',
        '—',
        `≤ dash: ${met(tr.shim.medianMs <= tr.dash.medianMs)}`,
      ]),
    );
    const h = m.hit;
    out.push(
      row([
        `one cache hit end to end (\`cat a > b\`; plain = \`sh -c\`), ms, median of ${m.runs.hit}`,
        ms(h.sh.medianMs),
        '—',
        ms(h.kbx.medianMs),
        '—',
        ratio(h.kbx.medianMs, h.sh.medianMs),
        '—',
        '—',
        `${h.hits} / ${m.runs.hit - h.hits}`,
        '—',
        `≤ 2 ms: ${met(h.kbx.medianMs <= 2 && h.hits === m.runs.hit)}`,
      ]),
    );
  }
  if (k?.rss) {
    const mb = (k.rss.mib * 2 ** 20) / 1e6;
    out.push(row(['daemon RSS after the warm kernel build, MiB', '—', '—', String(k.rss.mib), '—', '—', '—', '—', '—', '—', `≤ 300 MB: ${met(mb <= 300)} (${mb.toFixed(0)} MB)`]));
  }

  if (k) {
    out.push('', 'Every run (load = 1-minute load average when the run started):', '');
    out.push(row(['scenario', 'mode', 's', 'load', 'exit', 'cache']));
    out.push(row(Array(6).fill('---')));
    for (const run of k.runs) {
      const cache = run.kbx ? `\`${run.kbx.line}\`` : run.ccache ? `ccache: ${run.ccache.hits} hits, ${run.ccache.misses} misses` : '';
      out.push(row([run.scenario, run.mode, secs(run.seconds), run.load.toFixed(2), String(run.status), cache]));
    }
    const cmp = Object.entries(k.same)
      .filter(([, v]) => v.kbx || v.ccache)
      .map(([s, v]) => `${s}: kbx ${v.kbx ? `vmlinux ${yesNo(v.kbx.vmlinux)}, bzImage ${yesNo(v.kbx.bzImage)}` : '—'}; ccache ${v.ccache ? `vmlinux ${yesNo(v.ccache.vmlinux)}, bzImage ${yesNo(v.ccache.bzImage)}` : '—'}`)
      .join(' · ');
    if (cmp) out.push('', `Byte-identical to plain's build of the same scenario: ${cmp}`);
    const pids = Object.entries(k.daemonPids).map(([s, p]) => `${s} ${p}`);
    if (pids.length) out.push('', `kbx daemon pid after each kbx run: ${pids.join(', ')}${new Set(Object.values(k.daemonPids)).size > 1 ? ' (restarted between runs)' : ' (one daemon throughout)'}`);
    if (k.rss) out.push('', `\`${k.rss.line}\``);
  }
  if (m) {
    out.push(
      '',
      `Micro means: trivial shim ${ms(m.trivial.shim.meanMs)} ms, dash ${ms(m.trivial.dash.meanMs)} ms; ` +
        `hit shim ${ms(m.hit.kbx.meanMs)} ms, sh ${ms(m.hit.sh.meanMs)} ms. ` +
        `The hit line through \`kbx make\`: ${m.hit.makeLines.map((l) => `\`${l}\``).join(', then ')}.`,
    );
  }
  out.push('', ...r.footer);
  return out.join('\n') + '\n';
}
