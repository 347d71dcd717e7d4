#!/usr/bin/env bash
# Builds everything (installing packages when missing) and records a demo
# Ruby program end to end with ctrecctl record.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
out=${1:-ctrec-traces}
build/bin/ctrecctl record -o "$out" -- ruby tests/programs/ruby/demo.rb
