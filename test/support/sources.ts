// Real projects' sources for the tests, from Debian's source pool: a tarball
// pinned by URL and SHA-256, fetched once into a cache directory shared by
// every run on the machine, and unpacked into a test's temporary directory.
// A fetch that fails or bytes that do not match the pin fail the test, naming
// the URL: a missing project must never turn into a skipped test.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface PinnedSource {
  url: string;
  sha256: string;
  /** The directory the tarball unpacks into. */
  top: string;
}

// From http://deb.debian.org/debian/dists/bookworm/main/source/Sources.xz.
export const LUA_5_4_4: PinnedSource = {
  url: 'http://deb.debian.org/debian/pool/main/l/lua5.4/lua5.4_5.4.4.orig.tar.gz',
  sha256: '164c7849653b80ae67bec4b7473b884bf5cc8d2dca05653475ec2ed27b9ebf61',
  top: 'lua-5.4.4',
};
export const BUSYBOX_1_35_0: PinnedSource = {
  url: 'http://deb.debian.org/debian/pool/main/b/busybox/busybox_1.35.0.orig.tar.bz2',
  sha256: 'faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694',
  top: 'busybox-1.35.0',
};

export const SOURCES_CACHE = process.env.KBX_TEST_SOURCES ?? '/var/tmp/kbx-test-sources';
const ATTEMPTS = 3;
const ATTEMPT_TIMEOUT_MS = 120_000;

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function download(url: string): Promise<Buffer> {
  const errors: string[] = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    } catch (err) {
      // undici says only "fetch failed"; the reason (refused, DNS, timeout) is its cause.
      const cause = (err as Error).cause as Error | undefined;
      errors.push(cause?.message ? `${(err as Error).message} (${cause.message})` : (err as Error).message);
    }
  }
  throw new Error(`fetching ${url} failed ${ATTEMPTS} times: ${errors.join('; ')}`);
}

/** The cached tarball of `src`, fetched first when it is missing or does not match its pin. */
export async function pinnedTarball(src: PinnedSource): Promise<string> {
  const path = join(SOURCES_CACHE, basename(new URL(src.url).pathname));
  if (existsSync(path) && sha256(readFileSync(path)) === src.sha256) return path;
  const data = await download(src.url);
  const got = sha256(data);
  if (got !== src.sha256) throw new Error(`${src.url}: SHA-256 ${got}, pinned ${src.sha256}`);
  mkdirSync(SOURCES_CACHE, { recursive: true });
  // Written beside its place and renamed in: a run at the same time never reads half of it.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
  return path;
}

/** Unpacks the pinned tarball of `src` into `dir`; returns the project's top directory. */
export async function unpack(src: PinnedSource, dir: string): Promise<string> {
  const tarball = await pinnedTarball(src);
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['xf', tarball, '-C', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  return join(dir, src.top);
}
