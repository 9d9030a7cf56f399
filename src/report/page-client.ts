// The report page's script. These functions run in the browser: html.ts
// inlines their source text (Function.prototype.toString), so each may use
// only its arguments, browser globals and the other functions listed in
// CLIENT_FUNCTIONS — nothing else of this module exists on the page.
import type { PageData, PageLine } from './page-data.js';

type Attrs = Record<string, string | number>;

function h(tag: string, attrs: Attrs = {}, ...children: Array<Node | string>): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}

function svg(tag: string, attrs: Attrs = {}): SVGElement {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function fmtUs(us: number): string {
  if (us < 1e3) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1e3).toFixed(1)} ms`;
  if (us < 600e6) return `${(us / 1e6).toFixed(2)} s`;
  return `${Math.floor(us / 60e6)} min ${Math.round((us % 60e6) / 1e6)} s`;
}

function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function fmtRate(hits: number, misses: number): string {
  return hits + misses ? `${((100 * hits) / (hits + misses)).toFixed(1)} %` : '–';
}

function commandText(data: PageData, line: PageLine): string {
  return line.c.map((w) => data.words[w]).join('');
}

/** A table with a header row; `rows` are built by the caller. Shows how many rows were left out. */
function table(id: string, heads: Array<[string, boolean?]>, rows: HTMLElement[], total: number): HTMLElement {
  const head = h('tr', {}, ...heads.map(([t, num]) => h('th', num ? { class: 'num' } : {}, t)));
  const box = h('div', {}, h('table', { id }, h('thead', {}, head), h('tbody', {}, ...rows)));
  if (total > rows.length) box.append(h('p', { class: 'note' }, `showing ${rows.length} of ${total}`));
  return box;
}

function card(id: string, label: string, text: string, value: number): HTMLElement {
  return h('div', { class: 'card' }, h('div', { class: 'v', id, 'data-value': value }, text), h('div', { class: 'k' }, label));
}

function renderHeader(data: PageData): void {
  const b = data.build;
  const c = b.counts;
  const lines = data.lines.length;
  const header = document.getElementById('header')!;
  header.append(
    h('h1', {}, 'kbx build ', h('span', { id: 'build-id' }, b.id)),
    h('div', { class: 'meta', id: 'build-command' }, `make ${b.args.join(' ')} in ${b.dir}`),
    h('div', { class: 'meta' }, `started ${new Date(b.startMs).toLocaleString()} · exit status ${b.exit}`),
    h(
      'div',
      { class: 'cards' },
      card('summary-duration', 'wall time', fmtUs(b.wallUs), b.wallUs),
      card('summary-lines', 'recipe lines', String(lines), lines),
      card('summary-hits', 'hits', String(c.hit), c.hit),
      card('summary-misses', 'misses', String(c.miss), c.miss),
      ...Object.entries(b.missesVia ?? {}).map(([w, n]) => card(`summary-via-${w}`, `misses via ${w}`, String(n), n)),
      card('summary-hit-rate', 'hit rate', fmtRate(c.hit, c.miss), c.hit + c.miss ? c.hit / (c.hit + c.miss) : 0),
      card('summary-pass', 'pass-through', String(c.pass), c.pass),
      card('summary-trivial', 'trivial', String(c.trivial), c.trivial),
      card('summary-recursive', 'recursive', String(c.recursive), c.recursive),
      card('summary-fallback', 'without cache', String(c.fallback), c.fallback),
      card('summary-saved', 'recipe time saved', fmtUs(b.savedUs), b.savedUs),
      card('summary-lanes', 'job lanes', String(data.lanes.work), data.lanes.work),
    ),
  );
}

function renderDetails(data: PageData, i: number): void {
  const l = data.lines[i]!;
  const box = document.getElementById('details')!;
  box.hidden = false;
  box.replaceChildren(
    h('h2', {}, h('span', { class: `tag k-${l.k}` }, l.k), l.t),
    h(
      'div',
      { class: 'meta' },
      `${l.m ? 'make' : 'lane'} ${l.l + 1} · stage ${l.g} · started +${fmtUs(l.s)} · took ${fmtUs(l.d)} · exit ${l.x}`,
    ),
    ...(l.n ? [h('div', { class: 'meta', id: 'details-note' }, l.n)] : []),
    h('div', { class: 'meta' }, `in ${data.words[l.w]}`),
    ...(l.o.length ? [h('div', { class: 'meta' }, `wrote ${l.o.join(', ')}`)] : []),
    h('pre', { id: 'details-command' }, commandText(data, l)),
  );
}

/** Draws the lanes; returns a function that marks one line and scrolls it into view. */
function renderTimeline(data: PageData, onSelect: (i: number) => void): (i: number) => void {
  const WORK_H = 14;
  const MAKE_H = 8;
  const GAP = 2;
  const AXIS = 18;
  const makeTop = AXIS;
  const workTop = AXIS + data.lanes.make * (MAKE_H + GAP) + (data.lanes.make ? 6 : 0);
  const height = workTop + data.lanes.work * (WORK_H + GAP);
  const rowY = (l: PageLine) => (l.m ? makeTop + l.l * (MAKE_H + GAP) : workTop + l.l * (WORK_H + GAP));
  const wall = Math.max(1, data.build.wallUs, ...data.lines.map((l) => l.s + l.d));
  const scroll = document.getElementById('timeline-scroll')!;
  const root = svg('svg', { id: 'timeline', height });
  const axis = svg('g', { id: 'axis' });
  root.append(axis);

  const labels = document.getElementById('lane-labels')!;
  labels.setAttribute('height', String(height));
  const groups: SVGElement[] = [];
  const bgs: SVGElement[] = [];
  for (let k = 0; k < data.lanes.make; k++) {
    const g = svg('g', { class: 'make-lane', 'data-make-lane': k + 1 });
    const bg = svg('rect', { class: 'make-bg', x: 0, y: makeTop + k * (MAKE_H + GAP), height: MAKE_H });
    g.append(bg);
    bgs.push(bg);
    groups.push(g);
    root.append(g);
  }
  if (data.lanes.make) {
    const t = svg('text', { x: 6, y: makeTop + 8 });
    t.textContent = `make ×${data.lanes.make}`;
    labels.append(t);
  }
  const workGroups: SVGElement[] = [];
  for (let k = 0; k < data.lanes.work; k++) {
    const y = workTop + k * (WORK_H + GAP);
    const g = svg('g', { class: 'lane', 'data-lane': k + 1 });
    const bg = svg('rect', { class: `lane-bg${k % 2 ? ' odd' : ''}`, x: 0, y, height: WORK_H });
    g.append(bg);
    bgs.push(bg);
    workGroups.push(g);
    root.append(g);
    const t = svg('text', { x: 6, y: y + 11 });
    t.textContent = `lane ${k + 1}`;
    labels.append(t);
  }
  const critical = new Set(data.critical.lines);
  const rects: SVGElement[] = data.lines.map((l, i) => {
    const r = svg('rect', { class: `line k-${l.k}${critical.has(i) ? ' crit' : ''}`, 'data-i': i, y: rowY(l), height: l.m ? MAKE_H : WORK_H });
    (l.m ? groups : workGroups)[l.l]!.append(r);
    return r;
  });
  // The critical path drawn last, so its outlines are not covered by neighbours.
  for (const i of data.critical.lines) rects[i]!.parentNode!.append(rects[i]!);
  scroll.append(root);

  let zoom = 1;
  const layout = () => {
    const width = Math.max(200, (scroll.clientWidth - 2) * zoom);
    const px = width / wall;
    root.setAttribute('width', String(width));
    for (const bg of bgs) bg.setAttribute('width', String(width));
    data.lines.forEach((l, i) => {
      rects[i]!.setAttribute('x', (l.s * px).toFixed(1));
      rects[i]!.setAttribute('width', Math.max(1, l.d * px).toFixed(1));
    });
    // Ticks at 1, 2 or 5 times a power of ten, at least 90 px apart.
    const minStep = 90 / px;
    const p10 = Math.pow(10, Math.floor(Math.log10(minStep)));
    const step = [1, 2, 5, 10].map((m) => m * p10).find((s) => s >= minStep) ?? 10 * p10;
    axis.replaceChildren();
    for (let t = 0; t <= wall; t += step) {
      axis.append(svg('line', { class: 'tick', x1: t * px, x2: t * px, y1: AXIS - 4, y2: height }));
      if (t * px + 50 > width) continue; // no room for the label
      const label = svg('text', { class: 'tick-label', x: t * px + 3, y: 12 });
      label.textContent = fmtUs(t);
      axis.append(label);
    }
  };
  const setZoom = (z: number) => {
    const center = (scroll.scrollLeft + scroll.clientWidth / 2) / Math.max(1, scroll.scrollWidth);
    zoom = Math.min(512, Math.max(1, z));
    layout();
    scroll.scrollLeft = center * scroll.scrollWidth - scroll.clientWidth / 2;
    document.getElementById('zoom-level')!.textContent = `${zoom}×`;
  };

  const controls = document.getElementById('timeline-controls')!;
  const dim = h('input', { type: 'checkbox', id: 'dim-others' }) as HTMLInputElement;
  dim.addEventListener('change', () => root.classList.toggle('dim', dim.checked));
  const button = (id: string, text: string, f: () => void) => {
    const b = h('button', { id, type: 'button' }, text);
    b.addEventListener('click', f);
    return b;
  };
  controls.append(
    'zoom',
    button('zoom-out', '−', () => setZoom(zoom / 2)),
    h('span', { id: 'zoom-level' }, '1×'),
    button('zoom-in', '+', () => setZoom(zoom * 2)),
    button('zoom-fit', 'fit', () => setZoom(1)),
    h('label', {}, dim, ' show only the critical path'),
    h('span', { class: 'legend' }, ...['hit', 'miss', 'pass', 'trivial', 'recursive', 'fallback'].flatMap((k) => [h('span', { class: `swatch k-${k}` }), k])),
  );

  const tip = document.getElementById('tooltip')!;
  root.addEventListener('mousemove', (e) => {
    const i = (e.target as Element).getAttribute('data-i');
    if (i === null) {
      tip.hidden = true;
      return;
    }
    const l = data.lines[Number(i)]!;
    const cmd = commandText(data, l);
    tip.textContent = `${l.t}\n${l.k} · ${l.g} · ${fmtUs(l.d)} at +${fmtUs(l.s)} · exit ${l.x}\n${cmd.length > 400 ? `${cmd.slice(0, 400)}…` : cmd}`;
    tip.hidden = false;
    tip.style.left = `${Math.min(e.clientX + 12, window.innerWidth - tip.offsetWidth - 8)}px`;
    tip.style.top = `${e.clientY + 14}px`;
  });
  root.addEventListener('mouseleave', () => (tip.hidden = true));
  root.addEventListener('click', (e) => {
    const i = (e.target as Element).getAttribute('data-i');
    if (i !== null) onSelect(Number(i));
  });
  window.addEventListener('resize', layout);
  layout();

  let selected = -1;
  return (i: number) => {
    if (selected >= 0) rects[selected]!.classList.remove('sel');
    selected = i;
    const r = rects[i]!;
    r.classList.add('sel');
    const x = Number(r.getAttribute('x'));
    if (x < scroll.scrollLeft || x > scroll.scrollLeft + scroll.clientWidth) scroll.scrollLeft = x - scroll.clientWidth / 3;
  };
}

function lineRow(data: PageData, i: number, onSelect: (i: number) => void): HTMLElement {
  const l = data.lines[i]!;
  const cmd = commandText(data, l);
  const row = h(
    'tr',
    { 'data-line': i },
    h('td', { class: 'num' }, fmtUs(l.d)),
    h('td', {}, h('span', { class: `tag k-${l.k}` }, l.k)),
    h('td', {}, l.g),
    h('td', {}, l.t),
    h('td', { class: 'cmd', title: cmd.slice(0, 2000) }, cmd),
  );
  row.addEventListener('click', () => onSelect(i));
  return row;
}

function renderCritical(data: PageData, onSelect: (i: number) => void): void {
  const cp = data.critical;
  const box = document.getElementById('critical')!;
  box.append(
    h(
      'p',
      { class: 'note' },
      h('span', { id: 'critical-count', 'data-value': cp.lines.length }, `${cp.lines.length} lines`),
      ', ',
      h('span', { id: 'critical-time', 'data-value': cp.us }, fmtUs(cp.us)),
      ' of the ',
      fmtUs(data.build.wallUs),
      ' build: the longest chain of lines each of which read a file the one before it wrote. Lines kbx did not trace (pass-through, trivial) have no known files and end a chain.',
    ),
  );
  const shown = cp.lines.slice(0, 50);
  const list = h('ol', { id: 'critical-path' });
  for (const i of shown) {
    const l = data.lines[i]!;
    const li = h('li', { 'data-line': i }, h('span', { class: `tag k-${l.k}` }, l.k), `${l.t} — ${fmtUs(l.d)} at +${fmtUs(l.s)}`);
    li.addEventListener('click', () => onSelect(i));
    list.append(li);
  }
  box.append(list);
  if (cp.lines.length > shown.length) box.append(h('p', { class: 'note' }, `showing ${shown.length} of ${cp.lines.length}`));
}

function renderSlowest(data: PageData, onSelect: (i: number) => void): void {
  const rows = data.slowest.slice(0, 50).map((i) => lineRow(data, i, onSelect));
  document
    .getElementById('slowest')!
    .append(table('slowest-table', [['time', true], ['kind'], ['stage'], ['target'], ['command']], rows, data.slowest.length));
}

function renderDirectories(data: PageData): void {
  const rows = data.directories.slice(0, 50).map((d) =>
    h(
      'tr',
      { 'data-dir': d.dir },
      h('td', {}, d.dir),
      h('td', { class: 'num' }, String(d.lines)),
      h('td', { class: 'num' }, String(d.hits)),
      h('td', { class: 'num' }, String(d.misses)),
      h('td', { class: 'num' }, fmtRate(d.hits, d.misses)),
      h('td', { class: 'num' }, fmtUs(d.us)),
      h('td', { class: 'num' }, fmtUs(d.savedUs)),
    ),
  );
  const heads: Array<[string, boolean?]> = [['directory'], ['lines', true], ['hits', true], ['misses', true], ['hit rate', true], ['time', true], ['saved', true]];
  const box = document.getElementById('dirs')!;
  box.append(h('p', { class: 'note' }, "Each line counts in the directory of the file it wrote (or where it ran); hit rate is hits / (hits + misses)."));
  box.append(table('dirs-table', heads, rows, data.directories.length));
}

function renderStages(data: PageData): void {
  const total = data.stages.reduce((a, s) => a + s.us, 0);
  const max = Math.max(1, ...data.stages.map((s) => s.us));
  const rows = data.stages.map((s) =>
    h(
      'tr',
      { 'data-stage': s.stage, 'data-us': s.us },
      h('td', {}, s.stage),
      h('td', { class: 'num' }, String(s.lines)),
      h('td', { class: 'num' }, fmtUs(s.us)),
      h('td', { class: 'num' }, total ? `${((100 * s.us) / total).toFixed(1)} %` : '–'),
      h('td', { style: 'width: 40%' }, h('div', { class: 'bar', style: `width: ${((100 * s.us) / max).toFixed(1)}%` })),
    ),
  );
  const box = document.getElementById('stages')!;
  box.append(
    h(
      'p',
      { class: 'note' },
      `Summed line time, ${fmtUs(total)} (lines that ran side by side all count), against ${fmtUs(data.build.wallUs)} of wall time on ${data.lanes.work} lanes. Stages are read from the programs a line runs.`,
    ),
  );
  box.append(table('stages-table', [['stage'], ['lines', true], ['time', true], ['share', true], ['']], rows, rows.length));
}

function renderSizes(data: PageData): void {
  const box = document.getElementById('sizes')!;
  const s = data.sizes;
  if (!s) {
    box.append(h('p', { class: 'note' }, 'Not measured.'));
    return;
  }
  const row = (type: string, r: { files: number; bytes: number; dwarfBytes: number; btfBytes: number }) =>
    h(
      'tr',
      { 'data-type': type, 'data-files': r.files, 'data-bytes': r.bytes, 'data-dwarf': r.dwarfBytes, 'data-btf': r.btfBytes },
      h('td', {}, type),
      h('td', { class: 'num' }, String(r.files)),
      h('td', { class: 'num' }, fmtBytes(r.bytes)),
      h('td', { class: 'num' }, fmtBytes(r.dwarfBytes)),
      h('td', { class: 'num' }, fmtBytes(r.btfBytes)),
    );
  const rows = [...s.rows.filter((r) => r.files).map((r) => row(r.type, r)), row('total', s.total)];
  box.append(
    h(
      'p',
      { class: 'note' },
      `The files the build's lines wrote that still exist${s.missing ? ` (${s.missing} more are gone)` : ''}. DWARF: .debug_* sections and their relocations; BTF: .BTF and .BTF.ext; read from ELF section headers.`,
    ),
  );
  box.append(table('sizes-table', [['type'], ['files', true], ['bytes', true], ['DWARF', true], ['BTF', true]], rows, rows.length));
}

function kbxReport(data: PageData): void {
  renderHeader(data);
  let show: (i: number) => void = () => {};
  const select = (i: number) => {
    renderDetails(data, i);
    show(i);
  };
  show = renderTimeline(data, select);
  renderCritical(data, select);
  renderSlowest(data, select);
  renderDirectories(data);
  renderStages(data);
  renderSizes(data);
}

export const CLIENT_FUNCTIONS = [h, svg, fmtUs, fmtBytes, fmtRate, commandText, table, card, renderHeader, renderDetails, renderTimeline, lineRow, renderCritical, renderSlowest, renderDirectories, renderStages, renderSizes, kbxReport];
