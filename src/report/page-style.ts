// The report page's stylesheet (inlined by html.ts). System fonts only: the
// page never reaches the network.
export const PAGE_STYLE = `
:root { --hit: #2f9e5f; --miss: #e0663a; --pass: #5b84c4; --trivial: #bdbdbd; --recursive: #a58bd6; --fallback: #b3261e;
  --fg: #1d1d1f; --muted: #6b6b70; --line: #e3e3e8; --bg: #fafafb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 16px 24px 8px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 8px; }
main { padding: 8px 24px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 12px 0; }
.meta { color: var(--muted); word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0 4px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 92px; }
.card .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 10px; vertical-align: -1px; }
#timeline-controls { display: flex; align-items: center; gap: 6px; margin-bottom: 6px; flex-wrap: wrap; }
#timeline-controls button { font: inherit; padding: 1px 9px; border: 1px solid #c9c9cf; background: #fff; border-radius: 4px; cursor: pointer; }
#timeline-wrap { display: flex; border: 1px solid var(--line); }
#lane-labels { flex: none; width: 64px; background: #f4f4f6; }
#lane-labels text { font-size: 10px; fill: var(--muted); }
#timeline-scroll { flex: 1; overflow-x: auto; overflow-y: hidden; }
#timeline { display: block; }
#timeline .lane-bg { fill: #fff; }
#timeline .lane-bg.odd { fill: #f6f6f8; }
#timeline .make-bg { fill: #f1eef8; }
#timeline rect.line { cursor: pointer; }
#timeline .tick { stroke: #e6e6ea; }
#timeline .tick-label { font-size: 10px; fill: var(--muted); }
.k-hit { fill: var(--hit); background: var(--hit); } .k-miss { fill: var(--miss); background: var(--miss); }
.k-pass { fill: var(--pass); background: var(--pass); } .k-trivial { fill: var(--trivial); background: var(--trivial); }
.k-recursive { fill: var(--recursive); background: var(--recursive); } .k-fallback { fill: var(--fallback); background: var(--fallback); }
#timeline rect.crit { stroke: #111; stroke-width: 1.5px; }
#timeline.dim rect.line:not(.crit) { opacity: 0.25; }
#timeline rect.sel { stroke: #0a58ca; stroke-width: 2.5px; }
#tooltip { position: fixed; z-index: 10; max-width: 560px; pointer-events: none; background: #222; color: #f2f2f2; padding: 6px 8px;
  border-radius: 4px; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
#details { margin-top: 10px; border-top: 1px solid var(--line); padding-top: 8px; }
#details pre { background: #f4f4f6; padding: 8px; white-space: pre-wrap; word-break: break-all; max-height: 320px; overflow: auto; font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num, th.num { text-align: right; }
tr[data-line] { cursor: pointer; }
tr[data-line]:hover, li[data-line]:hover { background: #f0f4ff; }
td.cmd { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: 12px; color: var(--muted); max-width: 560px;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar { height: 10px; background: #7b8fd6; border-radius: 2px; min-width: 1px; }
.note { color: var(--muted); font-size: 12px; margin: 6px 0; }
ol#critical-path { margin: 6px 0; padding-left: 28px; }
ol#critical-path li { cursor: pointer; padding: 1px 0; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px; color: #fff; margin-right: 4px; }
`;
