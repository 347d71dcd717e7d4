#!/bin/sh
# The Python shim's cost counted in instructions (valgrind's callgrind)
# rather than timed: the same loop as python_bench.sh (N calls of a function
# with three locals, default 20000), untraced, under the empty hook, and
# recorded by the shim into the sink (tests/bench/python/sink.py, which
# discards the stream, so ctrecd's work is not counted). Instruction counts
# do not move with the machine's load, which makes small changes to the
# shim visible where timings on a shared machine are too noisy. Prints, per
# interpreter, the ratios of the loop's instructions (the program with N=0
# subtracted): shim / untraced and shim / empty hook, for record.values all
# and none; then ctrecd's instructions for rendering the same stream into a
# trace against the traced process's (values all): below 1, a ctrecd with
# a core of its own keeps up with the program, and full recording runs at
# the shim's speed. Figures, not a pass/fail test; needs valgrind.
#
#   tests/bench/python_count.sh [-p PYTHON]... [BUILD_DIR] [N]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pythons=""
while [ $# -gt 0 ]; do
  case $1 in
    -p) pythons="$pythons $2"; shift 2 ;;
    *) break ;;
  esac
done
build=${1:-$here/../../build}
n=${2:-20000}
shim=$build/lib/ctrec/python
prog=$here/python/bench_calls.py
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 2; }
[ -d "$shim/ctrec" ] || { echo "no Python shim in $shim (build first)" >&2; exit 2; }
top=$(mktemp -d "${TMPDIR:-/tmp}/ctrec-pycount-XXXXXX")
trap 'rm -rf "$top"' EXIT INT TERM

# count CMD...: instructions of one run (every process it starts).
count() {
  rm -f "$top"/cg.*
  valgrind --tool=callgrind --trace-children=yes \
    --callgrind-out-file="$top/cg.%p" "$@" >/dev/null 2>&1
  grep -h '^summary:' "$top"/cg.* | awk '{s += $2} END {print s}'
}

ratio() { echo "scale=2; ($1 - $3) / ($2 - $3)" | bc; }

# daemon CMD...: instructions of a ctrecd (alone) recording CMD, which runs
# natively, until its trace is complete.
daemon() {
  rm -rf "$top/out" "$top/cg.d" "$top/d.sock"
  valgrind --tool=callgrind --callgrind-out-file="$top/cg.d" "$build/bin/ctrecd" \
    --listen "$top/d.sock" --output "$top/out" >"$top/d.log" 2>&1 &
  dpid=$!
  i=0
  until grep -q "listening on" "$top/d.log" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 600 ] || { cat "$top/d.log" >&2; exit 1; }; sleep 0.05
  done
  env PYTHONPATH="$shim" CT_RECORDER_SOCKET="$top/d.sock" "$@" >/dev/null 2>&1
  i=0
  until grep -qs '"state": *"complete"' "$top"/out/*/trace_metadata.json; do
    i=$((i + 1)); [ $i -lt 1200 ] || { echo "no complete trace" >&2; exit 1; }; sleep 0.05
  done
  kill -TERM $dpid
  wait $dpid || true
  grep -h '^summary:' "$top/cg.d" | awk '{print $2}'
}

for py in ${pythons:-python3}; do
  # The interpreter itself, not a launcher script such as pyenv's shims.
  exe=$("$py" -c 'import sys; print(sys.executable)')
  base=$(count "$exe" "$prog" 0)
  plain=$(count "$exe" "$prog" "$n")
  empty=$(count env PYTHONPATH="$shim" "$exe" "$prog" "$n" --empty-trace)
  echo "$("$exe" --version 2>&1), N=$n calls"
  for values in all none; do
    sock=$top/sink-$values.sock
    "$exe" "$here/python/sink.py" "$sock" "$values" &
    sink=$!
    i=0
    while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    rec=$(count env PYTHONPATH="$shim" CT_RECORDER_SOCKET="$sock" "$exe" "$prog" "$n")
    [ "$values" = all ] && rec_all=$rec
    kill $sink
    printf '  values %-4s  shim / untraced %6sx   shim / empty hook %6sx\n' \
      "$values" "$(ratio "$rec" "$plain" "$base")" "$(ratio "$rec" "$empty" "$base")"
  done
  dbase=$(daemon "$exe" "$prog" 0)
  drec=$(daemon "$exe" "$prog" "$n")
  printf '  ctrecd / traced process (values all) %.2f\n' \
    "$(echo "scale=4; ($drec - $dbase) / ($rec_all - $base)" | bc)"
done
