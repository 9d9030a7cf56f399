// The builds folder: $KBX_DIR/builds/<id>.json.gz holds a BuildRecord,
// <id>.meta.json its header (small, for listing and progress estimates). The
// newest `builds_kept` builds are kept.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { KbxError } from '../util/errors.js';
import { writeAtomic } from '../util/files.js';
import { BUILD_FORMAT, type BuildMeta, type BuildRecord } from './record.js';

export function buildsDir(kbxDir: string): string {
  return join(kbxDir, 'builds');
}

export function saveBuild(kbxDir: string, rec: BuildRecord, keep: number): void {
  const dir = buildsDir(kbxDir);
  const { lines: _l, paths: _p, envs: _e, ...meta } = rec;
  writeAtomic(join(dir, `${rec.id}.json.gz`), gzipSync(JSON.stringify(rec), { level: 1 }));
  writeAtomic(join(dir, `${rec.id}.meta.json`), JSON.stringify(meta));
  for (const old of listBuilds(kbxDir).slice(Math.max(1, keep))) {
    rmSync(join(dir, `${old.id}.json.gz`), { force: true });
    rmSync(join(dir, `${old.id}.meta.json`), { force: true });
  }
}

/** Recorded builds, newest first. Unreadable or foreign files are skipped. */
export function listBuilds(kbxDir: string): BuildMeta[] {
  const dir = buildsDir(kbxDir);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.meta.json'));
  } catch {
    return [];
  }
  const metas: BuildMeta[] = [];
  for (const n of names) {
    try {
      const m = JSON.parse(readFileSync(join(dir, n), 'utf8')) as BuildMeta;
      if (m.format === BUILD_FORMAT) metas.push(m);
    } catch {
      /* being written, or damaged: not listed */
    }
  }
  return metas.sort((a, b) => b.startMs - a.startMs || (a.id < b.id ? 1 : -1));
}

/**
 * Finds a build: undefined or '1' is the newest, 'N' the N-th newest, anything
 * else an id or a unique prefix of one.
 */
export function findBuild(kbxDir: string, which?: string): BuildMeta {
  const all = listBuilds(kbxDir);
  if (all.length === 0)
    throw new KbxError('KBX_NO_BUILDS', `no builds are recorded in ${buildsDir(kbxDir)}`, "run 'kbx make' first");
  const w = which ?? '1';
  if (/^\d+$/.test(w) && Number(w) >= 1 && Number(w) <= all.length && w.length < 4) return all[Number(w) - 1]!;
  const matches = all.filter((m) => m.id.startsWith(w));
  if (matches.length === 1) return matches[0]!;
  throw new KbxError(
    'KBX_BAD_BUILD',
    matches.length ? `'${w}' names ${matches.length} builds` : `no recorded build is '${w}'`,
    "'kbx builds' lists them: give a number from its first column or an id",
  );
}

/** Whether `cwd` is make's directory of the build, its O= directory, or inside one of them. */
function buildHolds(meta: BuildMeta, cwd: string): boolean {
  const dirs = [meta.dir, ...meta.args.filter((a) => a.startsWith('O=')).map((a) => resolve(meta.dir, a.slice(2)))];
  return dirs.some((d) => cwd === d || cwd.startsWith(d.endsWith('/') ? d : `${d}/`));
}

/**
 * The build a command without a BUILD argument means: the newest build of the
 * tree `cwd` is in (make's directory or its O= directory), or, when none was
 * recorded there, the newest of all (`here` false: say so).
 */
export function newestBuildFor(kbxDir: string, cwd: string): { meta: BuildMeta; here: boolean } {
  const all = listBuilds(kbxDir);
  const mine = all.find((m) => buildHolds(m, cwd));
  return mine ? { meta: mine, here: true } : { meta: findBuild(kbxDir), here: false };
}

export function loadBuild(kbxDir: string, which?: string): BuildRecord {
  const meta = findBuild(kbxDir, which);
  const file = join(buildsDir(kbxDir), `${meta.id}.json.gz`);
  try {
    return JSON.parse(gunzipSync(readFileSync(file)).toString()) as BuildRecord;
  } catch (err) {
    throw new KbxError('KBX_BAD_BUILD', `cannot read ${file}: ${(err as Error).message}`, 'the record is damaged; run the build again');
  }
}
