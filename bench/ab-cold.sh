#!/bin/bash
# Cold kbx builds of Linux 6.1 tinyconfig (-j2) by two kbx checkouts, one after
# the other, for ROUNDS rounds: the wall time of each `kbx make` and the CPU
# time its daemon used. Tells what a change costs a cold build, where one
# bench run's noise (a few percent) hides it.
#
#   bench/ab-cold.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]   (each built: npm run build)
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
src=${KBX_KERNEL_SRC:-/var/tmp/kbx-src/linux-source-6.1}
work=${KBX_AB_WORK:-/var/tmp/kbx-ab}
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026' KBUILD_BUILD_USER=kbx KBUILD_BUILD_HOST=kbx KBUILD_BUILD_VERSION=1
for round in $(seq "$rounds"); do
  for which in old new; do
    kbx=$([ $which = old ] && echo "$old" || echo "$new")/dist/src/cli/main.js
    w=$work/$which
    rm -rf "$w" && mkdir -p "$w"
    export KBX_DIR=$w/store
    make -s -C "$src" O="$w/out" tinyconfig >/dev/null
    start=$(date +%s.%N)
    node "$kbx" make -C "$src" O="$w/out" -j2 >"$w/log" 2>&1
    end=$(date +%s.%N)
    pid=$(node "$kbx" daemon status | sed -n 's/.*pid \([0-9]*\).*/\1/p')
    cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
    node "$kbx" daemon stop >/dev/null
    printf '%s %s wall %.1f s, daemon CPU %s s, load %s: %s\n' "$round" "$which" "$(echo "$end - $start" | bc)" "$cpu" \
      "$(cut -d' ' -f1 /proc/loadavg)" "$(grep '^kbx: ' "$w/log")"
  done
done
