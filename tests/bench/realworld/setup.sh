# Sourced by the benchmarks that record the real-world drivers (run.sh,
# ../ctfs_vs_json.py): installs the Debian packages they need when missing
# and lays the drivers out beside copies of the libraries.

# realworld_packages: installs the packages the drivers need when missing.
realworld_packages() {
  missing=""
  for p in time python3-markdown python3-jinja2 ruby-kramdown; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "realworld: installing$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
  fi
}

# realworld_programs HERE WORK: the drivers of HERE (tests/bench/realworld)
# in WORK/py and WORK/rb, beside copies of the libraries' installed
# sources, so that the built-in filter rules, which skip installed
# packages, do not leave them out.
realworld_programs() {
  here=$1 work=$2
  # The Debian packages are installed for Debian's python3, which may not be
  # the python3 on PATH; ask it where they are.
  mkdir -p "$work/py" "$work/rb/lib"
  cp "$here"/python/*.py "$work/py/"
  /usr/bin/python3 -c 'import os, markdown, jinja2, markupsafe
for m in (markdown, jinja2, markupsafe): print(os.path.dirname(m.__file__))' >"$work/pylibs"
  while read -r dir; do
    cp -r "$dir" "$work/py/"
  done <"$work/pylibs"
  # MarkupSafe's C speed-ups would not load on other interpreters: keep its
  # pure-Python code only, the same on every interpreter.
  find "$work/py/markupsafe" -name '*.so' -delete
  find "$work/py" -name __pycache__ -prune -exec rm -rf {} +
  cp "$here"/ruby/*.rb "$work/rb/"
  # shellcheck disable=SC2016
  ruby -e 'require "kramdown"; require "rexml/document"
  %w[kramdown rexml/document].each { |f| puts $LOADED_FEATURES.grep(%r{/#{f}\.rb\z}).first }' |
    while read -r feature; do
      lib=${feature%/kramdown.rb}
      lib=${lib%/rexml/document.rb}
      cp -r "$lib"/. "$work/rb/lib/"
    done
}
