#!/bin/sh
# Real-world recording benchmark (issue 11): pure-Python and pure-Ruby
# libraries packaged by Debian, recorded as the program's own code. At run
# time each library's installed source is copied into a temporary folder
# beside a small driver (tests/bench/realworld/{python,ruby}), so the
# built-in filter rules, which skip installed packages, do not leave it out.
#
#   markdown  Python-Markdown renders inputs/doc.md      (python3-markdown)
#   jinja     Jinja2 + MarkupSafe (.py only) render
#             inputs/page.html.j2                        (python3-jinja2)
#   kramdown  kramdown renders inputs/doc.md             (ruby-kramdown)
#   rexml     REXML parses, queries and writes
#             inputs/catalog.xml                         (Ruby's bundled gem)
#   nbody     the Benchmarks Game n-body simulation as Ruby objects
#             (ruby/nbody.rb, no library: all floats)
#
# Python drivers run on python3 and on every interpreter listed in
# BUILD_DIR/ctrec-python-extra.txt (the 3.12+ the build made shims for);
# Ruby drivers on ruby. Each driver runs untraced (best of 3, after one
# warm-up run that also compiles the copied .py files), then once for each
# mode through `ctrecctl record`: "full" (default settings but
# output.format: json), "ctfs" (default settings, whose format is ctfs, so
# B/step compares the formats) and "none" (record: {values: none}, json). ctrecctl records through a ctrecd this script
# starts under /usr/bin/time with the same defaults as ctrecctl's private
# one, so that the daemon's CPU time and peak RSS are its own; the traced
# program runs under /usr/bin/time inside ctrecctl record. One row per
# (library, interpreter, mode):
#
#   untraced  wall seconds and peak RSS of the untraced run
#   traced    wall seconds of ctrecctl record, until every trace is complete
#   ratio     traced / untraced                          (target <= 10x full)
#   steps     steps recorded (trace_metadata.json counters)
#   trace     bytes of the trace folder (apparent size)
#   B/step    trace bytes per recorded step               (target <= 300)
#   ctrecd    the daemon's CPU seconds (user + sys) and peak RSS
#   program   the traced process's CPU seconds and peak RSS
#
# Traces are written under $TMPDIR (default /tmp) and deleted after each
# row; a Python one reaches 1.6 GB. The script installs the Debian packages
# it needs when missing. A figure, not a pass/fail test: it fails only when
# a traced run's output differs from the untraced one or its trace is not
# complete.
#
# Usage: tests/bench/realworld/run.sh [BUILD_DIR [ROW...]]
# BUILD_DIR defaults to build; ROWs (a library, e.g. rexml, or a label,
# e.g. markdown/3.11) run only those drivers.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../../build}" && pwd)
[ $# -eq 0 ] || shift
rows="$*"
ctl=$build/bin/ctrecctl
ctrecd=$build/bin/ctrecd
for f in "$ctl" "$ctrecd"; do
  [ -x "$f" ] || { echo "realworld: no $f (build first)" >&2; exit 2; }
done

. "$here/setup.sh"
realworld_packages

work=$(mktemp -d "${TMPDIR:-/tmp}/ctrec-realworld-XXXXXX")
daemon=""
cleanup() {
  [ -z "$daemon" ] || kill -TERM "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The largest trace of a row is 1.6 GB with the sizes below.
free_kb=$(df -Pk "$work" | awk 'NR == 2 {print $4}')
if [ "$free_kb" -lt $((8 * 1024 * 1024)) ]; then
  echo "realworld: only $((free_kb / 1024)) MB free under $work; 8 GB needed" >&2
  exit 1
fi

realworld_programs "$here" "$work"

pythons=python3
if [ -f "$build/ctrec-python-extra.txt" ]; then
  while read -r py; do
    if [ -x "$py" ]; then pythons="$pythons $py"; fi
  done <"$build/ctrec-python-extra.txt"
fi

printf 'output:\n  format: json\n' >"$work/full.yaml"
printf 'output:\n  format: ctfs\n' >"$work/ctfs.yaml"
printf 'output:\n  format: json\nrecord:\n  values: none\n' >"$work/none.yaml"
inputs=$here/inputs

now() { date +%s.%N; }

# timed FILE CMD...: runs CMD with stdout to $work/out, its wall, CPU and
# peak RSS (KB) to FILE.
timed() {
  file=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o "$file" "$@" >"$work/out"
}

# untraced: best wall of three runs after a warm-up; keeps its output.
untraced() {
  "$@" >"$work/expected"
  best=""
  for _ in 1 2 3; do
    timed "$work/u.time" "$@"
    read -r wall _ _ rss <"$work/u.time"
    if [ -z "$best" ] || [ "$(echo "$wall < $best" | bc -l)" = 1 ]; then
      best=$wall plain_rss=$rss
    fi
  done
  plain=$best
}

# traced MODE CMD...: one run through ctrecctl record and its own ctrecd;
# prints the row.
traced() {
  mode=$1
  shift
  out=$work/traces
  sock=$work/ctrecd.sock
  config="--config $work/$mode.yaml"
  # shellcheck disable=SC2086
  /usr/bin/time -f '%e %U %S %M' -o "$work/d.time" \
    "$ctrecd" $config --listen "$sock" --output "$out" --log-level warn 2>"$work/d.log" &
  dpid=$!
  i=0
  while [ ! -S "$sock" ]; do
    i=$((i + 1))
    [ $i -lt 500 ] || { echo "realworld: ctrecd did not start" >&2; cat "$work/d.log" >&2; exit 1; }
    sleep 0.01
  done
  # ctrecd runs as the child of time: stop the daemon, not time.
  daemon=$(tr -d ' ' <"/proc/$dpid/task/$dpid/children")
  t0=$(now)
  CT_RECORDER_SOCKET=$sock "$ctl" record -q -- \
    /usr/bin/time -f '%e %U %S %M' -o "$work/p.time" "$@" >"$work/out"
  t1=$(now)
  kill -TERM "$daemon"
  wait "$dpid"
  daemon=""
  if ! cmp -s "$work/expected" "$work/out"; then
    echo "realworld: $label: output differs under ctrec" >&2
    exit 1
  fi
  if grep -L '"state":"complete"' "$out"/*/trace_metadata.json | grep -q .; then
    echo "realworld: $label: a trace is not complete" >&2
    exit 1
  fi
  steps=$(grep -ho '"steps":[0-9]*' "$out"/*/trace_metadata.json |
    awk -F: '{s += $2} END {print s}')
  bytes=$(du -sb "$out" | cut -f1)
  rm -rf "$out"
  twall=$(echo "$t1 - $t0" | bc -l)
  read -r _ dus dsy dm <"$work/d.time"
  read -r _ pu ps pm <"$work/p.time"
  awk -v l="$label" -v m="$mode" -v u="$plain" -v um="$plain_rss" -v t="$twall" -v st="$steps" \
    -v b="$bytes" -v du="$dus" -v ds="$dsy" -v dm="$dm" -v pu="$pu" -v ps="$ps" \
    -v pm="$pm" 'BEGIN {
      printf "%-18s %-4s %6.2f %5.1f %7.2f %6.1fx %9d %9.1f %7.0f %7.2f %5.1f %7.2f %5.1f\n",
        l, m, u, um / 1024, t, t / u, st, b / 1e6, st ? b / st : 0, du + ds, dm / 1024,
        pu + ps, pm / 1024 }'
}

# bench LABEL CMD...: the rows of one driver on one interpreter.
bench() {
  label=$1
  shift
  if [ -n "$rows" ]; then
    case " $rows " in
    *" $label "* | *" ${label%%/*} "*) ;;
    *) return 0 ;;
    esac
  fi
  untraced "$@"
  traced full "$@"
  traced ctfs "$@"
  traced none "$@"
}

echo "ctrec real-world benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-18s %-4s %12s %7s %7s %9s %9s %7s %13s %13s\n' library/interp mode \
  "untraced" traced ratio steps trace B/step "ctrecd" "program"
printf '%-18s %-4s %6s %5s %7s %7s %9s %9s %7s %7s %5s %7s %5s\n' "" "" s MB s "" "" MB "" \
  "cpu s" MB "cpu s" MB
for py in $pythons; do
  v=$($py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  bench "markdown/$v" "$py" "$work/py/markdown_drv.py" "$inputs/doc.md" 3
  bench "jinja/$v" "$py" "$work/py/jinja_drv.py" "$inputs/page.html.j2" 5
done
v=$(ruby -e 'print RUBY_VERSION[/\A\d+\.\d+/]')
bench "kramdown/ruby$v" ruby "$work/rb/kramdown_drv.rb" "$inputs/doc.md" 3
bench "rexml/ruby$v" ruby "$work/rb/rexml_drv.rb" "$inputs/catalog.xml" 5
bench "nbody/ruby$v" ruby "$work/rb/nbody.rb" 1000
