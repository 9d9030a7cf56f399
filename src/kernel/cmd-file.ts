// kbuild saves each target's command in `.<target>.cmd`, first line
// `cmd_<target> := <command>` (`savedcmd_` since 6.2), written by
// `scripts/basic/fixdep <depfile> <target> '<command>'` or by
// `printf '%s\n' 'cmd_<target> := <command>'` in the same recipe line as the
// command. With CC="distcc gcc" that text holds the wrapper, and make reruns
// every target whose saved command differs from the one it would run now.
// So a `.cmd` file is stored as the line without a wrapper writes it, and
// restored with the command the current line saves: the same text once the
// wrappers are stripped (fingerprint/wrappers.ts), or the entry is not used.
import { basename } from 'node:path';

const FIRST_LINE = /^((?:saved)?cmd_(\S+) := )([^\n]*)\n/;

/** The value of a shell word made only of '…' and \x pieces (kbuild's escsq output); undefined for any other. */
function unquote(raw: string): string | undefined {
  if (!/^(?:'[^']*'|\\.)+$/s.test(raw)) return undefined;
  return raw.replace(/'([^']*)'|\\(.)/gs, (_m, q: string | undefined, e: string | undefined) => q ?? e ?? '');
}

function quote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

interface SavedCommand {
  /** Index of the word holding the saved command. */
  index: number;
  target: string;
  /** What the .cmd file's first line holds after ` := `. */
  value: string;
  /** The word's value before the command (`cmd_x.o := ` for printf, '' for fixdep). */
  prefix: string;
}

/** The command a simple command (its words, raw) saves in a .cmd file, if it has kbuild's shape. */
function savedCommand(words: readonly string[]): SavedCommand | undefined {
  const fixdep = words.findIndex((w) => basename(w) === 'fixdep');
  if (fixdep >= 0 && words.length > fixdep + 3) {
    const target = unquote(words[fixdep + 2]!) ?? words[fixdep + 2]!;
    const value = unquote(words[fixdep + 3]!);
    if (value !== undefined && !/[\s'"\\$]/.test(target)) return { index: fixdep + 3, target, value, prefix: '' };
  }
  const printf = words.indexOf('printf');
  if (printf >= 0 && words[printf + 1] === "'%s\\n'" && words.length > printf + 2) {
    const word = unquote(words[printf + 2]!);
    const m = word === undefined ? null : /^((?:saved)?cmd_(\S+) := )(.*)$/s.exec(word);
    if (m) return { index: printf + 2, target: m[2]!, value: m[3]!, prefix: m[1]! };
  }
  return undefined;
}

/**
 * For the key: the simple command's saved-command word with the command
 * inside it as `strip` leaves it, or undefined when the words do not save one.
 */
export function canonicalSavedCommand(words: readonly string[], strip: (text: string) => string): { index: number; raw: string } | undefined {
  const saved = savedCommand(words);
  if (!saved) return undefined;
  return { index: saved.index, raw: quote(saved.prefix + strip(saved.value)) };
}

/** Target → saved command, for every simple command of a line that saves one. */
export function savedCommands(commands: readonly (readonly string[])[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const words of commands) {
    const saved = savedCommand(words);
    if (saved) out.set(saved.target, saved.value);
  }
  return out;
}

function isCmdFile(path: string): boolean {
  return /^\..+\.cmd$/.test(basename(path));
}

/**
 * The bytes to store for an output: a .cmd file whose first line is the
 * command the line saves (savedCommands) with that command stripped;
 * undefined when unchanged. Only then: the key stripped that same text.
 */
export function storedCmdFile(path: string, data: Buffer, saved: ReadonlyMap<string, string>, strip: (text: string) => string): Buffer | undefined {
  if (!isCmdFile(path) || saved.size === 0) return undefined;
  const m = FIRST_LINE.exec(data.subarray(0, 256 * 1024).toString('latin1'));
  if (!m) return undefined;
  const value = Buffer.from(m[3]!, 'latin1').toString();
  if (saved.get(m[2]!) !== value) return undefined;
  const canonical = strip(value);
  if (canonical === value) return undefined;
  return Buffer.concat([Buffer.from(m[1]!, 'latin1'), Buffer.from(canonical + '\n'), data.subarray(m[0]!.length)]);
}

/**
 * The bytes to restore for a stored output, given the commands the current
 * line saves (savedCommands): undefined to restore it as stored, null when the
 * stored .cmd file does not match what the line would save (not restored).
 */
export function restoredCmdFile(path: string, data: Buffer, saved: ReadonlyMap<string, string>, strip: (text: string) => string): Buffer | undefined | null {
  if (!isCmdFile(path) || saved.size === 0) return undefined;
  const m = FIRST_LINE.exec(data.subarray(0, 256 * 1024).toString('latin1'));
  if (!m) return undefined;
  const now = saved.get(m[2]!);
  if (now === undefined) return undefined;
  const value = Buffer.from(m[3]!, 'latin1').toString();
  if (value === now) return undefined;
  if (strip(value) !== strip(now)) return null;
  return Buffer.concat([Buffer.from(m[1]!, 'latin1'), Buffer.from(now + '\n'), data.subarray(m[0]!.length)]);
}
