#!/usr/bin/env bash
# Install the real monitoring binaries the tests run into the project-local .tools/ (gitignored):
#   prometheus, promtool          Debian 13 "trixie" packages `prometheus`, `promtool` (2.53.x)
#   prometheus3, promtool3        Debian sid packages `prometheus`, `promtool` (3.5.x, the current
#                                 long-term release): the end-to-end tests run on both majors
#   alertmanager, amtool          trixie `prometheus-alertmanager` (0.28.x; binary renamed back)
#   docker-compose                Debian 12 package (1.29.2): validates compose files offline
#   chromium                      Debian 12 package, installed system-wide: /docs in a real browser
#   valgrind                      Debian 12 package: callgrind counts instructions (make bench)
#   otelcol, jaeger               built from source by scripts/build-go-tools.sh (Go module proxy)
# Debian 12 cannot run apt against trixie or sid without changing the system's sources, so apt
# gets a private sources dir, lists and cache per suite under .tools/apt/ and only *downloads*;
# the .debs are unpacked with dpkg-deb into .tools/root (trixie) or .tools/root-sid and never
# installed. The binaries are static Go programs.
# Idempotent: a tool whose .tools/bin entry already runs is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

runs() { "$BIN/$1" --version >/dev/null 2>&1; }

# Same mirror as the system's own sources (deb822 first, one-line format as a fallback).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

# fetch SUITE ROOT PACKAGE...: download the packages of SUITE and unpack them into ROOT.
fetch() {
  local suite=$1 root=$2
  local apt_dir="$TOOLS/apt/$suite"
  shift 2
  mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
    "$apt_dir/debs" "$root"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$mirror" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg \
    >"$apt_dir/sources.list.d/$suite.sources"
  local apt_opts=(
    -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
  )
  echo "fetching $suite packages from $mirror: $*"
  apt-get "${apt_opts[@]}" -qq update
  (cd "$apt_dir/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" -qq download "$@")
  : >"$root/PACKAGES"
  local deb
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$root"
    echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >>"$root/PACKAGES"
  done
}

missing=0
for tool in prometheus promtool alertmanager amtool; do
  runs "$tool" || missing=1
done
if [ "$missing" = 1 ]; then
  ROOT="$TOOLS/root"
  fetch trixie "$ROOT" prometheus promtool prometheus-alertmanager
  ln -sf "$ROOT/usr/bin/prometheus" "$BIN/prometheus"
  ln -sf "$ROOT/usr/bin/promtool" "$BIN/promtool"
  ln -sf "$ROOT/usr/bin/prometheus-alertmanager" "$BIN/prometheus-alertmanager"
  ln -sf "$ROOT/usr/bin/prometheus-alertmanager" "$BIN/alertmanager"
  ln -sf "$ROOT/usr/bin/amtool" "$BIN/amtool"
fi

if ! runs prometheus3 || ! runs promtool3; then
  fetch sid "$TOOLS/root-sid" prometheus promtool
  ln -sf "$TOOLS/root-sid/usr/bin/prometheus" "$BIN/prometheus3"
  ln -sf "$TOOLS/root-sid/usr/bin/promtool" "$BIN/promtool3"
fi

# docker-compose 1.29.2 from Debian 12 itself (we are root on CI); reuse one already on PATH
# (looked up without .tools/bin, so the symlink never points at itself).
if ! runs docker-compose; then
  path_without_tools=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -)
  if ! PATH=$path_without_tools command -v docker-compose >/dev/null 2>&1; then
    echo "installing docker-compose (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq docker-compose >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }
  fi
  ln -sf "$(PATH=$path_without_tools command -v docker-compose)" "$BIN/docker-compose"
fi

# Debian's chromium: the /docs page is checked in a real headless browser
# (tests/integration/test_docs_page.py, driven by playwright with executable_path).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi

# valgrind: `make bench` counts instructions per request with callgrind, and its smoke run is
# part of the tests.
if ! command -v valgrind >/dev/null 2>&1; then
  echo "installing valgrind (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq valgrind >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
fi

# Our own OpenTelemetry Collector (.tools/bin/otelcol) and Jaeger v2 (.tools/bin/jaeger), built
# from pinned manifests with Go; each is rebuilt only when its manifest changed.
scripts/build-go-tools.sh

# One line per tool; any tool that does not run fails the script (and so `make test`).
version_of() {
  case $1 in
    jaeger) "$BIN/jaeger" --version 2>/dev/null ;; # its version on stdout, a log line on stderr
    *) "$BIN/$1" --version 2>&1 ;;
  esac
}
for tool in prometheus promtool prometheus3 promtool3 alertmanager amtool docker-compose otelcol jaeger; do
  if ! out=$(version_of "$tool"); then
    echo "$tool: does not run from $BIN/$tool" >&2
    printf '%s\n' "$out" >&2
    exit 1
  fi
  line=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | head -n1 || true)
  printf '%-15s %s\n' "$tool" "$line"
done
