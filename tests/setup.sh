#!/usr/bin/env bash
# Installs missing Debian packages, then configures and builds ctrec in build/.
# Used by tests/demo.sh and tests/run.sh; safe to run again (it only builds).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libuv1-dev libmsgpack-dev libyaml-dev libzstd-dev check
          ruby ruby-dev python3 python3-dev procps groff-base)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ctrec: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

werror=OFF
[ -n "${CI:-}" ] && werror=ON
cmake -S . -B build -DCTREC_WERROR="$werror" >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
