// `kbx trace [BUILD]` (Chrome trace event JSON, for Perfetto) and `kbx report
// [BUILD]` (one self-contained HTML page): a recorded build (src/builds) shown
// through the analysis in src/report.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadBuild, newestBuildFor } from '../builds/archive.js';
import { loadConfig } from '../config/config.js';
import { analyzeBuild } from '../report/analysis.js';
import { chromeTrace } from '../report/chrome-trace.js';
import { pageData, reportHtml } from '../report/html.js';
import { measureOutputs } from '../report/sizes.js';
import { KbxError } from '../util/errors.js';
import { recordsWritten } from './inspect.js';

/** Writes `text` to `file` ('-': standard output) and says where it went. */
function emit(file: string, text: string): void {
  if (file === '-') {
    process.stdout.write(text);
    return;
  }
  const path = resolve(file);
  try {
    writeFileSync(path, text);
  } catch (err) {
    throw new KbxError('KBX_WRITE_FAILED', `cannot write ${path}: ${(err as Error).message}`, 'name a writable file with -o FILE (or -o - for standard output)');
  }
  process.stdout.write(`${path}\n`);
}

const BUILD_ARG = "which build: N the N-th newest, or an id ('kbx builds' lists them); default: the newest build of the tree you are in";

/** The build named, or the newest of the tree the command runs in (the newest of all, said, when that tree has none). */
function chosenBuild(dir: string, which: string | undefined): string {
  if (which !== undefined) return which;
  const { meta, here } = newestBuildFor(dir, process.cwd());
  if (!here) process.stderr.write(`kbx: no build was recorded in ${process.cwd()}; using the newest, ${meta.id} (in ${meta.dir})\n`);
  return meta.id;
}

export function registerReportCommands(program: Command): void {
  program
    .command('trace')
    .description('write a recorded build as Chrome trace event JSON (open it in Perfetto or chrome://tracing)')
    .argument('[build]', BUILD_ARG)
    .option('-o, --output <file>', "where to write it ('-' for standard output; default kbx-trace-<id>.json)")
    .action(async (which: string | undefined, opts: { output?: string }) => {
      const dir = loadConfig().dir;
      await recordsWritten(dir);
      const rec = loadBuild(dir, chosenBuild(dir, which));
      emit(opts.output ?? `kbx-trace-${rec.id}.json`, JSON.stringify(chromeTrace(rec, analyzeBuild(rec))));
    });

  program
    .command('report')
    .description('write one self-contained HTML page about a recorded build: timeline, critical path, hit rates, stages, sizes')
    .argument('[build]', BUILD_ARG)
    .option('-o, --output <file>', "where to write it ('-' for standard output; default kbx-report-<id>.html)")
    .option('--no-sizes', 'do not read the files the build wrote (their sizes, DWARF and BTF bytes)')
    .action(async (which: string | undefined, opts: { output?: string; sizes: boolean }) => {
      const dir = loadConfig().dir;
      await recordsWritten(dir);
      const rec = loadBuild(dir, chosenBuild(dir, which));
      const data = pageData(rec, analyzeBuild(rec), opts.sizes ? measureOutputs(rec) : undefined);
      emit(opts.output ?? `kbx-report-${rec.id}.html`, reportHtml(data));
    });
}
