#!/usr/bin/env bash
# Builds everything (installing packages when missing) and runs every unit and
# integration test with ctest; extra arguments go to that ctest. Then the
# sanitizer runs: the unit suites, the bad-input and the fault (hostile)
# suites against a ctrecd built with ASan and UBSan (build-asan/), and libctrec's threads under TSan
# (build-tsan/, unit_client). --quick skips the sanitizer runs; CI (.ci/run)
# runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
if [ "${1:-}" = "--quick" ]; then
  quick=true
  shift
fi
tests/setup.sh
ctest --test-dir build --output-on-failure -j2 "$@"
$quick && exit 0

# The same settings as build/ (setup.sh), the shims of build/ for the
# integration suites (an interpreter cannot load a sanitized shim), and only
# the targets that the sanitized suites run.
werror=$(sed -n 's/^CTREC_WERROR:BOOL=//p' build/CMakeCache.txt)
sanitized() {
  local dir=$1 kind=$2
  shift 2
  cmake -S . -B "$dir" -DCTREC_SANITIZE="$kind" -DCTREC_WERROR="$werror" \
    -DCTREC_TEST_SHIMS="$PWD/build/lib/ctrec" >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target "$@" >/dev/null
}
sanitized build-asan address ctrecd ctrecctl ctfs_dump check_units
# unit_ctfs's follower race test reads the file the way CodeTracer does
# (its length, then its bytes): under ASan a reader can be slower than any
# slack the writer keeps (1 run in 44; docs/ctfs.md, "Tests"), so it is
# left out of this run only.
CK_EXCLUDE_TAGS=follower-race ctest --test-dir build-asan --output-on-failure -j2 \
  -R '^(unit_.*|it_bad_input(_json)?|it_hostile|it_fifo)$'
sanitized build-tsan thread check_client
ctest --test-dir build-tsan --output-on-failure -R '^unit_client$'
