#!/bin/sh
# Cost of skipped code: tests/bench/ruby/skip_hot.rb spends almost all its
# time in module Hot, which the config marks skip-tree, called from a few
# recorded lines. Runs it untraced, recorded with push-down (the shim skips
# the tree itself), recorded without push-down (filter.pushdown: false:
# the daemon drops the events), and recorded while stopped (record.start:
# paused: the shim's hooks are off). Prints wall times and ratios to
# untraced (issue 5 target for push-down: at most 1.3x). Figures, not a
# pass/fail test.
#
# Usage: tests/bench/ruby_skip_bench.sh [BUILD_DIR] [ROUNDS]  (build, 200)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(cd "$HERE/../.." && pwd)
BUILD=${1:-${CTREC_BUILD:-$SOURCE/build}}
ROUNDS=${2:-200}
PROG=$HERE/ruby/skip_hot.rb
SHIM=$BUILD/lib/ctrec/ruby
CTRECD=$BUILD/bin/ctrecd
WORK=$(mktemp -d /tmp/ctrec-skipbench.XXXXXX)
DPID=
cleanup() {
  [ -z "$DPID" ] || kill "$DPID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

for f in "$CTRECD" "$SHIM/ctrec.so" "$PROG"; do
  [ -e "$f" ] || { echo "missing $f (build first)" >&2; exit 2; }
done

# start_daemon LABEL EXTRA_YAML: a private ctrecd with the skip-tree rule.
start_daemon() {
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/ctrec.yaml" <<YAML
listen:
  path: $WORK/$1/ctrecd.sock
output:
  dir: $WORK/$1/traces
filter:
  rules:
    - {module: Hot, action: skip-tree}
$2
YAML
  "$CTRECD" --config "$WORK/$1/ctrec.yaml" >"$WORK/$1/ctrecd.log" 2>&1 &
  DPID=$!
  i=0
  while ! grep -q "listening on" "$WORK/$1/ctrecd.log" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 500 ] || { echo "ctrecd did not start" >&2; cat "$WORK/$1/ctrecd.log" >&2; exit 1; }
    sleep 0.01
  done
}

stop_daemon() {
  kill -TERM "$DPID"
  wait "$DPID" || true
  DPID=
}

# run LABEL ENV...: best wall time of three runs in $WORK/LABEL.best.
run() {
  label=$1
  shift
  best=
  for _ in 1 2 3; do
    t0=$(date +%s.%N)
    env "$@" ruby "$PROG" "$ROUNDS" >/dev/null
    t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  echo "$best" >"$WORK/$label.best"
}

rec_env() {
  echo "CT_RECORDER_SOCKET=$WORK/$1/ctrecd.sock RUBYLIB=$SHIM RUBYOPT=-rctrec"
}

run untraced CTREC_NONE=1
start_daemon pushdown ""
# shellcheck disable=SC2046
run pushdown $(rec_env pushdown)
stop_daemon
start_daemon nopushdown "  pushdown: false"
# shellcheck disable=SC2046
run nopushdown $(rec_env nopushdown)
stop_daemon
start_daemon paused "record:
  start: paused"
# shellcheck disable=SC2046
run paused $(rec_env paused)
stop_daemon

base=$(cat "$WORK/untraced.best")
printf "%-34s %8s %8s\n" "run ($ROUNDS rounds)" "wall s" "ratio"
for label in untraced pushdown nopushdown paused; do
  t=$(cat "$WORK/$label.best")
  printf "%-34s %8.3f %7.2fx\n" "$label" "$t" "$(echo "$t / $base" | bc -l)"
done
