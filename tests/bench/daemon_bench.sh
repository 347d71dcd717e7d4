#!/bin/sh
# Daemon throughput benchmark: a private ctrecd receives the synthetic
# stream of ctr_feed (tests/bench/daemon/feed.c: a Python-like loop of N
# iterations, each a CALL with one argument, three STEP+VARS, a RETURN and
# the loop's own STEP+VARS) once with record.values all and once with
# values none, and prints the messages sent, the daemon's CPU time
# (once the trace is complete), messages per CPU second, the
# size of trace.json and the rate of JSON written per CPU second. Then
# N/20 iterations whose callee steps also show a large `self` (113
# values): sent in full at every step (big), and as one DEF and then REFs
# (bigref, PROTOCOL.md 9.1), whose traces must be the same. Figures, not a
# pass/fail test.
#
# Usage: tests/bench/daemon_bench.sh [BUILD_DIR] [N]   (defaults: build, 200000)
# With KEEP=DIR the trace folders are kept under DIR/LABEL, one per row.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(cd "$HERE/../.." && pwd)
BUILD=${1:-${CTREC_BUILD:-$SOURCE/build}}
N=${2:-200000}
CTRECD=$BUILD/bin/ctrecd
FEED=$BUILD/tests/ctr_feed
WORK=$(mktemp -d /tmp/ctrec-dbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

for f in "$CTRECD" "$FEED"; do
  [ -x "$f" ] || { echo "missing $f (build first)" >&2; exit 2; }
done

# run LABEL VALUES [ITERATIONS MODE]: one daemon, one feeder; prints one
# row.
run() {
  label=$1
  sock=$WORK/$label.sock
  out=$WORK/traces-$label
  "$CTRECD" --listen "$sock" --output "$out" --set "record.values=$2" \
    >"$WORK/ctrecd-$label.log" 2>&1 &
  dpid=$!
  i=0
  while ! grep -q "listening on" "$WORK/ctrecd-$label.log" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 500 ] || { echo "ctrecd did not start" >&2; cat "$WORK/ctrecd-$label.log" >&2; exit 1; }
    sleep 0.01
  done
  msgs=$("$FEED" "$sock" "${3:-$N}" "${4:-small}" | awk '/^messages/ {print $2}')
  i=0
  while ! grep -qs '"state": *"complete"' "$out"/*/trace_metadata.json; do
    i=$((i + 1))
    [ $i -lt 30000 ] || { echo "trace did not complete" >&2; break; }
    sleep 0.01
  done
  # CPU time, read before the daemon is told to stop: nanoseconds on a CPU
  # summed over its threads from schedstat where the kernel keeps it
  # (clock ticks are too coarse to compare runs of a fraction of a second),
  # else utime+stime in clock ticks.
  if cat /proc/$dpid/task/*/schedstat >/dev/null 2>&1; then
    ticks=$(cat /proc/$dpid/task/*/schedstat | awk '{t += $1} END {print t}')
    hz=1000000000
  else
    ticks=$(awk '{print $14 + $15}' "/proc/$dpid/stat")
    hz=$(getconf CLK_TCK)
  fi
  kill -TERM "$dpid"
  wait "$dpid" || true
  size=$(stat -c %s "$out"/*/trace.json)
  awk -v l="$label" -v m="$msgs" -v t="$ticks" -v hz="$hz" -v s="$size" 'BEGIN {
    cpu = t / hz; if (cpu <= 0) cpu = 1 / hz
    printf "%-6s %10d %9.2fs %12.0f %10.1fMB %9.1f\n", l, m, cpu, m / cpu,
      s / 1e6, s / 1e6 / cpu }'
  if [ -n "${KEEP:-}" ]; then
    rm -rf "$KEEP/$label"
    mkdir -p "$KEEP"
    cp -r "$out" "$KEEP/$label"
  fi
}

echo "ctr_feed, $N iterations"
printf "%-6s %10s %10s %12s %12s %9s\n" values messages "ctrecd cpu" "msgs/cpu s" trace.json "MB/cpu s"
run all all
run none none
run big all $((N / 20)) big
run bigref all $((N / 20)) big-refs
if cmp -s "$WORK"/traces-big/*/trace.json "$WORK"/traces-bigref/*/trace.json; then
  echo "big and bigref: the same trace.json"
else
  echo "big and bigref: trace.json DIFFERS" >&2
  exit 1
fi
