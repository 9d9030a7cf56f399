// `kbx report`: one self-contained HTML file. The analysis is embedded as JSON
// (page-data.ts) and drawn by the functions of page-client.ts, inlined with
// the stylesheet: the file opens from disk with no network.
import type { BuildRecord, LineRecord, MissWhy } from '../builds/record.js';
import { displayPath, durationUs, type BuildAnalysis } from './analysis.js';
import { CLIENT_FUNCTIONS } from './page-client.js';
import type { PageData, PageLine } from './page-data.js';
import { PAGE_STYLE } from './page-style.js';
import type { SizeReport } from './sizes.js';

const sec = (us: number) => `${(us / 1e6).toFixed(us < 1e6 ? 3 : 1)} s`;

function whyText(why: MissWhy, roots: readonly string[]): string {
  switch (why.kind) {
    case 'new-command':
      return 'no stored run has this command, directory and environment';
    case 'unavailable':
      return "a stored run matched, but its outputs were no longer in the store";
    case 'inputs': {
      const names = why.changes.map((c) => `${displayPath(c.path, roots)} (${c.change})`);
      const more = names.length > 8 ? ` and ${names.length - 8} more` : '';
      return `inputs changed since the closest stored run: ${names.slice(0, 8).join(', ')}${more}`;
    }
  }
}

/** Why a line ran, passed through or was restored, in a sentence. */
export function lineNote(line: LineRecord, roots: readonly string[]): string | undefined {
  switch (line.kind) {
    case 'hit':
      return `restored from build ${line.from ?? '(unknown)'}; it took ${sec(line.savedUs ?? 0)} when it ran`;
    case 'miss': {
      const why = line.why ? whyText(line.why, roots) : undefined;
      const kept = line.reason ? `not stored: ${line.reason}` : undefined;
      return [why, kept].filter(Boolean).join('; ') || undefined;
    }
    case 'pass':
      return `not cached${line.reason ? `: ${line.reason}` : ''}`;
    case 'fallback':
      return 'run without the cache: the daemon could not be asked';
    default:
      return line.reason;
  }
}

/** Interns the pieces of command lines: a word with the blanks after it. */
class Words {
  readonly list: string[] = [];
  private ids = new Map<string, number>();

  id(w: string): number {
    let id = this.ids.get(w);
    if (id === undefined) {
      id = this.list.push(w) - 1;
      this.ids.set(w, id);
    }
    return id;
  }

  text(s: string): number[] {
    return (s.match(/\s+|\S+\s*/g) ?? []).map((w) => this.id(w));
  }
}

export function pageData(rec: BuildRecord, a: BuildAnalysis, sizes: SizeReport | undefined): PageData {
  const words = new Words();
  const t0 = rec.startMs * 1000;
  const lines = rec.lines.map((l, i): PageLine => {
    const sub = a.layout.subMake[i]!;
    const p: PageLine = {
      k: l.kind,
      s: l.startUs - t0,
      d: durationUs(l),
      l: a.layout.lane[i]!,
      x: l.exit,
      t: a.labels[i]!,
      g: sub ? 'sub-make' : a.lineStages[i]!,
      c: words.text(l.command),
      w: words.id(l.cwd),
      o: l.outputs.map((o) => displayPath(rec.paths[o] ?? '', a.roots)),
    };
    if (sub) p.m = 1;
    const note = lineNote(l, a.roots);
    if (note) p.n = note;
    return p;
  });
  const { curve: _c, format: _f, lines: _l, paths: _p, envs: _e, ...build } = rec;
  return {
    build: { ...build, wallUs: a.wallUs, savedUs: rec.lines.reduce((sum, l) => sum + (l.kind === 'hit' ? (l.savedUs ?? 0) : 0), 0) },
    lanes: { work: a.layout.workLanes, make: a.layout.makeLanes },
    words: words.list,
    lines,
    critical: a.critical,
    slowest: a.slowest,
    directories: a.directories,
    stages: a.stages,
    ...(sizes ? { sizes } : {}),
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page. In the JSON, `<` becomes \u003c so no text in it can close the script element. */
export function reportHtml(data: PageData): string {
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const script = `(() => {\n${CLIENT_FUNCTIONS.map((f) => f.toString()).join('\n')}\nkbxReport(JSON.parse(document.getElementById('kbx-data').textContent));\n})();`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kbx build ${escapeHtml(data.build.id)}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<header id="header"></header>
<main>
<section id="timeline-section"><h2>Timeline</h2><div id="timeline-controls"></div><div id="timeline-wrap"><svg id="lane-labels"></svg><div id="timeline-scroll"></div></div><div id="details" hidden></div></section>
<section id="critical-section"><h2>Critical path</h2><div id="critical"></div></section>
<section id="slowest-section"><h2>Slowest lines</h2><div id="slowest"></div></section>
<section id="dirs-section"><h2>Hit rate by directory</h2><div id="dirs"></div></section>
<section id="stages-section"><h2>Time by stage</h2><div id="stages"></div></section>
<section id="sizes-section"><h2>What the build wrote</h2><div id="sizes"></div></section>
</main>
<div id="tooltip" hidden></div>
<script type="application/json" id="kbx-data">${json}</script>
<script>${script}</script>
</body>
</html>
`;
}
