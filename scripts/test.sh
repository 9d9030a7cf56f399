#!/usr/bin/env bash
# The test command (README.md, "The two commands"): installs the Debian
# packages the tests need when run as root, then `npm ci` and `npm test`, and
# exits with npm test's status. Not root and a package missing: prints the
# apt-get install to run and exits 2 (with KBX_TEST_ALLOW_MISSING=1 it runs
# anyway, and the tests that need what is missing are skipped). Reads no
# standard input.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# make/gcc/binutils: the fixtures; tar, gzip and bzip2: unpacking lua and
# busybox from Debian's source pool (test/support/sources.ts); ccache, distcc
# and sccache: the compiler-wrapper tests;
# gcc-multilib and the powerpc/mips binutils: 32-bit and big-endian ELF and
# kallsyms cases; flex to dwarves: building Linux 6.1 and 6.12 (their sources
# come from linux-source-6.1 and -6.12; pahole from dwarves gives the tree
# BTF); clang, lld and llvm: Linux 6.1 with LLVM=1 (Debian 12's are 14, which
# both trees accept); qemu and busybox-static: booting it; chromium: the HTML
# report test; nginx (its WebDAV module): the shared-store tests; redis-server
# and redis-tools (redis-cli): the Redis backend tests, one server and a
# cluster; openssl: their self-signed certificate for rediss://; distcc and
# icecc: the build farm tests (distccd, icecc-scheduler and iceccd on loopback).
packages=(
  make gcc libc6-dev binutils coreutils grep sed tar gzip bzip2 ccache distcc icecc sccache iproute2 util-linux
  flex bison bc libelf-dev libssl-dev cpio xz-utils linux-source-6.1 linux-source-6.12 dwarves
  clang lld llvm
  gcc-multilib binutils-powerpc-linux-gnu binutils-mips-linux-gnu
  qemu-system-x86 busybox-static chromium nginx redis-server redis-tools openssl
)

say() { printf 'scripts/test.sh: %s\n' "$*" >&2; }

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'
}

missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = 'install ok installed' ] || missing+=("$p")
  done
else
  say "not a Debian system: the tests need the equivalents of: ${packages[*]}"
fi
# Node.js 20 or newer with npm: Debian's own nodejs where it is new enough
# (Debian 13); on Debian 12 it is 18, and NodeSource's nodejs is the usual way.
if ! node_ok && command -v apt-cache >/dev/null; then
  missing+=(nodejs)
  command -v npm >/dev/null || ! apt-cache show npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  elif [ "${KBX_TEST_ALLOW_MISSING:-}" = 1 ]; then
    say "missing (the tests that need them are skipped): ${missing[*]}"
  else
    say "missing Debian packages; run as root:"
    say "  apt-get install ${missing[*]}"
    say "or set KBX_TEST_ALLOW_MISSING=1 to skip the tests that need them"
    exit 2
  fi
fi
if ! node_ok; then
  say "kbx needs Node.js 20 or newer and npm (found: $(node --version 2>/dev/null || echo none));"
  say "on Debian 12 install nodejs from NodeSource (https://github.com/nodesource/distributions)"
  exit 2
fi

npm ci --no-audit --no-fund </dev/null
npm test </dev/null
