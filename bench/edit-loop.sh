#!/bin/bash
# The everyday loop, plain make against kbx make in ONE built kernel tree,
# runs alternating (plain first in odd rounds, kbx first in even ones) so both
# see the same machine load; medians per scenario and mode. Issue 12's goals:
#   noop    make on the built tree                           kbx ≤ 1.0× plain
#   touch   touch fs/ioctl.c, then make                      kbx ≤ 1.0× plain
#   header  touch include/linux/fs.h, then make              kbx ≤ 1.3× kbx's no-op
#   clean   make clean (untimed), then make                  kbx ≤ 1.3× kbx's no-op
# kbx runs with link_vmlinux off: kbuild records the link's command in
# .vmlinux.cmd, and a routed link (another command) would make every plain run
# after a kbx run relink, and the other way round.
#
#   bench/edit-loop.sh SRC OUT [ROUNDS] [SCENARIOS] [MODES]
#     SRC        a Linux 6.1 source tree of your own (the touches change its mtimes)
#     OUT        its O= directory, configured and built (by kbx make, so KBX_DIR holds its lines)
#     ROUNDS     default 5
#     SCENARIOS  default "noop touch header clean"
#     MODES      default "plain kbx"; a scenario SCENARIO:kbx runs kbx alone
#                (plain's header and clean rebuilds are whole compiles: minutes).
#                Any mode but plain is a kbx: KBX_MAIN_<mode> and KBX_DIR_<mode>
#                name its cli/main.js and store (two builds of kbx, one store:
#                each kbx make would replace the other's daemon).
# Environment: KBX_DIR (the store), KBX (default: this checkout's dist/src/cli/main.js).
# Output: one line per run (scenario mode round seconds load), then the medians.
# Run kernel builds one at a time machine-wide: flock /var/tmp/kbx-kernel.lock bench/edit-loop.sh …
set -euo pipefail
SRC=${1:?source tree}
OUT=${2:?O= directory}
ROUNDS=${3:-5}
SCENARIOS=${4:-noop touch header clean}
MODES=${5:-plain kbx}
KBX=${KBX:-$(cd "$(dirname "$0")/.." && pwd)/dist/src/cli/main.js}
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026' KBUILD_BUILD_USER=kbx KBUILD_BUILD_HOST=kbx KBUILD_BUILD_VERSION=1
export KBX_LINK_VMLINUX=false KBX_IDLE_TIMEOUT=${KBX_IDLE_TIMEOUT:-7200} KBX_PROGRESS=off
LOG=${LOG:-$OUT.edit-loop.log}
RESULTS=$(mktemp)
: > "$LOG"

# utime+stime (clock ticks) of the waited-for children of this shell, and of the daemon serving KBX_DIR.
children_ticks() { awk '{ print $16 + $17 }' /proc/$$/stat; }
daemon_ticks() {
  local pid
  pid=$(cat "$KBX_DIR/run/daemon.pid" 2>/dev/null || node "$KBX" daemon status 2>/dev/null | sed -n 's/.*pid \([0-9]*\).*/\1/p')
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && awk '{ print $14 + $15 }' "/proc/$pid/stat" || echo 0
}

run() { # scenario mode round
  local s=$1 m=$2 r=$3 t0 t1 load
  case $s in
    touch) touch "$SRC/fs/ioctl.c" ;;
    header) touch "$SRC/include/linux/fs.h" ;;
    clean) (cd "$SRC" && make O="$OUT" clean) >> "$LOG" 2>&1 ;;
  esac
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "=== $s $m $r" >> "$LOG"
  local d0 d1 c0 c1 cpu secs summary=''
  local main=$KBX kdir=$KBX_DIR v
  v=KBX_MAIN_${m//-/_}; main=${!v:-$main}
  v=KBX_DIR_${m//-/_}; kdir=${!v:-$kdir}
  d0=$(KBX=$main KBX_DIR=$kdir daemon_ticks)
  c0=$(children_ticks)
  t0=$(date +%s.%N)
  # In SRC, not make -C SRC: -C adds w to MAKEFLAGS, which every line's key holds.
  if [ "$m" = plain ]; then (cd "$SRC" && make O="$OUT" -j2) >> "$LOG" 2>&1
  else (cd "$SRC" && KBX_DIR=$kdir node "$main" make O="$OUT" -j2) >> "$LOG" 2>&1; fi
  t1=$(date +%s.%N)
  c1=$(children_ticks)
  d1=$(KBX=$main KBX_DIR=$kdir daemon_ticks)
  secs=$(echo "$t1 - $t0" | bc)
  # CPU seconds of the build's processes and of the daemon: steadier than wall time on a shared machine.
  cpu=$(echo "scale=2; ($c1 - $c0 + $d1 - $d0) / $(getconf CLK_TCK)" | bc)
  [ "$m" != plain ] && summary=$(grep '^kbx: [0-9]* lines' "$LOG" | tail -1)
  printf '%-6s %-5s %2d %7.3f s  cpu %5.2f s  load %s  %s\n' "$s" "$m" "$r" "$secs" "$cpu" "$load" "$summary"
  echo "$s $m $secs $cpu" >> "$RESULTS"
}

# Settle: one untimed build of each mode (the first after a routed link relinks).
for m in $MODES; do run settle "$m" 0 > /dev/null; done
echo "# $(date -u +%FT%TZ) $(uptime)"
for s in $SCENARIOS; do
  modes=$MODES
  case $s in *:*) modes=${s#*:}; s=${s%%:*} ;; esac
  for r in $(seq 1 "$ROUNDS"); do
    order=$modes
    [ $((r % 2)) = 0 ] && order=$(echo "$modes" | tr ' ' '\n' | tac | tr '\n' ' ')
    for m in $order; do run "$s" "$m" "$r"; done
  done
done
echo "# $(date -u +%FT%TZ) $(uptime)"
med() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "# medians: wall s, cpu s"
awk '{ k = $1 " " $2; w[k] = w[k] " " $3; c[k] = c[k] " " $4 } END { for (k in w) print k "|" w[k] "|" c[k] }' "$RESULTS" | sort | while IFS='|' read -r k ws cs; do
  printf '%-12s %7.3f  %6.2f  (n=%d)\n' "$k" "$(echo "$ws" | med)" "$(echo "$cs" | med)" "$(echo "$ws" | wc -w)"
done
rm -f "$RESULTS"
