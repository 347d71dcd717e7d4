#!/bin/sh
# Ruby shim benchmark: a call-heavy loop (tests/bench/ruby/calls.rb, N calls
# of a method with three locals) run
#   untraced,
#   under an empty C event hook with the shim's event mask
#     (CTREC_BENCH_EMPTY_HOOK=1),
#   under full recording,
#   under values:none (record.values=none: control flow and output only),
# and prints wall times, the CPU time of the Ruby process, slowdown ratios,
# trace size and peak RSS of the Ruby process and of the daemon. Full
# recording also runs with 4N calls to show whether the shim's memory stays
# flat. Figures, not a pass/fail test.
#
# Usage: tests/bench/ruby_bench.sh [BUILD_DIR] [N]   (defaults: build, 200000)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(cd "$HERE/../.." && pwd)
BUILD=${1:-${CTREC_BUILD:-$SOURCE/build}}
N=${2:-200000}
PROG=$HERE/ruby/calls.rb
SHIM=$BUILD/lib/ctrec/ruby
CTRECD=$BUILD/bin/ctrecd
WORK=$(mktemp -d /tmp/ctrec-rbbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

for f in "$CTRECD" "$SHIM/ctrec.so" "$PROG"; do
  [ -e "$f" ] || { echo "missing $f (build first)" >&2; exit 2; }
done

now() { date +%s.%N; }

# run_ruby LABEL ENV... : runs the program once, records wall time, CPU
# time (user+sys) and peak RSS of the Ruby process in $WORK/LABEL.time.
run_ruby() {
  label=$1
  shift
  env "$@" /usr/bin/time -f "%e %U %S %M" -o "$WORK/$label.time" \
    ruby "$PROG" "$N_RUN" >/dev/null
}

# start_daemon LABEL [CTRECD OPTIONS...]: starts a private ctrecd; sets
# DPID, DSOCK, DOUT.
start_daemon() {
  label=$1
  shift
  DSOCK=$WORK/run-$label/ctrecd.sock
  DOUT=$WORK/traces-$label
  mkdir -p "$WORK/run-$label"
  "$CTRECD" --listen "$DSOCK" --output "$DOUT" "$@" >"$WORK/ctrecd-$label.log" 2>&1 &
  DPID=$!
  i=0
  while ! grep -q "listening on" "$WORK/ctrecd-$label.log" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 500 ] || { echo "ctrecd did not start" >&2; cat "$WORK/ctrecd-$label.log" >&2; exit 1; }
    sleep 0.01
  done
}

# Waits until the trace is complete, then reports the daemon's CPU time and
# peak RSS (VmHWM) and stops it.
stop_daemon() {
  i=0
  while ! grep -qs '"state": *"complete"' "$DOUT"/*/trace_metadata.json; do
    i=$((i + 1))
    [ $i -lt 12000 ] || break
    sleep 0.01
  done
  DEND=$(now)
  DHWM=$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")
  DCPU=$(awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$DPID/stat")
  kill -TERM "$DPID"
  wait "$DPID" || true
  DSIZE=$(du -sk "$DOUT" | awk '{print $1}')
  # Measured: hundreds of MB left in the page cache would slow the next run.
  rm -rf "$DOUT"
}

# recorded LABEL [CTRECD OPTIONS...]: a recorded run with its own daemon.
recorded() {
  start_daemon "$@"
  t0=$(now)
  run_ruby "$label" CT_RECORDER_SOCKET="$DSOCK" RUBYLIB="$SHIM" RUBYOPT=-rctrec
  stop_daemon
  echo "$t0 $DEND $DCPU $DHWM $DSIZE" >"$WORK/$label.daemon"
}

N_RUN=$N
run_ruby untraced
run_ruby empty CTREC_BENCH_EMPTY_HOOK=1 RUBYLIB="$SHIM" RUBYOPT=-rctrec
recorded full
recorded none --set record.values=none
N_RUN=$((N * 4))
recorded full4

python3 - "$WORK" "$N" <<'EOF'
import sys
work, n = sys.argv[1], int(sys.argv[2])
def ruby(label):
    wall, user, sys_, rss = open(f"{work}/{label}.time").read().split()
    return float(wall), float(user) + float(sys_), int(rss)
def daemon(label):
    t0, end, cpu, hwm, size = open(f"{work}/{label}.daemon").read().split()
    return float(end) - float(t0), float(cpu), int(hwm), int(size)
rows = {}
print(f"calls.rb, {n} calls (full4: {4 * n})")
print(f"{'run':10} {'ruby wall':>10} {'ruby cpu':>9} {'ruby RSS':>9} {'to trace':>9} "
      f"{'ctrecd cpu':>10} {'ctrecd RSS':>10} {'trace':>9}")
for label in ("untraced", "empty", "full", "none", "full4"):
    w, c, r = ruby(label)
    rows[label] = (w, c)
    line = f"{label:10} {w:9.2f}s {c:8.2f}s {r / 1024:7.1f}MB"
    try:
        e2e, dc, dr, sz = daemon(label)
        rows[label] = (w, c, e2e)
        line += f" {e2e:8.2f}s {dc:9.2f}s {dr / 1024:8.1f}MB {sz / 1024:7.1f}MB"
    except FileNotFoundError:
        pass
    print(line)
u, e, f, nn = rows["untraced"], rows["empty"], rows["full"], rows["none"]
print()
print(f"empty hook / untraced        {e[0] / u[0]:6.1f}x wall")
print(f"full / untraced              {f[0] / u[0]:6.1f}x wall of ruby, "
      f"{f[1] / u[1]:6.1f}x cpu of ruby, {f[2] / u[0]:6.1f}x until the trace is complete"
      "   (target <= 25x)")
print(f"values:none / empty hook     {nn[0] / e[0]:6.1f}x wall of ruby, "
      f"{nn[1] / e[1]:6.1f}x cpu of ruby, {nn[2] / e[0]:6.1f}x until the trace is complete"
      "   (target <= 2x)")
print(f"shim RSS full4 / full        {ruby('full4')[2] / ruby('full')[2]:6.2f}x   (flat = ~1.0)")
print("ruby wall > ruby cpu means the program waited on the daemon (socket back-pressure).")
EOF
