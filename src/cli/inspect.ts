// `kbx builds`, `kbx steps FILE` and `kbx explain FILE`: reading the build
// records (src/builds) for a developer at a terminal.
import { relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { findBuild, listBuilds, loadBuild } from '../builds/archive.js';
import type { BuildMeta, BuildRecord, InputChange, LineRecord } from '../builds/record.js';
import { explain, formatWordDiff, pickPath, rootCauses, stepsFor, type Reason } from '../builds/query.js';
import { KbxError } from '../util/errors.js';
import { parseMakeArgs } from './make.js';
import { control } from '../daemon/client.js';
import { socketPath } from '../daemon/paths.js';

/** The daemon writes a build's record just after the build ends: wait until it has. */
export async function recordsWritten(kbxDir: string): Promise<void> {
  await control(socketPath(kbxDir), { cmd: 'sync' }).catch(() => {});
}

const sec = (us: number) => `${(us / 1e6).toFixed(us < 1e6 ? 3 : 1)} s`;
const short = (digest: string) => (/^[0-9a-f]{16,}$/.test(digest) ? digest.slice(0, 12) : digest);
const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

function describeBuild(m: BuildMeta): string {
  return `build ${m.id} (${when(m.startMs)}, make ${m.args.join(' ')} in ${m.dir})`;
}

/** The names FILE may have in a build: as given from here, or relative to the build's directory or O= tree. */
function candidates(file: string, rec: BuildRecord): string[] {
  const inv = parseMakeArgs(rec.args, rec.dir, {});
  return [...new Set([resolve(file), ...inv.roots.map((r) => resolve(r, file))])];
}

/** The newest build (from `which` on) in which some line touched FILE, with the path it had there. */
function buildTouching(dir: string, file: string, which?: string): { rec: BuildRecord; path: string; skipped: number } {
  const first = findBuild(dir, which);
  const all = listBuilds(dir);
  const start = all.findIndex((m) => m.id === first.id);
  for (let i = start; i < all.length; i++) {
    const rec = loadBuild(dir, all[i]!.id);
    const path = pickPath(rec, candidates(file, rec));
    if (path) return { rec, path, skipped: i - start };
    if (which !== undefined) break; // a build named explicitly: do not look further back
  }
  throw new KbxError(
    'KBX_FILE_NOT_IN_BUILD',
    `no recorded line read or wrote ${file} (${which ? describeBuild(first) : `searched ${all.length - start} builds`})`,
    'give the path as make sees it, relative to the current directory or to the build tree (for example fs/ioctl.o)',
  );
}

/** What steps and explain start from: the build that touched FILE, and a first output line naming both. */
async function openTouching(file: string, which?: string): Promise<{ dir: string; rec: BuildRecord; path: string; out: string[] }> {
  const dir = loadConfig().dir;
  await recordsWritten(dir);
  const { rec, path, skipped } = buildTouching(dir, file, which);
  const out = [`${path}: ${describeBuild(rec)}${skipped ? ` — the ${skipped} newer build(s) did not touch it` : ''}`];
  return { dir, rec, path, out };
}

function kindWord(l: LineRecord): string {
  return l.kind === 'pass' ? 'run' : l.kind;
}

function formatChange(c: InputChange, base: string): string {
  const p = relative(base, c.path) || c.path;
  const name = c.program ? `program ${p}` : p;
  switch (c.change) {
    case 'content':
      return `${name}: content changed (was ${short(c.was)}, now ${short(c.now)})`;
    case 'appeared':
      return `${name}: appeared (it did not exist before; now ${c.now})`;
    case 'disappeared':
      return `${name}: disappeared (was ${c.was === 'file' || c.was === 'dir' ? `a ${c.was}` : short(c.was)})`;
    default:
      return `${name}: was ${c.was}, now ${c.now}`;
  }
}

function formatReason(r: Reason, base: string, indent: string, out: string[]): void {
  switch (r.kind) {
    case 'hit':
      out.push(`${indent}restored from the cache: stored by build ${r.from || '(unknown)'}; saved ${sec(r.savedUs)}`);
      break;
    case 'unavailable':
      out.push(`${indent}a stored run matched, but its outputs were no longer in the store (evicted or damaged)`);
      break;
    case 'first-time':
      out.push(`${indent}first run: no earlier run of this command, and no recorded line that wrote this file before`);
      break;
    case 'not-cached':
      out.push(`${indent}not cached: ${r.lineKind === 'pass' ? `kbx does not cache this line (${r.reason ?? 'pass-through'})` : `${r.lineKind} line${r.reason ? ` (${r.reason})` : ''}`}`);
      break;
    case 'changed-command': {
      out.push(`${indent}the command changed since build ${r.previous.build}:`);
      const words = r.words.filter((w) => w.op !== '=');
      if (words.length) out.push(`${indent}  command: ${formatWordDiff(r.words)}`);
      if (r.cwd) out.push(`${indent}  directory: was ${r.cwd[0]}, now ${r.cwd[1]}`);
      for (const v of r.env.removed) out.push(`${indent}  environment: -${v}`);
      for (const v of r.env.added) out.push(`${indent}  environment: +${v}`);
      // Only the changed words of a changed value: one PATH entry, not 10 KB of it.
      for (const c of r.env.changed) out.push(`${indent}  environment: ${c.name} changed: ${formatWordDiff(c.words)}`);
      if (!words.length && !r.cwd && !r.env.added.length && !r.env.removed.length && !r.env.changed.length)
        out.push(`${indent}  (same command text, directory and environment: the terminal flags differ)`);
      break;
    }
    case 'inputs':
      out.push(`${indent}inputs changed since the closest stored run${r.closestFrom ? ` (build ${r.closestFrom})` : ''}:`);
      for (const c of r.changes) {
        out.push(`${indent}  ${formatChange(c, base)}`);
        const cause = r.causes.find((x) => x.path === c.path);
        if (cause) {
          out.push(`${indent}    rewritten by this build: ${firstLine(cause.line.command)}`);
          formatReason(cause.reason, base, `${indent}      `, out);
        }
      }
      // After a revert the closest run is the edited one; say which run the tree is back to.
      if (r.matches) {
        out.push(`${indent}the tree matches the stored run${r.matches.from ? ` of build ${r.matches.from}` : ''} except:`);
        for (const c of r.matches.changes) out.push(`${indent}  ${formatChange(c, base)}`);
        if (!r.matches.changes.length) out.push(`${indent}  (nothing: its outputs could not be restored)`);
      }
      break;
  }
}

function firstLine(cmd: string, max = 160): string {
  const one = cmd.replace(/\s*\n\s*/g, ' ');
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

export function registerInspectCommands(program: Command): void {
  program
    .command('builds')
    .description('list the recorded builds, newest first (their numbers name them in steps, explain, trace and report)')
    .action(async () => {
      const dir = loadConfig().dir;
      await recordsWritten(dir);
      const all = listBuilds(dir);
      if (!all.length) {
        process.stdout.write('kbx: no builds recorded yet\n');
        return;
      }
      all.forEach((m, i) => {
        const c = m.counts;
        const lines = Object.values(c).reduce((a, b) => a + b, 0);
        process.stdout.write(
          `${String(i + 1).padStart(3)}  ${m.id}  ${when(m.startMs)}  ${((m.endMs - m.startMs) / 1000).toFixed(1)} s  exit ${m.exit}  ` +
            `${lines} lines: ${c.hit} hits, ${c.miss} misses  make ${m.args.join(' ')}  (${m.dir})\n`,
        );
      });
    });

  program
    .command('steps')
    .description('every recipe line that read or wrote FILE in the last build, in order, with the full command')
    .argument('<file>', 'a file of the build, e.g. fs/ioctl.o')
    .option('-b, --build <build>', "which build ('kbx builds' lists them; default the newest that touched FILE)")
    .action(async (file: string, opts: { build?: string }) => {
      const { rec, path, out } = await openTouching(file, opts.build);
      for (const s of stepsFor(rec, [path])) {
        const l = s.line;
        const role = s.wrote && s.read ? 'read and wrote it' : s.wrote ? 'wrote it' : 'read it';
        out.push(
          `\n#${s.index + 1}  +${sec(l.startUs - rec.startMs * 1000)}  ${kindWord(l)}  ${sec(l.endUs - l.startUs)}  exit ${l.exit}  ${role}` +
            (l.reason ? `  (${l.reason})` : ''),
        );
        out.push(`  cd ${l.cwd}`);
        out.push(`  ${l.command.replace(/\n/g, '\n  ')}`);
      }
      process.stdout.write(out.join('\n') + '\n');
    });

  program
    .command('explain')
    .description('why the lines that wrote FILE ran in the last build: the inputs, command or environment that changed')
    .argument('<file>', 'a file of the build, e.g. fs/ioctl.o')
    .option('-b, --build <build>', "which build ('kbx builds' lists them; default the newest that touched FILE)")
    .action(async (file: string, opts: { build?: string }) => {
      const { dir, rec, path, out } = await openTouching(file, opts.build);
      const metas = listBuilds(dir);
      const older = function* () {
        for (const m of metas.slice(metas.findIndex((x) => x.id === rec.id) + 1)) yield loadBuild(dir, m.id);
      };
      const base = parseMakeArgs(rec.args, rec.dir, {}).roots.at(-1)!;
      const exps = explain(rec, path, older);
      if (!exps.length) out.push('no line of this build wrote it (it was only read)');
      for (const e of exps) {
        out.push(`\n${kindWord(e.line)}: ${firstLine(e.line.command)}`);
        formatReason(e.reason, base, '  ', out);
        const roots = rootCauses(e.reason);
        if (roots.length && e.reason.kind === 'inputs' && e.reason.causes.length)
          out.push(`  root cause: ${roots.map((c) => relative(base, c.path) || c.path).join(', ')}`);
      }
      process.stdout.write(out.join('\n') + '\n');
    });
}
