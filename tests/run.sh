#!/usr/bin/env bash
# Builds everything (installing packages when missing) and runs every unit and
# integration test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
ctest --test-dir build --output-on-failure -j2 "$@"
