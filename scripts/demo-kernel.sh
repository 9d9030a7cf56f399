#!/usr/bin/env bash
# kbx's main job on a real build: Linux 6.1 tinyconfig built through kbx
# with the embedded local store, then `make clean` and built again from the
# cache. Installs what it needs on Debian (as root), builds kbx, and prints
# kbx's summary line for both builds.
#
#   scripts/demo-kernel.sh [extra make arguments, e.g. -j8]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${KBX_DEMO_DIR:-/var/tmp/kbx-demo}
jobs=(-j"$(nproc)")
[ $# -gt 0 ] && jobs=("$@")

need=(make gcc libc6-dev flex bison bc libelf-dev libssl-dev xz-utils linux-source-6.1)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

(cd "$here" && npm ci --no-audit --no-fund --silent && npm run --silent build)
kbx="$here/bin/kbx"

if [ ! -f "$work/linux-source-6.1/Makefile" ]; then
  mkdir -p "$work"
  echo "extracting /usr/src/linux-source-6.1.tar.xz into $work"
  tar xf /usr/src/linux-source-6.1.tar.xz -C "$work"
fi
cd "$work/linux-source-6.1"
out="$work/out"
# A cold build means an empty output directory: one left by an earlier run
# would make the first build incremental, and it would fill little of the cache.
rm -rf "$out"
make -s O="$out" tinyconfig

echo "== cold build through kbx (fills the cache)"
time "$kbx" make O="$out" "${jobs[@]}" >/dev/null
make -s O="$out" clean
echo "== after make clean: the same build from the cache"
time "$kbx" make O="$out" "${jobs[@]}" >/dev/null
"$kbx" stats
