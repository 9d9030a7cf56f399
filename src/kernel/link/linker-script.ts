// Just enough of a (preprocessed) kernel linker script to predict, before the
// link, which input sections of vmlinux.o survive it and where they land:
// the symbols the script assigns, the input-section patterns in script order
// (ld gives an input section to the first pattern that matches it), which of
// them are discarded, and which lie between the range markers kallsyms cares
// about (_stext.._etext, _sinittext.._einittext, __per_cpu_start.._end).
//
// It only has to be right enough for an upper bound: the table sized from it
// is checked against the symbols of the real link, and a miss falls back.
// It also says which output section each pattern feeds: nm names a symbol's
// kind by the flags of the section it ends up in (x86's .rodata is writable,
// as .data..ro_after_init goes there, so its symbols list as 'd', not 'r'),
// and kallsyms compresses that letter with the name.

export interface ScriptPattern {
  glob: RegExp;
  /** Offset of the pattern in the script text. */
  pos: number;
  discard: boolean;
  /** The output section the pattern is in ('' outside any). */
  out: string;
}

export interface ScriptRange {
  start: number;
  end: number;
}

export interface ScriptAssignment {
  name: string;
  pos: number;
  /** The output section the symbol is assigned in ('' between sections). */
  out: string;
  /** Between sections: the output sections before it in the script, nearest first. */
  after: string[];
  /** `x = ABSOLUTE(…)`: an absolute symbol ('A'), whatever its place. */
  absolute: boolean;
}

export interface LinkerScript {
  /** Names assigned (`x = …;`, `PROVIDE(x = …)`) with the offset of the assignment. */
  assignments: ScriptAssignment[];
  /** Input-section patterns with a `*` file part, in script order. */
  patterns: ScriptPattern[];
  /** Script offsets between _stext/_etext and _sinittext/_einittext. */
  textRanges: ScriptRange[];
  percpuRange?: ScriptRange;
  /** Output section names in script order. */
  outputs: string[];
}

function stripComments(text: string): string {
  // Same length, so offsets stay meaningful.
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => ' '.repeat(c.length));
}

/** ld's wildcards (`*`, `?`, `[...]`) as an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The index just past the parenthesis that closes the one at `open`. */
function closing(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i + 1;
  }
  return text.length;
}

/** Offsets of the `{ … }` bodies of `/DISCARD/` output sections. */
function discardBlocks(text: string): ScriptRange[] {
  const out: ScriptRange[] = [];
  const re = /\/DISCARD\/\s*:[^{]*\{/g;
  for (let m: RegExpExecArray | null; (m = re.exec(text)); ) {
    let depth = 1;
    let i = re.lastIndex;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}') depth--;
    }
    out.push({ start: m.index, end: i });
  }
  return out;
}

/**
 * The output-section statements of the SECTIONS block: name and the offsets
 * of its `{ … }` body. A statement's header is what lies between the end of
 * the previous statement (`;` or `}` and its `> region`, `AT> lma`, `:phdr`,
 * `= fill` trailers) and the `{`: `name [address] [(type)] : [AT(…)] …`.
 */
export function outputSections(text: string): { name: string; start: number; end: number }[] {
  const out: { name: string; start: number; end: number }[] = [];
  const m = /\bSECTIONS\s*\{/.exec(text);
  if (!m) return out;
  let depth = 1;
  let stmt = m.index + m[0].length;
  let open = -1;
  let name = '';
  for (let i = stmt; i < text.length && depth > 0; i++) {
    const c = text[i];
    if (c === '{') {
      if (depth === 1) {
        let header = text.slice(stmt, i);
        for (let prev = ''; prev !== header; ) {
          prev = header;
          header = header.replace(/^\s*(?:(?:AT\s*)?>\s*\S+|:\S+|=\s*\S+)/, '');
          // a statement that needs no `;`, such as ASSERT(…) after a `}`
          const call = /^\s*ASSERT\s*\(/.exec(header);
          if (call) header = header.slice(closing(header, call[0].length - 1));
        }
        name = /^[^\s:(]+/.exec(header.trim())?.[0] ?? '';
        open = i;
      }
      depth++;
    } else if (c === '}') {
      depth--;
      if (depth === 1) {
        out.push({ name, start: open, end: i });
        stmt = i + 1;
      }
    } else if (c === ';' && depth === 1) stmt = i + 1;
  }
  return out;
}

const KEYWORDS = new Set(['SORT', 'SORT_BY_NAME', 'SORT_BY_ALIGNMENT', 'SORT_BY_INIT_PRIORITY', 'SORT_NONE', 'REVERSE']);

export function parseLinkerScript(source: string): LinkerScript {
  const text = stripComments(source);
  const discards = discardBlocks(text);
  const inDiscard = (pos: number): boolean => discards.some((d) => pos >= d.start && pos < d.end);

  const sections = outputSections(text);
  const outAt = (pos: number): string => sections.find((s) => pos > s.start && pos < s.end)?.name ?? '';
  const patterns: ScriptPattern[] = [];
  const spec = /\*\(/g;
  for (let m: RegExpExecArray | null; (m = spec.exec(text)); ) {
    const open = m.index + 1;
    const end = closing(text, open);
    const body = text
      .slice(open + 1, end - 1)
      .replace(/EXCLUDE_FILE\s*\([^)]*\)/g, ' ')
      .replace(/[A-Z_]+\s*\(/g, (k) => (KEYWORDS.has(k.replace(/[\s(]/g, '')) ? ' ' : k))
      .replace(/[()]/g, ' ');
    for (const word of body.split(/\s+/)) {
      if (word) patterns.push({ glob: globToRegExp(word), pos: m.index, discard: inDiscard(m.index), out: outAt(m.index) });
    }
    spec.lastIndex = end;
  }

  const assignments: ScriptAssignment[] = [];
  // Not `:phdr = fill` after an output section, not `==`.
  const assign = /(?<![\w.$:])([A-Za-z_][\w.$]*)\s*=(?!=)\s*(ABSOLUTE\s*\()?/g;
  for (let m: RegExpExecArray | null; (m = assign.exec(text)); ) {
    const pos = m.index;
    const owner = sections.find((s) => pos > s.start && pos < s.end);
    const after = owner ? [] : sections.filter((s) => s.end < pos).map((s) => s.name).reverse();
    assignments.push({ name: m[1]!, pos, out: owner?.name ?? '', after, absolute: !!m[2] });
  }

  const at = (name: string): number | undefined => assignments.find((a) => a.name === name)?.pos;
  const range = (a: string, b: string): ScriptRange | undefined => {
    const s = at(a);
    const e = at(b);
    return s !== undefined && e !== undefined && s <= e ? { start: s, end: e } : undefined;
  };
  const textRanges = [range('_stext', '_etext'), range('_sinittext', '_einittext')].filter((r): r is ScriptRange => !!r);
  return { assignments, patterns, textRanges, percpuRange: range('__per_cpu_start', '__per_cpu_end'), outputs: sections.map((s) => s.name) };
}

/** The first pattern that takes an input section of this name, as ld assigns it. */
export function placement(script: LinkerScript, section: string): ScriptPattern | undefined {
  return script.patterns.find((p) => p.glob.test(section));
}

export const within = (r: ScriptRange | undefined, pos: number): boolean => !!r && pos >= r.start && pos <= r.end;
